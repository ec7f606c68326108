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
    // The audit campaigns (known-bad configurations and their safe twins) load too, and each
    // says in its opening comment what it shows.
    // So do the partition campaigns (workloads/partitions/), which all partition their nodes.
    let mut audits = 0;
    let mut partitions = 0;
    let folders = ["/workloads/audit", "/workloads/partitions"].map(|f| format!("{}{f}", env!("CARGO_MANIFEST_DIR")));
    for entry in folders
        .iter()
        .flat_map(|f| std::fs::read_dir(f).unwrap_or_else(|e| panic!("{f}: {e}")))
    {
        let file = entry.expect("a directory entry").path();
        if file.extension().is_some_and(|e| e == "toml") {
            if file.parent().is_some_and(|d| d.ends_with("partitions")) {
                partitions += 1;
                let campaign =
                    Campaign::load(&file).unwrap_or_else(|e| panic!("{} does not load: {e}", file.display()));
                assert!(
                    campaign.partition_faults().next().is_some(),
                    "{} makes no partition",
                    file.display()
                );
            } else {
                audits += 1;
            }
            let text = std::fs::read_to_string(&file).expect("readable");
            assert!(text.starts_with("# "), "{} opens with no comment", file.display());
            if let Err(e) = Campaign::load(&file) {
                panic!("{} does not load: {e}", file.display());
            }
        }
    }
    assert!(audits >= 5, "{audits} audit campaigns");
    assert!(partitions >= 3, "{partitions} partition campaigns");
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

/// The matrix behind analysis/ names only campaigns that exist and overrides they take.
#[test]
fn the_analysis_matrix_expands_to_valid_cells() {
    let cells =
        ackcheck::matrix::cells(std::path::Path::new("analysis/matrix.toml")).expect("analysis/matrix.toml is valid");
    assert_eq!(cells.len(), 78, "22 campaigns and 4 commit variants, 3 seeds each");
    assert!(cells.iter().any(|c| c.name == "kafka-at-least-once-auto-commit-seed3"));
}

/// The presets for brokers something else runs (Docker Compose, Kubernetes, SSH) are valid for
/// `run --external`: every fault they ask for has its commands or proxy.
#[test]
fn the_external_presets_are_valid_for_external_runs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads/external");
    let mut presets = 0;
    for entry in std::fs::read_dir(dir).expect("workloads/external/ is readable") {
        let file = entry.expect("a directory entry").path();
        if file.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        presets += 1;
        let text = std::fs::read_to_string(&file).expect("readable");
        assert!(text.starts_with("# "), "{} opens with no comment", file.display());
        let plan = ackcheck::plan::Plan::resolve(&ackcheck::plan::RunOptions::external_check(&file))
            .unwrap_or_else(|e| panic!("{} is not valid for --external: {e}", file.display()));
        assert!(
            !plan.campaign.nemesis.faults.is_empty(),
            "{} breaks nothing",
            file.display()
        );
    }
    assert!(presets >= 3, "{presets} presets");
}
