//! Network faults on a node's client traffic, as Toxiproxy toxics on its proxy: `lose-acks`
//! (replies never reach clients, requests still do), `reset` (connections reset) and `latency`
//! (every reply delayed).

use anyhow::{anyhow, Result};
use async_trait::async_trait;

use super::{Fault, FaultKind};
use crate::nodes::toxiproxy::{Toxic, Toxiproxy};
use crate::nodes::Cluster;

/// The latency fault delays every reply by this much, ± [`LATENCY_JITTER_MS`].
const LATENCY_MS: u64 = 500;
const LATENCY_JITTER_MS: u64 = 100;

pub struct ProxyFaults {
    proxy: Toxiproxy,
}

impl ProxyFaults {
    pub fn new(proxy: Toxiproxy) -> ProxyFaults {
        ProxyFaults { proxy }
    }

    /// The toxic that makes `kind`.
    fn toxic(kind: FaultKind) -> Result<Toxic> {
        match kind {
            FaultKind::LoseAcks => Ok(Toxic::lost_acks(0)),
            FaultKind::Reset => Ok(Toxic::reset(0)),
            FaultKind::Latency => Ok(Toxic::latency(LATENCY_MS, LATENCY_JITTER_MS)),
            other => Err(anyhow!("`{other}` is not a proxy fault")),
        }
    }

    fn proxy_name(node: usize, cluster: &dyn Cluster) -> Result<String> {
        let endpoints = cluster.endpoints();
        let endpoint = endpoints.iter().find(|e| e.node == node);
        endpoint
            .map(|e| e.proxy.clone())
            .ok_or_else(|| anyhow!("{} has no node {node} to target", cluster.broker()))
    }
}

#[async_trait]
impl Fault for ProxyFaults {
    fn kinds(&self) -> &'static [FaultKind] {
        &[FaultKind::LoseAcks, FaultKind::Reset, FaultKind::Latency]
    }

    async fn start(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()> {
        let toxic = Self::toxic(kind)?;
        Ok(self.proxy.add_toxic(&Self::proxy_name(node, cluster)?, &toxic).await?)
    }

    async fn stop(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()> {
        let toxic = Self::toxic(kind)?;
        Ok(self
            .proxy
            .remove_toxic(&Self::proxy_name(node, cluster)?, &toxic.name)
            .await?)
    }

    /// Every toxic on this cluster's proxies, whoever added it.
    async fn heal_all(&self, cluster: &dyn Cluster) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        for endpoint in cluster.endpoints() {
            match self.proxy.toxics(&endpoint.proxy).await {
                Ok(names) => {
                    for name in names {
                        if let Err(e) = self.proxy.remove_toxic(&endpoint.proxy, &name).await {
                            errors.push(anyhow::Error::from(e));
                        }
                    }
                }
                Err(e) => errors.push(anyhow::Error::from(e)),
            }
        }
        errors
    }
}
