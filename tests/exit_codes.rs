//! Exit codes as a CI server reads them (README "Exit codes"): 2 for unusable input, 4 for
//! infrastructure that failed, and `ackcheck validate`, which starts nothing.

use std::process::Command;

fn ackcheck(args: &[&str], home: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ACKCHECK_HOME", home)
        .output()
        .expect("the ackcheck binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn validate_checks_a_campaign_fully_and_starts_nothing() {
    let home = tempfile::tempdir().expect("a temporary home");
    let (code, out, err) = ackcheck(&["validate", "workloads/kafka-3node-txn.toml"], home.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("valid — kafka with 3 node(s), exactly-once, txn workload, 60 s, faults: kill, pause, lose-acks"),
        "{out}"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "broker = \"sqs\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n[nemesis]\nfaults = [\"kill\"]\n",
    )
    .expect("writing the campaign");
    let (code, out, err) = ackcheck(&["validate", bad.to_str().expect("utf-8")], home.path());
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("line 6: `nemesis.faults`: sqs cannot take the fault \"kill\""),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(home.path()).expect("the home").count(),
        0,
        "nothing installed or started"
    );
}

#[test]
fn unusable_input_exits_2_and_failed_infrastructure_exits_4() {
    let home = tempfile::tempdir().expect("a temporary home");
    // --external without an [external] table: the request does not fit the campaign.
    let (code, _, err) = ackcheck(
        &["run", "workloads/quickstart.toml", "--external", "--no-faults"],
        home.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--external needs an [external] table"), "{err}");
    // A node the broker does not have.
    let (code, _, err) = ackcheck(&["cluster", "kill", "kafka", "--node", "7"], home.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("there is no node 7"), "{err}");
    // The output directory cannot be created: infrastructure, not the campaign's fault.
    let (code, _, err) = ackcheck(
        &[
            "run",
            "workloads/quickstart.toml",
            "--out",
            "/proc/ackcheck-cannot-write-here/out",
        ],
        home.path(),
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("creating the output directory"), "{err}");
}
