//! NATS JetStream: driver, client adapter (async-nats) and local nodes of nats-server built
//! from the Go module proxy (1 node, or 3 in one JetStream cluster; file storage, streams with
//! one replica per node), each node behind its own Toxiproxy proxy.

pub mod client;
pub mod node;

use std::sync::Arc;

use crate::broker::{BrokerDriver, Capabilities, ClientContext};
use crate::nodes::{Home, NodeHosts, NodeRecipe};

/// The driver, registered in `crate::brokers::ALL`.
pub struct NatsDriver;

/// This broker as the broker-neutral roles see it.
pub const KIND: crate::broker::BrokerKind = crate::broker::BrokerKind(&NatsDriver);

impl BrokerDriver for NatsDriver {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn describe(&self) -> &'static str {
        "NATS JetStream (nats-server 2.12), 1 or 3 nodes"
    }

    fn allowed_nodes(&self) -> &'static [usize] {
        &[1, 3]
    }

    fn port_base(&self) -> u16 {
        19400
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: Some(
                "JetStream has atomic batch publishes at most, no transaction that covers consuming and publishing",
            ),
            refused_faults: &[],
            leaders: true,
            controller: false,
            partitions: None,
            processor_apps: &[],
        }
    }

    fn recipe(
        &self,
        home: &Home,
        nodes: usize,
        _server: &crate::broker::Props,
        hosts: NodeHosts,
        _version: &str,
    ) -> Box<dyn NodeRecipe> {
        Box::new(node::NatsNodes::new(home.clone(), nodes, hosts))
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        Ok(Arc::new(client::NatsBroker::new(
            ctx.endpoints,
            ctx.nodes,
            ctx.log.clone(),
        )))
    }

    /// A JetStream round trip (account info) with a fresh connection to `endpoint` alone.
    fn round_trip(
        &self,
        endpoint: String,
        _client: &crate::broker::ClientSettings,
    ) -> futures::future::BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let server = node::round_trip(&endpoint).await?;
            Ok(format!("JetStream round trip through {endpoint} ok (server {server})"))
        })
    }
}
