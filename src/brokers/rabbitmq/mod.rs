//! RabbitMQ: driver, client adapter (lapin) and local nodes of Debian's `rabbitmq-server`
//! (1 or 3, each with its own epmd and cookie).
//!
//! A campaign sets, in RabbitMQ's own vocabulary (`props`): `[client.producer]` (`confirms`,
//! `persistent`, `mandatory`, `confirm_timeout_ms`) and `[client.consumer]` (`auto_ack`,
//! `prefetch`) over the mode's preset; `[dest]`: `queue_type` (or `x-queue-type`) = `"quorum"`
//! (the default: Raft-replicated over every node) or `"classic"` (one node's queue), `durable`
//! and `x-` queue arguments; `[server]`: `rabbitmq.conf` keys for the nodes ackcheck starts.

pub mod client;
pub mod node;
pub mod props;

use std::sync::Arc;

use crate::broker::{BrokerDriver, Capabilities, ClientContext, ClientSettings, ClientTables, OptionError, Props};
use crate::history::Guarantee;
use crate::nodes::{Home, NodeHosts, NodeRecipe};
use props::{ConsumerConfig, ProducerConfig, QueueDeclaration};

/// The driver, registered in `crate::brokers::ALL`.
pub struct RabbitDriver;

/// This broker as the broker-neutral roles see it.
pub const KIND: crate::broker::BrokerKind = crate::broker::BrokerKind(&RabbitDriver);

impl BrokerDriver for RabbitDriver {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn describe(&self) -> &'static str {
        "RabbitMQ 3.10 (Debian 12) or 4.0 (Debian 13, --version 4.0.5), 1 or 3 nodes"
    }

    fn allowed_nodes(&self) -> &'static [usize] {
        &[1, 3]
    }

    fn port_base(&self) -> u16 {
        19100
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: Some(
                "RabbitMQ has no transaction that covers both consuming and publishing, nor a read-committed consumer",
            ),
            refused_faults: &[],
            leaders: true,
            controller: false,
            partitions: None,
            processor_apps: &[],
        }
    }

    fn dest_settings(&self, table: &toml::Table) -> Result<serde_json::Value, OptionError> {
        props::dest_settings(table)
    }

    fn client_settings(&self, mode: Guarantee, tables: &ClientTables) -> Result<ClientSettings, OptionError> {
        props::client_settings(mode, tables)
    }

    fn server_settings(&self, table: &toml::Table) -> Result<Props, OptionError> {
        props::server_settings(table)
    }

    fn recipe(
        &self,
        home: &Home,
        nodes: usize,
        server: &Props,
        hosts: NodeHosts,
        version: &str,
    ) -> Box<dyn NodeRecipe> {
        Box::new(node::RabbitNodes::new(home.clone(), nodes, server.clone(), hosts).with_version(version))
    }

    /// Debian 12's package (the default) and Debian 13's, run from a Debian 13 root of its own.
    fn versions(&self) -> &'static [&'static str] {
        node::VERSIONS
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        let producer = ProducerConfig::of(ctx.mode, ctx.client)?;
        let consumer = ConsumerConfig::of(ctx.mode, ctx.client)?;
        Ok(Arc::new(client::RabbitBroker::configured(
            ctx.endpoints,
            QueueDeclaration::of(ctx.dest_settings),
            producer,
            consumer,
            ctx.log.clone(),
        )))
    }
}
