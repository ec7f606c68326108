//! The rabbitmq cluster: not written yet (in progress in this session).

use async_trait::async_trait;

use super::{BrokerKind, Cluster, ClusterError, Home, NodeEndpoint, NodeProcess, NodeStatus, Result};

pub struct RabbitCluster {
    home: Home,
    nodes: usize,
}

impl RabbitCluster {
    pub fn new(home: Home, nodes: usize) -> RabbitCluster {
        RabbitCluster { home, nodes }
    }
}

#[async_trait]
impl Cluster for RabbitCluster {
    fn kind(&self) -> BrokerKind {
        BrokerKind::Rabbitmq
    }
    fn nodes(&self) -> usize {
        self.nodes
    }
    async fn up(&self) -> Result<()> {
        Err(ClusterError::Other("rabbitmq is not supported by this build yet".into()))
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
        Err(ClusterError::Other("rabbitmq is not supported by this build yet".into()))
    }
}
