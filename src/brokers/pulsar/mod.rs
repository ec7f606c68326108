//! Apache Pulsar: driver, client adapter (the `pulsar` crate) and a local standalone node from
//! Maven Central.

pub mod client;
pub mod node;

use std::sync::Arc;

use anyhow::Context;

use crate::broker::{BrokerDriver, Capabilities, ClientContext};
use crate::nodes::{Home, NodeRecipe};

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
        }
    }

    fn recipe(&self, home: &Home, _nodes: usize) -> Box<dyn NodeRecipe> {
        Box::new(node::PulsarNodes::new(home.clone()))
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        let endpoint = ctx
            .endpoints
            .first()
            .context("a pulsar campaign needs one endpoint, got none")?;
        Ok(Arc::new(client::PulsarBroker::new(endpoint, ctx.log.clone())))
    }
}
