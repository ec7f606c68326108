//! Apache Kafka: driver, client adapter (rdkafka: producer, consumer, transactional processor)
//! local KRaft nodes from Maven Central, and Kafka Streams as a pipeline processor ([`streams`]).

pub mod client;
pub mod node;
pub mod props;
pub mod streams;

use std::sync::Arc;

use crate::broker::{BrokerDriver, Capabilities, ClientContext};
use crate::nodes::{Home, NodeHosts, NodeRecipe};

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
            controller: true,
            partitions: None,
            processor_apps: streams::APPS,
        }
    }

    fn dest_settings(&self, table: &toml::Table) -> Result<serde_json::Value, crate::broker::OptionError> {
        props::dest_settings(table)
    }

    fn client_settings(
        &self,
        mode: crate::history::Guarantee,
        tables: &crate::broker::ClientTables,
    ) -> Result<crate::broker::ClientSettings, crate::broker::OptionError> {
        props::client_settings(mode, tables)
    }

    fn server_settings(&self, table: &toml::Table) -> Result<crate::broker::Props, crate::broker::OptionError> {
        props::server_settings(table)
    }

    fn recipe(
        &self,
        home: &Home,
        nodes: usize,
        server: &crate::broker::Props,
        hosts: NodeHosts,
        version: &str,
    ) -> Box<dyn NodeRecipe> {
        Box::new(node::KafkaNodes::new(home.clone(), nodes, server.clone(), hosts).with_version(version))
    }

    /// Kafka's jars come from Maven Central at any version; these are the ones ackcheck's
    /// server settings are written for (KRaft, combined broker and controller nodes).
    fn versions(&self) -> &'static [&'static str] {
        node::VERSIONS
    }

    /// The transactional id the client gives a transactional producer or processor.
    fn coordinator_key(&self, run: &str, identity: &str) -> Option<String> {
        Some(client::transactional_id(run, identity))
    }

    fn client(&self, ctx: &ClientContext) -> anyhow::Result<Arc<dyn crate::broker::Broker>> {
        Ok(Arc::new(client::KafkaBroker::new(
            ctx.endpoints.join(","),
            ctx.nodes,
            ctx.run,
            ctx.client.clone(),
            ctx.dest_settings,
            ctx.log.clone(),
        )))
    }

    /// A metadata request with a fresh client whose only bootstrap address is `endpoint`, over
    /// the connection settings (TLS, SASL) of the run's producers.
    fn round_trip(
        &self,
        endpoint: String,
        client: &crate::broker::ClientSettings,
    ) -> futures::future::BoxFuture<'static, Result<String, String>> {
        let connection = props::connection_props(client);
        Box::pin(async move {
            let brokers = node::metadata_round_trip(endpoint.clone(), connection).await?;
            Ok(format!("metadata through {endpoint} lists brokers {brokers:?}"))
        })
    }
}
