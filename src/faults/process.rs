//! Process faults through the cluster's process control: `kill` (SIGKILL, healed by a restart on
//! the node's data) and `pause` (SIGSTOP, healed by SIGCONT).

use anyhow::Result;
use async_trait::async_trait;

use super::{Fault, FaultKind};
use crate::nodes::Cluster;

pub struct ProcessFaults;

#[async_trait]
impl Fault for ProcessFaults {
    fn kinds(&self) -> &'static [FaultKind] {
        &[FaultKind::Kill, FaultKind::Pause]
    }

    async fn start(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()> {
        match kind {
            FaultKind::Kill => cluster.kill(node).await?,
            _ => cluster.pause(node).await?,
        }
        Ok(())
    }

    async fn stop(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()> {
        match kind {
            FaultKind::Kill => cluster.restart(node).await?,
            _ => cluster.resume(node).await?,
        }
        Ok(())
    }

    /// Resume every paused node (SIGCONT does nothing to a running one), then restart every node
    /// without a process.
    async fn heal_all(&self, cluster: &dyn Cluster) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        for node in 0..cluster.nodes() {
            if cluster.node_process(node).pid().is_some() {
                if let Err(e) = cluster.resume(node).await {
                    errors.push(anyhow::Error::from(e).context(format!("resuming node {node}")));
                }
            }
        }
        for node in 0..cluster.nodes() {
            if cluster.node_process(node).pid().is_none() {
                if let Err(e) = cluster.restart(node).await {
                    errors.push(anyhow::Error::from(e).context(format!("restarting node {node}")));
                }
            }
        }
        errors
    }
}
