//! Amazon SQS on LocalStack: driver, client adapter (aws-sdk-sqs) and a local LocalStack node
//! in its own virtual environment (no Docker).

pub mod client;
pub mod node;
pub mod props;

use std::sync::Arc;

use anyhow::Context;

use crate::broker::{BrokerDriver, Capabilities, ClientContext};
use crate::nodes::{Home, NodeHosts, NodeRecipe};

/// The driver, registered in `crate::brokers::ALL`.
pub struct SqsDriver;

/// This broker as the broker-neutral roles see it.
pub const KIND: crate::broker::BrokerKind = crate::broker::BrokerKind(&SqsDriver);

impl BrokerDriver for SqsDriver {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn describe(&self) -> &'static str {
        "Amazon SQS on LocalStack 4.13.1, 1 node"
    }

    fn allowed_nodes(&self) -> &'static [usize] {
        &[1]
    }

    fn port_base(&self) -> u16 {
        19200
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: Some("SQS has no transactions"),
            refused_faults: &[(
                "kill",
                "LocalStack keeps its queues in memory, so a killed node comes back empty and the run would only \
                 measure that; use pause, lose-acks, reset or latency",
            )],
            leaders: false,
            controller: false,
            partitions: Some("LocalStack runs one node here, so there is nothing between nodes to cut"),
            processor_apps: &[],
        }
    }

    /// Queue attributes at the at-least-once preset (a standard queue); a campaign's are checked
    /// in its mode ([`BrokerDriver::dest_settings_in_mode`]).
    fn dest_settings(&self, table: &toml::Table) -> Result<serde_json::Value, crate::broker::OptionError> {
        props::dest_settings(crate::history::Guarantee::AtLeastOnce, table)
    }

    fn dest_settings_in_mode(
        &self,
        mode: crate::history::Guarantee,
        table: &toml::Table,
    ) -> Result<serde_json::Value, crate::broker::OptionError> {
        props::dest_settings(mode, table)
    }

    fn client_settings(
        &self,
        _mode: crate::history::Guarantee,
        tables: &crate::broker::ClientTables,
    ) -> Result<crate::broker::ClientSettings, crate::broker::OptionError> {
        props::client_settings(tables)
    }

    fn recipe(
        &self,
        home: &Home,
        _nodes: usize,
        _server: &crate::broker::Props,
        _hosts: NodeHosts,
        _version: &str,
    ) -> Box<dyn NodeRecipe> {
        Box::new(node::SqsNodes::new(home.clone()))
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        let endpoint = ctx
            .endpoints
            .first()
            .context("an sqs campaign needs one endpoint, got none")?;
        Ok(Arc::new(client::SqsBroker::with_settings(
            endpoint,
            ctx.mode,
            ctx.dest_settings,
            ctx.client,
            ctx.log.clone(),
        )))
    }
}
