//! Faults on brokers ackcheck did not start (issue 18): a NATS node started by `ackcheck cluster
//! up` in a separate step stands in for a cluster that Docker Compose or Kubernetes runs. The
//! campaign reaches it with `--external`, kills, pauses and restarts it only through the user's
//! commands in `[external.commands]` (here `ackcheck cluster kill|pause|resume|restart`, as a
//! user would write `docker kill nats-{node}`), and loses its acknowledgements through the
//! Toxiproxy named in `[external.toxiproxy]`; the run deletes the stream it created. Then a
//! command that fails: the fault is recorded
//! as not started, with the command's output as the reason, and the run goes on. Campaigns that
//! ask for a fault without the command or proxy it needs are refused before anything starts.

#![cfg(feature = "nats")]

use std::path::Path;
use std::process::Command;

const ACKCHECK: &str = env!("CARGO_BIN_EXE_ackcheck");

/// `ackcheck ARGS`: (exit code, stdout, stderr).
fn ackcheck(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(ACKCHECK)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("ackcheck runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A NATS at-least-once campaign against the node at `endpoint`, whose proxy is `proxy`, with
/// `commands` as its `[external.commands]` table and `faults` as its nemesis.
fn campaign(dir: &Path, name: &str, endpoint: &str, proxy: &str, commands: &str, faults: &str) -> String {
    let api = ackcheck::nodes::toxiproxy_api_port();
    let text = format!(
        r#"broker = "nats"
mode = "at-least-once"
duration = "30s"

[workload]
kind = "queue"
producers = 1
consumers = 1
rate = 100

[nemesis]
faults = {faults}
interval = 2.0
duration = 3.0

[external]
endpoints = ["{endpoint}"]

[external.commands]
{commands}

[external.toxiproxy]
api = "127.0.0.1:{api}"
proxies = ["{proxy}"]
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("writing the campaign");
    path.to_string_lossy().into_owned()
}

fn verdict(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("verdict.json")).expect("verdict.json");
    serde_json::from_str(&text).expect("verdict.json is JSON")
}

#[test]
fn faults_through_the_users_commands_and_toxiproxy_on_a_cluster_started_elsewhere() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (code, _, err) = ackcheck(&["cluster", "down", "nats"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ackcheck(&["cluster", "up", "nats", "--nodes", "1"]);
    assert_eq!(code, 0, "the cluster the test stands in for: {err}");
    let (_, endpoints, _) = ackcheck(&["cluster", "endpoints", "nats"]);
    let endpoints: serde_json::Value = serde_json::from_str(&endpoints).expect("endpoints are JSON");
    let endpoint = endpoints[0]["client"].as_str().expect("a client address").to_string();
    let proxy = endpoints[0]["proxy"].as_str().expect("a proxy name").to_string();

    let outcome = std::panic::catch_unwind(|| {
        let commands = format!(
            "kill = \"{ACKCHECK} cluster kill nats --node {{node}}\"\n\
             pause = \"{ACKCHECK} cluster pause nats --node {{node}}\"\n\
             resume = \"{ACKCHECK} cluster resume nats --node {{node}}\"\n\
             restart = \"{ACKCHECK} cluster restart nats --node {{node}}\"\n\
             timeout = 90"
        );

        // 1. Refused before anything starts: a fault whose command is missing.
        let partial = campaign(
            dir.path(),
            "partial",
            &endpoint,
            &proxy,
            "kill = \"true\"",
            "[\"kill\"]",
        );
        let (code, _, err) = ackcheck(&["run", &partial, "--external", "--seed", "1"]);
        assert_eq!(code, 2, "{err}");
        assert!(!dir.path().join("partial-out").exists());
        assert!(
            err.contains("\"kill\" on external brokers needs `restart` under [external.commands]"),
            "{err}"
        );

        // 2. Kill, pause and lost acknowledgements through the user's commands and Toxiproxy.
        let full = campaign(
            dir.path(),
            "full",
            &endpoint,
            &proxy,
            &commands,
            "[\"kill\", \"pause\", \"lose-acks\"]",
        );
        let out = dir.path().join("full-out");
        let (code, stdout, err) = ackcheck(&[
            "run",
            &full,
            "--external",
            "--seed",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        eprintln!("{stdout}\n{err}");
        assert_eq!(code, 0, "the at-least-once claim holds: {stdout}{err}");
        let v = verdict(&out);
        let faults = &v["evidence"]["faults"];
        eprintln!("faults {faults}, evidence {}", v["evidence"]["grade"]);
        let started = v["evidence"]["faults_started"].as_u64().unwrap();
        assert!(started >= 3, "at least 3 faults started: {}", v["evidence"]);
        for kind in ["kill", "pause", "lose-acks"] {
            assert!(faults[kind].as_u64().unwrap_or(0) >= 1, "{kind} started: {faults}");
        }
        assert_eq!(v["counts"]["lost"], 0, "{}", v["counts"]);
        let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
        for f in [
            "start-kill",
            "stop-kill",
            "start-pause",
            "stop-pause",
            "start-lose-acks",
        ] {
            assert!(history.contains(&format!("\"f\":\"{f}\"")), "{f} is in the history");
        }
        let log = std::fs::read_to_string(out.join("run.log")).unwrap();
        assert!(log.contains("external kill node 0: `"), "the command is in the run log");
        assert!(log.contains("cluster kill nats --node 0` ok in"), "{log}");
        let (code, _, err) = ackcheck(&["cluster", "status", "nats"]);
        assert_eq!(code, 0, "the run mended what it broke: {err}");
        // Cleanup: the run deleted the stream it created (no --keep-dests).
        let created: Vec<String> = log
            .lines()
            .filter_map(|l| l.split("] created ").nth(1))
            .filter_map(|rest| rest.split(" with ").next())
            .map(str::to_string)
            .collect();
        assert!(!created.is_empty(), "the run log names what it created: {log}");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        for dest in &created {
            assert!(log.contains(&format!("] deleted {dest}\n")), "{dest} deleted: {log}");
            let stream = ackcheck::brokers::nats::client::stream_name(dest);
            let found = runtime.block_on(async {
                let client = async_nats::connect(endpoint.as_str()).await.expect("a NATS connection");
                let js = async_nats::jetstream::new(client);
                js.get_stream(&stream).await.is_ok()
            });
            assert!(!found, "the stream {stream} is still on the broker");
        }

        // 3. A command that fails: the fault is not started, with the command's output as the
        //    reason, and the run goes on to its verdict.
        let failing = format!(
            "kill = \"echo no container named nats-{{node}} >&2; exit 1\"\nrestart = \"true\"\npause = \"{ACKCHECK} cluster pause nats --node {{node}}\"\nresume = \"{ACKCHECK} cluster resume nats --node {{node}}\""
        );
        let broken = campaign(
            dir.path(),
            "failing",
            &endpoint,
            &proxy,
            &failing,
            "[\"kill\", \"pause\"]",
        );
        let out = dir.path().join("failing-out");
        let (code, stdout, err) = ackcheck(&[
            "run",
            &broken,
            "--external",
            "--seed",
            "1",
            "--duration",
            "15s",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(code == 0 || code == 3, "a verdict: {stdout}{err}");
        let v = verdict(&out);
        let skipped = v["evidence"]["faults_skipped"].as_array().expect("skips").clone();
        let kill_skip = skipped
            .iter()
            .find(|s| s["kind"] == "kill")
            .unwrap_or_else(|| panic!("the failed kill is a skip: {}", v["evidence"]));
        let reason = kill_skip["reason"].as_str().unwrap();
        assert!(reason.contains("no container named nats-0"), "{reason}");
        assert_eq!(kill_skip["cause"], "failed");
        assert!(
            v["evidence"]["faults"]["pause"].as_u64().unwrap_or(0) >= 1,
            "the schedule went on after the failed kill: {}",
            v["evidence"]
        );
    });
    let (code, _, err) = ackcheck(&["cluster", "down", "nats"]);
    assert_eq!(code, 0, "{err}");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
