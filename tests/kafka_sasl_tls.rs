//! A broker that takes only TLS with SASL/SCRAM (issue 18): the user's own connection
//! properties must reach every client of a run (producers, consumers, the topic admin, the
//! metadata probe), and the password — read from the environment, never written in the
//! campaign — must appear in nothing the run leaves (history, verdict, run log, report, output).
//!
//! The broker is a real Kafka 4.1.1 node from ackcheck's own install, configured by this test as
//! a user's broker would be: one `SASL_SSL` listener for clients, a keystore made here by the
//! JDK's `keytool`, and a SCRAM-SHA-256 user created when its storage is formatted. ackcheck
//! reaches it with `--external`, as it would a remote cluster.

#![cfg(feature = "kafka")]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ackcheck, read};

/// The Kafka node this test runs; killed when dropped, also when an assertion fails.
struct SaslNode {
    child: Child,
    log: PathBuf,
}

impl Drop for SaslNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the OS's choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on loopback")
        .port()
}

fn run_ok(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what} runs: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate for 127.0.0.1 in a PKCS12 keystore (the broker's) and as PEM (the
/// clients' trusted CA).
fn certificates(dir: &Path, store_password: &str) -> (PathBuf, PathBuf) {
    let keystore = dir.join("broker.p12");
    let ca = dir.join("ca.pem");
    run_ok(
        "keytool -genkeypair",
        Command::new("keytool").args([
            "-genkeypair",
            "-alias",
            "broker",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-dname",
            "CN=localhost",
            "-ext",
            "SAN=ip:127.0.0.1,dns:localhost",
            "-validity",
            "2",
            "-storetype",
            "PKCS12",
            "-keystore",
            keystore.to_str().unwrap(),
            "-storepass",
            store_password,
            "-keypass",
            store_password,
        ]),
    );
    run_ok(
        "keytool -exportcert",
        Command::new("keytool").args([
            "-exportcert",
            "-rfc",
            "-alias",
            "broker",
            "-keystore",
            keystore.to_str().unwrap(),
            "-storepass",
            store_password,
            "-file",
            ca.to_str().unwrap(),
        ]),
    );
    (keystore, ca)
}

/// Start one KRaft node whose only client listener is SASL_SSL on `port`, with the SCRAM user
/// `user`/`password`; wait until it accepts TCP connections there.
fn start_node(dir: &Path, port: u16, user: &str, password: &str) -> SaslNode {
    // ackcheck's own install step (cached): up once, down again.
    let (code, _, err) = ackcheck(&["cluster", "up", "kafka", "--nodes", "1"], None);
    assert_eq!(code, 0, "installing Kafka through ackcheck: {err}");
    let (code, _, err) = ackcheck(&["cluster", "down", "kafka"], None);
    assert_eq!(code, 0, "{err}");
    let install = ackcheck::nodes::Home::from_env().install_dir("kafka-4.1.1");

    let store_password = "store-pass-for-this-test";
    let (keystore, _) = certificates(dir, store_password);
    let (controller, internal) = (free_port(), free_port());
    let data = dir.join("data");
    let config = dir.join("server.properties");
    std::fs::write(
        &config,
        format!(
            "process.roles=broker,controller
node.id=0
controller.quorum.voters=0@127.0.0.1:{controller}
listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={store_password}
ssl.key.password={store_password}
log.dirs={data}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
",
            keystore = keystore.display(),
            data = data.display(),
        ),
    )
    .expect("writing server.properties");
    let java = |main: &str| ackcheck::brokers::kafka::node::java_command(&install, &["-Xmx512m"], main);
    run_ok(
        "kafka.tools.StorageTool format --add-scram",
        java("kafka.tools.StorageTool").args([
            "format",
            "--cluster-id",
            "YWNrY2hlY2stc2FzbC10bHM",
            "--config",
            config.to_str().unwrap(),
            "--add-scram",
            &format!("SCRAM-SHA-256=[name={user},password={password}]"),
        ]),
    );
    let log = dir.join("kafka.log");
    let child = java("kafka.Kafka")
        .arg(&config)
        .stdout(std::fs::File::create(&log).expect("the node's log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("java starts Kafka");
    let node = SaslNode { child, log };
    let deadline = Instant::now() + Duration::from_secs(90);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the SASL_SSL node did not listen within 90 s: {}",
            read(&node.log)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    node
}

/// An at-least-once queue campaign against the node at `port`, over SASL_SSL with SCRAM, the
/// password read from the environment variable `password_env`.
fn campaign(dir: &Path, name: &str, port: u16, user: &str, ca: &Path, password_env: &str) -> PathBuf {
    let connection = format!(
        "\"security.protocol\" = \"SASL_SSL\"
\"sasl.mechanisms\" = \"SCRAM-SHA-256\"
\"sasl.username\" = \"{user}\"
\"sasl.password\" = {{ env = \"{password_env}\" }}
\"ssl.ca.location\" = \"{ca}\"
",
        ca = ca.display()
    );
    let text = format!(
        "broker = \"kafka\"
mode = \"at-least-once\"
duration = \"8s\"

[workload]
kind = \"queue\"
producers = 1
consumers = 1
rate = 300

[external]
endpoints = [\"127.0.0.1:{port}\"]

[client.producer]
{connection}
[client.consumer]
{connection}"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("writing the campaign");
    path
}

#[test]
fn tls_and_scram_settings_reach_every_client_and_the_password_nothing_written() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let user = "orders-app";
    // A password no other file of the machine contains, so that finding it anywhere is a leak.
    let password = format!("scram-pw-{}-{}", std::process::id(), chrono_free_nanos());
    let port = free_port();
    let node = start_node(dir.path(), port, user, &password);
    let ca = dir.path().join("ca.pem");

    // 1. The right password, from the environment: the run works end to end.
    let good = campaign(dir.path(), "sasl", port, user, &ca, "ACKCHECK_TEST_SCRAM_PASSWORD");
    let out = dir.path().join("sasl-out");
    let args = [
        "run",
        good.to_str().unwrap(),
        "--external",
        "--no-faults",
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(args)
        .env("ACKCHECK_TEST_SCRAM_PASSWORD", &password)
        .output()
        .expect("ackcheck runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout).into_owned(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "the at-least-once claim holds over SASL_SSL: {stdout}{stderr}\nnode log: {}",
        read(&node.log)
    );
    let verdict: serde_json::Value = serde_json::from_str(&read(&out.join("verdict.json"))).expect("verdict.json");
    let messages = verdict["counts"]["messages"].as_u64().expect("a message count");
    eprintln!("over SASL_SSL/SCRAM: {messages} messages, counts {}", verdict["counts"]);
    assert!(messages >= 500, "messages went through: {}", verdict["counts"]);
    assert_eq!(verdict["counts"]["lost"], 0, "{}", verdict["counts"]);

    // The history header records the user's connection settings, the password redacted.
    let history = read(&out.join("history.jsonl"));
    let header: serde_json::Value =
        serde_json::from_str(history.lines().next().expect("a header line")).expect("the header is JSON");
    for role in ["producer", "consumer"] {
        let props = &header["config"]["client"][role];
        assert_eq!(props["security.protocol"]["value"], "SASL_SSL", "{props}");
        // Every `sasl.*` key counts as a secret (issue 11), the mechanism and user name too.
        assert_eq!(props["sasl.mechanisms"]["value"], "<redacted>", "{props}");
        assert_eq!(props["ssl.ca.location"]["value"], ca.to_str().unwrap(), "{props}");
        assert_eq!(props["sasl.password"]["value"], "<redacted>", "{props}");
        assert_eq!(props["sasl.password"]["from"], "user", "{props}");
    }

    // The password is in nothing the run wrote or printed.
    let mut written = vec![
        ("stdout".to_string(), stdout.clone()),
        ("stderr".to_string(), stderr.clone()),
    ];
    for entry in std::fs::read_dir(&out).expect("the run directory") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            written.push((path.display().to_string(), read(&path)));
        }
    }
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    for required in ["history.jsonl", "verdict.json", "run.log", "report.html"] {
        assert!(
            names.iter().any(|n| n.ends_with(required)),
            "the run wrote {required}: {names:?}"
        );
    }
    for (name, text) in &written {
        assert!(!text.contains(&password), "the password leaked into {name}");
    }

    // The topic admin went over SASL_SSL too: the run created its topic and deleted it again.
    let log = read(&out.join("run.log"));
    assert!(log.contains("] created "), "{log}");
    assert!(log.contains("] deleted "), "the run deleted its topic: {log}");

    // 2. A wrong password: the broker refuses the clients, the run says so and fails, and the
    //    wrong password is not echoed either.
    let wrong = format!("{password}-wrong");
    let out = dir.path().join("wrong-out");
    let run = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args([
            "run",
            good.to_str().unwrap(),
            "--external",
            "--no-faults",
            "--duration",
            "5s",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("ACKCHECK_TEST_SCRAM_PASSWORD", &wrong)
        .output()
        .expect("ackcheck runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("wrong password: exit {:?}\n{text}", run.status.code());
    assert_ne!(run.status.code(), Some(0), "a refused login is no passing run: {text}");
    assert!(
        text.to_lowercase().contains("authentication"),
        "the error names the failed authentication: {text}\nrun.log:\n{}",
        read(&out.join("run.log"))
    );
    assert!(!text.contains(&wrong), "the wrong password is echoed: {text}");
    if out.join("run.log").exists() {
        assert!(
            !read(&out.join("run.log")).contains(&wrong),
            "the wrong password is in run.log"
        );
    }

    // 3. The variable unset: refused before anything starts, naming the key and the variable.
    let run = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .args(["run", good.to_str().unwrap(), "--external", "--no-faults"])
        .env_remove("ACKCHECK_TEST_SCRAM_PASSWORD")
        .output()
        .expect("ackcheck runs");
    let text = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{text}");
    assert!(
        text.contains("sasl.password") && text.contains("ACKCHECK_TEST_SCRAM_PASSWORD, which is not set"),
        "{text}"
    );
    drop(node);
}

/// Nanoseconds of the wall clock, for a password unique to this run.
fn chrono_free_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
