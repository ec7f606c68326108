//! Apache Kafka: driver, client adapter (rdkafka: producer, consumer, transactional processor)
//! and local KRaft nodes from Maven Central.

pub mod client;
pub mod node;

use std::sync::Arc;

use crate::broker::{BrokerDriver, Capabilities, ClientContext};
use crate::nodes::{Home, NodeRecipe};

/// The driver, registered in `crate::brokers::ALL`.
pub struct KafkaDriver;

/// This broker as the broker-neutral roles see it.
pub const KIND: crate::broker::BrokerKind = crate::broker::BrokerKind(&KafkaDriver);

impl BrokerDriver for KafkaDriver {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn describe(&self) -> &'static str {
        "Apache Kafka 4.1.1 (KRaft), 1 or 3 nodes"
    }

    fn allowed_nodes(&self) -> &'static [usize] {
        &[1, 3]
    }

    fn port_base(&self) -> u16 {
        19000
    }

    /// Delivery reports and consumers both say `partition@offset`.
    fn positions(&self) -> crate::history::Positions {
        crate::history::Positions::Log
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: None,
            refused_faults: &[],
            leaders: true,
        }
    }

    fn recipe(&self, home: &Home, nodes: usize) -> Box<dyn NodeRecipe> {
        Box::new(node::KafkaNodes::new(home.clone(), nodes))
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        Ok(Arc::new(client::KafkaBroker::new(
            ctx.endpoints.join(","),
            ctx.nodes,
            ctx.run,
            ctx.log.clone(),
        )))
    }
}
