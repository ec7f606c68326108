//! Partitions between nodes, in Jepsen's shapes: the cluster cuts traffic between its nodes as
//! a [`Grudge`] says (see `crate::nodes::netns`), and healing lifts every cut.
//!
//! Each shape is drawn around one node, the fault's target (a random node, the leader, or a
//! scripted step's node), so that seeds, targets and scripted steps work as for every other
//! fault:
//!
//! - `partition-one`: the node hears no other node and no other node hears it (isolate one
//!   node; with `target = "leader"`, isolate the leader);
//! - `partition-halves`: a minority of ⌊n/2⌋ nodes starting at the node, against the rest
//!   (with 3 nodes the minority is the node alone);
//! - `partition-bridge`: the node sees both sides, the two halves of the others do not see each
//!   other (needs 3 nodes or more);
//! - `partition-ring`: majorities ring — every node hears itself and the next ⌊n/2⌋ nodes after
//!   it, so each sees a majority but no two see the same one (the drawn node only orders it);
//! - `partition-one-way`: the node hears no other node, but the others still hear it (packets
//!   are dropped on input only);
//! - `partition-replication`: as `partition-one`, but only packets to the nodes' replication
//!   ports are dropped (Kafka's inter-broker listener): followers stop fetching from the node
//!   and it from them, while the KRaft quorum and the clients still reach everyone — so a
//!   Kafka leader shrinks its ISR to itself and goes on acknowledging `acks=all` writes alone
//!   when `min.insync.replicas` is 1.
//!
//! Cuts drop packets on input at the deaf node, as Jepsen's iptables nemesis does: a TCP
//! connection across a one-way cut stalls both ways once acknowledgements go missing, while
//! datagrams and the first packets of a connection show the asymmetry.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use async_trait::async_trait;

use super::{Fault, FaultKind};
use crate::nodes::{Cluster, Grudge, Traffic};

pub struct PartitionFaults;

/// The kinds this package makes, for campaign checks.
pub const KINDS: &[FaultKind] = &[
    FaultKind::PartitionOne,
    FaultKind::PartitionHalves,
    FaultKind::PartitionBridge,
    FaultKind::PartitionRing,
    FaultKind::PartitionOneWay,
    FaultKind::PartitionReplication,
];

/// The grudge of `kind` drawn around `node` in a cluster of `nodes` nodes.
pub fn grudge(kind: FaultKind, node: usize, nodes: usize) -> Result<Grudge> {
    if nodes < 2 {
        bail!("a partition needs at least 2 nodes; this cluster has {nodes}");
    }
    let node = node % nodes;
    let all: Vec<usize> = (0..nodes).collect();
    // The nodes after `node`, in ring order.
    let after = |k: usize| -> Vec<usize> { (1..=k).map(|i| (node + i) % nodes).collect() };
    let others: Vec<usize> = after(nodes - 1);
    Ok(match kind {
        FaultKind::PartitionOne | FaultKind::PartitionReplication => Grudge::between(&[node], &others),
        FaultKind::PartitionHalves => {
            let mut minority = vec![node];
            minority.extend(after(nodes / 2 - 1));
            let majority: Vec<usize> = all.iter().copied().filter(|n| !minority.contains(n)).collect();
            Grudge::between(&minority, &majority)
        }
        FaultKind::PartitionBridge => {
            if nodes < 3 {
                bail!("a bridge partition needs at least 3 nodes (one bridge and two sides); this cluster has {nodes}");
            }
            let (left, right) = others.split_at(others.len() / 2);
            Grudge::between(left, right)
        }
        FaultKind::PartitionRing => {
            let mut g = Grudge::default();
            for n in 0..nodes {
                let heard: BTreeSet<usize> = (0..=nodes / 2).map(|i| (n + i) % nodes).collect();
                let deaf_to: Vec<usize> = all.iter().copied().filter(|p| !heard.contains(p)).collect();
                g.cut_one_way(&[n], &deaf_to);
            }
            g
        }
        FaultKind::PartitionOneWay => {
            let mut g = Grudge::default();
            g.cut_one_way(&[node], &others);
            g
        }
        other => bail!("`{other}` is not a partition"),
    })
}

