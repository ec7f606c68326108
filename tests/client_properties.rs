//! The user's own client properties in a campaign (`[client.producer]`, `[client.consumer]`):
//! over the mode's preset key by key, checked against the client library when the campaign
//! loads (an unknown key or a bad value names its line, exit 2, nothing started), recorded in
//! the history header with secrets redacted. Nothing is started.

use std::process::Command;

use ackcheck::campaign::Campaign;

const KAFKA: &str = "broker = \"kafka\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n";

fn parse(extra: &str) -> Result<Campaign, String> {
    Campaign::parse("test.toml", &format!("{KAFKA}{extra}")).map_err(|e| e.to_string())
}

#[test]
fn a_kafka_campaign_takes_librdkafka_properties_over_the_preset() {
    let c = parse(
        "[client.producer]\nacks = \"1\"\nretries = 3\n[client.consumer]\n\"enable.auto.commit\" = true\n\"enable.auto.offset.store\" = true\n",
    )
    .expect("valid properties");
    let s = &c.client_settings;
    assert_eq!(s.producer.get("acks"), Some("1"));
    assert_eq!(s.producer.get("retries"), Some("3"));
    assert_eq!(
        s.producer.get("request.timeout.ms"),
        Some("5000"),
        "the rest of the preset stays"
    );
    assert_eq!(s.consumer.get("enable.auto.commit"), Some("true"));
    // What the history header records (the campaign is its `config`): every property, marked.
    let config = serde_json::to_value(&c).expect("serializes");
    assert_eq!(
        config["client"]["producer"]["acks"],
        serde_json::json!({"value": "1", "from": "user"})
    );
    assert_eq!(
        config["client"]["producer"]["linger.ms"],
        serde_json::json!({"value": "5", "from": "preset"})
    );
    assert_eq!(config["client"]["defaults"], "preset");
}

#[test]
fn bad_properties_are_refused_at_load_naming_key_and_line() {
    let e = parse("[client.producer]\nacks = \"1\"\n\"acks.typo\" = \"all\"\n").unwrap_err();
    assert!(e.contains("line 7"), "{e}");
    assert!(e.contains("acks.typo"), "{e}");
    assert!(e.contains("No such configuration property"), "{e}");
    let e = parse("[client.producer]\nacks = \"most\"\n").unwrap_err();
    assert!(e.contains("line 6") && e.contains("Invalid value"), "{e}");
    let e = parse("[client.consumer]\n\"group.id\" = \"orders\"\n").unwrap_err();
    assert!(e.contains("set by ackcheck itself"), "{e}");
    let e = parse("[client.consumer]\nenable.auto.commit = true\n").unwrap_err();
    assert!(e.contains("in quotes"), "{e}");
    let e = parse("[client]\nproducers = {}\n").unwrap_err();
    assert!(e.contains("producers"), "{e}");
}

#[test]
fn brokers_without_client_properties_refuse_them_with_a_sentence() {
    let e = Campaign::parse(
        "t.toml",
        "broker = \"sqs\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n[client.producer]\nretries = 3\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("line 6") && e.contains("not a client property ackcheck can set on sqs"),
        "{e}"
    );
}

#[test]
fn secrets_never_reach_the_recorded_configuration() {
    let c = parse("[client.producer]\n\"sasl.password\" = \"hunter2\"\n\"sasl.username\" = \"orders\"\n\"security.protocol\" = \"sasl_plaintext\"\n\"sasl.mechanisms\" = \"PLAIN\"\n")
        .expect("valid SASL settings");
    assert_eq!(
        c.client_settings.producer.get("sasl.password"),
        Some("hunter2"),
        "the client gets it"
    );
    let text = serde_json::to_string(&c).expect("serializes");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[test]
fn validate_exits_2_on_a_bad_property_and_names_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, format!("{KAFKA}[client.producer]\n\"linger.msec\" = 5\n")).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
        .arg("validate")
        .arg(&file)
        .output()
        .expect("ackcheck runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("linger.msec") && stderr.contains("line 6"), "{stderr}");
}

#[test]
fn kafka_dest_and_server_tables_are_checked_and_recorded() {
    let c = parse(
        "[dest]\nreplication_factor = 1\n\"min.insync.replicas\" = 1\n[server]\n\"unclean.leader.election.enable\" = true\n\"log.flush.interval.messages\" = 1\n",
    )
    .expect("valid [dest] and [server]");
    let config = serde_json::to_value(&c).expect("serializes");
    assert_eq!(config["dest_settings"]["topic_configs"]["min.insync.replicas"], "1");
    assert_eq!(config["server"]["unclean.leader.election.enable"]["value"], "true");
    let e = parse("[server]\n\"node.id\" = 4\n").unwrap_err();
    assert!(e.contains("line 6") && e.contains("set by ackcheck itself"), "{e}");
    let e = parse("[dest]\n\"min.isr\" = 1\n").unwrap_err();
    assert!(e.contains("not a Kafka topic setting"), "{e}");
    let e = Campaign::parse(
        "t.toml",
        "broker = \"nats\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n[server]\nmax_payload = 1\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a server setting ackcheck can set on nats"), "{e}");
}
