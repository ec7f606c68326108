//! RabbitMQ: driver, client adapter (lapin) and local nodes of Debian's `rabbitmq-server`
//! (1 or 3, each with its own epmd and cookie).
//!
//! `[dest]` settings: `queue_type` = `"quorum"` (the default: Raft-replicated over
//! every node) or `"classic"` (one node's queue).

pub mod client;
pub mod node;

use std::sync::Arc;

use crate::broker::{BrokerDriver, Capabilities, ClientContext, OptionError};
use crate::nodes::{Home, NodeRecipe};
use client::QueueType;

/// The driver, registered in `crate::brokers::ALL`.
pub struct RabbitDriver;

/// This broker as the broker-neutral roles see it.
pub const KIND: crate::broker::BrokerKind = crate::broker::BrokerKind(&RabbitDriver);

impl BrokerDriver for RabbitDriver {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn describe(&self) -> &'static str {
        "RabbitMQ 3.10 from Debian, 1 or 3 nodes"
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
        }
    }

    fn dest_settings(&self, table: &toml::Table) -> Result<serde_json::Value, OptionError> {
        let mut queue_type = QueueType::default();
        for (key, value) in table {
            match (key.as_str(), value.as_str()) {
                ("queue_type", Some("quorum")) => queue_type = QueueType::Quorum,
                ("queue_type", Some("classic")) => queue_type = QueueType::Classic,
                ("queue_type", _) => {
                    return Err(OptionError {
                        key: key.clone(),
                        message: format!("must be \"quorum\" or \"classic\", not {value}"),
                    })
                }
                _ => {
                    return Err(OptionError {
                        key: key.clone(),
                        message: "is not a RabbitMQ destination setting; [dest] has `queue_type`".into(),
                    })
                }
            }
        }
        Ok(serde_json::json!({ "queue_type": queue_type.name() }))
    }

    fn recipe(&self, home: &Home, nodes: usize) -> Box<dyn NodeRecipe> {
        Box::new(node::RabbitNodes::new(home.clone(), nodes))
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        let queue_type = match ctx.dest_settings.get("queue_type").and_then(|v| v.as_str()) {
            Some("classic") => QueueType::Classic,
            _ => QueueType::Quorum,
        };
        Ok(Arc::new(client::RabbitBroker::new(
            ctx.endpoints,
            queue_type,
            ctx.log.clone(),
        )))
    }
}
