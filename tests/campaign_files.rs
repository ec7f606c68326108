//! Every campaign file shipped in `workloads/` loads: the broker, node count, mode, workload and
//! faults it names are all ones its driver declares (nothing is started).

use ackcheck::campaign::Campaign;

#[test]
fn every_shipped_campaign_file_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("workloads/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    for file in &files {
        if let Err(e) = Campaign::load(file) {
            panic!("{} does not load: {e}", file.display());
        }
    }
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for three_nodes in [
        "kafka-3node-at-least-once.toml",
        "kafka-3node-exactly-once.toml",
        "kafka-3node-txn.toml",
    ] {
        assert!(
            names.iter().any(|n| n == three_nodes),
            "{three_nodes} is missing: {names:?}"
        );
        let c = Campaign::load(&std::path::Path::new(dir).join(three_nodes)).expect("loads");
        assert_eq!(c.nodes, 3, "{three_nodes}");
        assert_eq!(c.nemesis.target, ackcheck::faults::Target::Leader, "{three_nodes}");
    }
}