/// What a partition of `kind` cuts.
pub fn traffic(kind: FaultKind) -> Traffic {
    match kind {
        FaultKind::PartitionReplication => Traffic::Replication,
        _ => Traffic::All,
    }
}

/// Its shape's name in events (`one`, `halves`, …).
pub fn shape(kind: FaultKind) -> &'static str {
    kind.name().strip_prefix("partition-").unwrap_or(kind.name())
}

#[async_trait]
impl Fault for PartitionFaults {
    fn kinds(&self) -> &'static [FaultKind] {
        KINDS
    }

    async fn start(&self, kind: FaultKind, node: usize, cluster: &dyn Cluster) -> Result<()> {
        let grudge = grudge(kind, node, cluster.nodes())?;
        cluster.partition(&grudge, traffic(kind)).await?;
        Ok(())
    }

    async fn stop(&self, _kind: FaultKind, _node: usize, cluster: &dyn Cluster) -> Result<()> {
        cluster.heal_partitions().await?;
        Ok(())
    }

    async fn heal_all(&self, cluster: &dyn Cluster) -> Vec<anyhow::Error> {
        match cluster.heal_partitions().await {
            Ok(()) => Vec::new(),
            Err(e) => vec![anyhow::Error::from(e).context("healing the partitions")],
        }
    }

    fn details(&self, kind: FaultKind, node: usize, nodes: usize) -> serde_json::Map<String, serde_json::Value> {
        let mut details = serde_json::Map::new();
        details.insert("shape".into(), shape(kind).into());
        if traffic(kind) == Traffic::Replication {
            details.insert("traffic".into(), "replication".into());
        }
        if let Ok(g) = grudge(kind, node, nodes) {
            if let Ok(value) = serde_json::to_value(&g) {
                details.insert("grudge".into(), value);
            }
        }
        details
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(g: &Grudge, node: usize) -> Vec<usize> {
        g.0.get(&node).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    #[test]
    fn three_node_shapes() {
        let one = grudge(FaultKind::PartitionOne, 1, 3).unwrap();
        assert_eq!(
            (cut(&one, 1), cut(&one, 0), cut(&one, 2)),
            (vec![0, 2], vec![1], vec![1])
        );
        assert_eq!(grudge(FaultKind::PartitionHalves, 1, 3).unwrap(), one);
        let bridge = grudge(FaultKind::PartitionBridge, 0, 3).unwrap();
        assert_eq!(
            (cut(&bridge, 0), cut(&bridge, 1), cut(&bridge, 2)),
            (vec![], vec![2], vec![1])
        );
        let ring = grudge(FaultKind::PartitionRing, 0, 3).unwrap();
        assert_eq!(
            (cut(&ring, 0), cut(&ring, 1), cut(&ring, 2)),
            (vec![2], vec![0], vec![1])
        );
        let one_way = grudge(FaultKind::PartitionOneWay, 2, 3).unwrap();
        assert_eq!((cut(&one_way, 2), cut(&one_way, 0)), (vec![0, 1], vec![]));
    }

    #[test]
    fn five_node_halves_and_ring_leave_every_node_a_majority_or_a_minority() {
        let halves = grudge(FaultKind::PartitionHalves, 3, 5).unwrap();
        assert_eq!(cut(&halves, 3), vec![0, 1, 2]);
        assert_eq!(cut(&halves, 4), vec![0, 1, 2]);
        assert_eq!(cut(&halves, 0), vec![3, 4]);
        let ring = grudge(FaultKind::PartitionRing, 0, 5).unwrap();
        for n in 0..5 {
            assert_eq!(cut(&ring, n).len(), 2, "node {n} hears itself and two others");
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_refused() {
        assert!(grudge(FaultKind::PartitionOne, 0, 1).is_err());
        assert!(grudge(FaultKind::PartitionBridge, 0, 2).is_err());
        assert!(grudge(FaultKind::Kill, 0, 3).is_err());
    }
}
