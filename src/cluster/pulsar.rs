//! The pulsar cluster: not written yet (in progress in this session).

use async_trait::async_trait;

use super::{BrokerKind, Cluster, ClusterError, Home, NodeEndpoint, NodeProcess, NodeStatus, Result};

pub struct PulsarCluster {
    home: Home,
    nodes: usize,
}

impl PulsarCluster {
    pub fn new(home: Home, nodes: usize) -> PulsarCluster {
        PulsarCluster { home, nodes }
    }
}

#[async_trait]
impl Cluster for PulsarCluster {
    fn kind(&self) -> BrokerKind {
        BrokerKind::Pulsar
    }
    fn nodes(&self) -> usize {
        self.nodes
    }
    async fn up(&self) -> Result<()> {
        Err(ClusterError::Other("pulsar is not supported by this build yet".into()))
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
        Err(ClusterError::Other("pulsar is not supported by this build yet".into()))
    }
}
