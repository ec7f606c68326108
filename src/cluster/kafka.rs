//! The kafka cluster: not written yet (in progress in this session).

use async_trait::async_trait;

use super::{BrokerKind, Cluster, ClusterError, Home, NodeEndpoint, NodeProcess, NodeStatus, Result};

pub struct KafkaCluster {
    home: Home,
    nodes: usize,
}

impl KafkaCluster {
    pub fn new(home: Home, nodes: usize) -> KafkaCluster {
        KafkaCluster { home, nodes }
    }
}

#[async_trait]
impl Cluster for KafkaCluster {
    fn kind(&self) -> BrokerKind {
        BrokerKind::Kafka
    }
    fn nodes(&self) -> usize {
        self.nodes
    }
    async fn up(&self) -> Result<()> {
        Err(ClusterError::Other("kafka is not supported by this build yet".into()))
    }
    async fn down(&self) -> Result<()> {
        Ok(())
    }
    async fn status(&self) -> Result<Vec<NodeStatus>> {
        Ok(vec![])
    }
    fn endpoints(&self) -> Vec<NodeEndpoint> {
        vec![]
    }
    fn node_process(&self, node: usize) -> NodeProcess {
        NodeProcess::in_dir(self.home.node_dir(self.kind(), node))
    }
    async fn restart(&self, _node: usize) -> Result<()> {
        Err(ClusterError::Other("kafka is not supported by this build yet".into()))
    }
}
