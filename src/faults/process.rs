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

    /// Resume every paused node and restart every killed one, as the cluster knows how
    /// ([`Cluster::heal_processes`]).
    async fn heal_all(&self, cluster: &dyn Cluster) -> Vec<anyhow::Error> {
        cluster.heal_processes().await
    }
}
