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

/// A port of the plan held by another program fails the run within seconds, naming the port,
/// who holds it and how to move the whole port plan; a bad ACKCHECK_PORT_BASE is refused first.
#[test]
fn a_taken_port_fails_fast_and_names_its_holder_and_the_way_out() {
    let home = tempfile::tempdir().expect("a temporary home");
    let out = home.path().join("out");
    let ackcheck_at = |base: &str, args: &[&str]| {
        let run = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ACKCHECK_HOME", home.path())
            .env("ACKCHECK_PORT_BASE", base)
            .output()
            .expect("the ackcheck binary runs");
        (
            run.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&run.stderr).into_owned(),
        )
    };
    for bad in ["abc", "80", "65000"] {
        let (code, err) = ackcheck_at(bad, &["cluster", "status", "nats"]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains(&format!("ACKCHECK_PORT_BASE={bad} is not a port base")),
            "{err}"
        );
    }
    // A base nothing else uses here; NATS node 0's client port is base + 400.
    let holder = std::net::TcpListener::bind(("127.0.0.1", 23400)).expect("binding the port");
    let started = std::time::Instant::now();
    let out_arg = out.to_string_lossy().into_owned();
    let (code, err) = ackcheck_at(
        "23000",
        &[
            "run",
            "workloads/nats-at-least-once.toml",
            "--duration",
            "5",
            "--out",
            &out_arg,
        ],
    );
    let took = started.elapsed();
    drop(holder);
    assert_eq!(code, 4, "{err}");
    assert!(took.as_secs() < 40, "failing took {took:?}");
    assert!(err.contains("port 23400 on 127.0.0.1 is already taken by"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "the holder is named: {err}"
    );
    assert!(err.contains("ACKCHECK_PORT_BASE (now 23000"), "{err}");
}
