//! Apache Pulsar: driver, client adapter (the `pulsar` crate) and a local standalone node from
//! Maven Central.

pub mod client;
pub mod node;
pub mod props;

use std::sync::Arc;

use anyhow::Context;

use crate::broker::{BrokerDriver, Capabilities, ClientContext};
use crate::nodes::{Home, NodeHosts, NodeRecipe};

/// The driver, registered in `crate::brokers::ALL`.
pub struct PulsarDriver;

/// This broker as the broker-neutral roles see it.
pub const KIND: crate::broker::BrokerKind = crate::broker::BrokerKind(&PulsarDriver);

impl BrokerDriver for PulsarDriver {
    fn name(&self) -> &'static str {
        "pulsar"
    }

    fn describe(&self) -> &'static str {
        "Apache Pulsar 4.0.7 standalone, 1 node"
    }

    fn allowed_nodes(&self) -> &'static [usize] {
        &[1]
    }

    fn port_base(&self) -> u16 {
        19300
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: Some(
                "the Rust client ackcheck drives Pulsar with (the pulsar crate 6.9) has no transaction API",
            ),
            refused_faults: &[],
            leaders: false,
            controller: false,
            partitions: Some("it runs one standalone node here, so there is nothing between nodes to cut"),
            processor_apps: &[],
        }
    }

    fn dest_settings(&self, table: &toml::Table) -> Result<serde_json::Value, crate::broker::OptionError> {
        props::dest_settings(table)
    }

    fn client_settings(
        &self,
        _mode: crate::history::Guarantee,
        tables: &crate::broker::ClientTables,
    ) -> Result<crate::broker::ClientSettings, crate::broker::OptionError> {
        props::client_settings(tables)
    }

    fn server_settings(&self, table: &toml::Table) -> Result<crate::broker::Props, crate::broker::OptionError> {
        props::server_settings(table)
    }

    fn recipe(
        &self,
        home: &Home,
        _nodes: usize,
        server: &crate::broker::Props,
        _hosts: NodeHosts,
        _version: &str,
    ) -> Box<dyn NodeRecipe> {
        Box::new(node::PulsarNodes::with_server_settings(home.clone(), server.clone()))
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        let endpoint = ctx
            .endpoints
            .first()
            .context("a pulsar campaign needs one endpoint, got none")?;
        Ok(Arc::new(client::PulsarBroker::with_settings(
            endpoint,
            ctx.client,
            ctx.dest_settings,
            ctx.log.clone(),
        )))
    }
}
