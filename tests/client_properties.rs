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
        "broker = \"nats\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n[client.producer]\nretries = 3\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("line 6") && e.contains("not a client property ackcheck can set on nats"),
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

// ---------------------------------------------------------------------------------------------
// SQS and Pulsar: queue attributes, SDK and client settings, topic policies, standalone.conf
// keys, and the broker-neutral workload knobs they meet (`processing`, `ack`). Nothing started.
// ---------------------------------------------------------------------------------------------

const SQS: &str = "broker = \"sqs\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n";
const PULSAR: &str = "broker = \"pulsar\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n";

fn parse_on(base: &str, extra: &str) -> Result<Campaign, String> {
    Campaign::parse("test.toml", &format!("{base}{extra}")).map_err(|e| e.to_string())
}

#[test]
fn sqs_queue_attributes_and_sdk_settings_go_over_the_mode_preset_and_are_recorded() {
    let c = parse_on(
        SQS,
        "processing = \"2s\"\nack = \"after\"\n[dest]\nVisibilityTimeout = 1\nMessageRetentionPeriod = 600\n[client.producer]\nmax_attempts = 3\n[client.consumer]\nwait_time_seconds = 1\n",
    )
    .expect("valid SQS settings");
    let config = serde_json::to_value(&c).expect("serializes");
    assert_eq!(
        config["dest_settings"]["VisibilityTimeout"],
        serde_json::json!({"value": "1", "from": "user"})
    );
    assert_eq!(config["dest_settings"]["MessageRetentionPeriod"]["value"], "600");
    assert_eq!(
        config["client"]["producer"]["max_attempts"],
        serde_json::json!({"value": "3", "from": "user"})
    );
    assert_eq!(
        config["client"]["consumer"]["max_attempts"],
        serde_json::json!({"value": "1", "from": "preset"})
    );
    assert_eq!(config["workload"]["processing"], "2000ms");
    assert_eq!(config["workload"]["ack"], "after");
    // The mode's preset: 5 s of visibility everywhere, a FIFO queue for exactly-once.
    let preset = serde_json::to_value(parse_on(SQS, "").unwrap()).unwrap();
    assert_eq!(
        preset["dest_settings"]["VisibilityTimeout"],
        serde_json::json!({"value": "5", "from": "preset"})
    );
    let fifo = parse_on(&SQS.replace("at-least-once", "exactly-once"), "").unwrap();
    assert_eq!(fifo.dest_settings["FifoQueue"]["value"], "true");
}

#[test]
fn bad_sqs_settings_are_refused_at_load_naming_key_line_and_range() {
    let e = parse_on(SQS, "[dest]\nVisibilityTimeout = 43201\n").unwrap_err();
    assert!(e.contains("line 6") && e.contains("`dest.VisibilityTimeout`"), "{e}");
    assert!(e.contains("from 0 to 43200"), "{e}");
    let e = parse_on(SQS, "[dest]\nvisibility_timeout = 30\n").unwrap_err();
    assert!(
        e.contains("not an SQS queue attribute") && e.contains("VisibilityTimeout"),
        "{e}"
    );
    let e = parse_on(SQS, "[dest]\nContentBasedDeduplication = true\n").unwrap_err();
    assert!(e.contains("FIFO queues only"), "{e}");
    let e = parse_on(
        &SQS.replace("at-least-once", "exactly-once"),
        "[dest]\nFifoQueue = false\n",
    )
    .unwrap_err();
    assert!(e.contains("line 6") && e.contains("FifoQueue"), "{e}");
    let e = parse_on(SQS, "[client.consumer]\nmax_number_of_messages = 20\n").unwrap_err();
    assert!(
        e.contains("line 6") && e.contains("max_number_of_messages") && e.contains("from 1 to 10"),
        "{e}"
    );
    let e = parse_on(SQS, "[client.producer]\nretries = 3\n").unwrap_err();
    assert!(e.contains("takes max_attempts"), "{e}");
}

#[test]
fn pulsar_client_settings_topic_policies_and_standalone_keys_are_checked_and_recorded() {
    let c = parse_on(
        PULSAR,
        "[client.producer]\nsend_timeout = \"30s\"\n[client.consumer]\nack_timeout = \"1s\"\n[dest]\ndeduplication = false\n[server]\nbrokerDeduplicationEnabled = false\n",
    )
    .expect("valid Pulsar settings");
    let config = serde_json::to_value(&c).expect("serializes");
    assert_eq!(
        config["client"]["consumer"]["ack_timeout"],
        serde_json::json!({"value": "1000ms", "from": "user"})
    );
    assert_eq!(
        config["client"]["consumer"]["receiver_queue_size"],
        serde_json::json!({"value": "200", "from": "preset"})
    );
    assert_eq!(config["client"]["producer"]["send_timeout"]["value"], "30000ms");
    assert_eq!(
        config["dest_settings"]["deduplication"],
        serde_json::json!({"value": "false", "from": "user"})
    );
    assert_eq!(
        config["server"]["brokerDeduplicationEnabled"],
        serde_json::json!({"value": "false", "from": "user"})
    );
    let preset = serde_json::to_value(parse_on(PULSAR, "").unwrap()).unwrap();
    assert_eq!(preset["client"]["consumer"]["ack_timeout"]["value"], "none");
    assert_eq!(preset["dest_settings"]["deduplication"]["value"], "broker");
}

#[test]
fn bad_pulsar_settings_are_refused_at_load_with_the_reason() {
    let e = parse_on(PULSAR, "[client.consumer]\nack_timeout = \"soon\"\n").unwrap_err();
    assert!(
        e.contains("line 6") && e.contains("`client.consumer.ack_timeout`"),
        "{e}"
    );
    let e = parse_on(PULSAR, "[client.consumer]\nackTimeoutMillis = 1000\n").unwrap_err();
    assert!(e.contains("takes ack_timeout and receiver_queue_size"), "{e}");
    let e = parse_on(PULSAR, "[dest]\ndeduplication = \"yes\"\n").unwrap_err();
    assert!(e.contains("line 6") && e.contains("true or false"), "{e}");
    let e = parse_on(PULSAR, "[server]\nwebServicePort = 8080\n").unwrap_err();
    assert!(
        e.contains("line 6") && e.contains("set by ackcheck itself") && e.contains("port plan"),
        "{e}"
    );
    let e = parse_on(PULSAR, "[server]\nledgerDirectories = \"/tmp/x\"\n").unwrap_err();
    assert!(e.contains("data directory"), "{e}");
}

#[test]
fn workload_knobs_are_refused_with_one_sentence_and_absent_change_nothing() {
    let e = parse_on(SQS, "processing = \"1s..500ms\"\n").unwrap_err();
    assert!(e.contains("line 5") && e.contains("`workload.processing`"), "{e}");
    assert!(e.contains("starts after it ends"), "{e}");
    let e = parse_on(PULSAR, "ack = \"never\"\n").unwrap_err();
    assert!(e.contains("line 5") && e.contains("ack"), "{e}");
    // Without the knobs, the recorded workload has neither key: a campaign written before them
    // records (and runs) exactly as before.
    let config = serde_json::to_value(parse_on(SQS, "").unwrap()).unwrap();
    let workload = config["workload"].as_object().unwrap();
    assert!(
        !workload.contains_key("processing") && !workload.contains_key("ack"),
        "{workload:?}"
    );
}

#[test]
fn the_audit_campaigns_for_sqs_and_pulsar_load() {
    for name in [
        "sqs-short-visibility",
        "sqs-short-visibility-safe",
        "pulsar-short-ack-timeout",
        "pulsar-short-ack-timeout-safe",
        "pulsar-no-dedup",
        "pulsar-no-dedup-safe",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("workloads/audit")
            .join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).expect("the campaign file");
        assert!(
            text.starts_with("# "),
            "{name} opens with a comment saying what it shows"
        );
        Campaign::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ: `[client.producer]` (`confirms`, `persistent`, `mandatory`, `confirm_timeout_ms`),
// `[client.consumer]` (`auto_ack`, `prefetch`), both with `username` / `password`; `[dest]`
// (queue type, `durable`, `x-` arguments); `[server]` (`rabbitmq.conf` keys).
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "rabbitmq")]
mod rabbitmq {
    use super::*;
    use ackcheck::brokers::rabbitmq::props::{ConsumerConfig, ProducerConfig};

    const RABBITMQ: &str = "broker = \"rabbitmq\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n";

    fn parse_rabbitmq(extra: &str) -> Result<Campaign, String> {
        Campaign::parse("test.toml", &format!("{RABBITMQ}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_rabbitmq_campaign_takes_its_settings_over_the_preset_each_marked() {
        let c = parse_rabbitmq("[client.producer]\nconfirms = false\n[client.consumer]\nprefetch = 0\n")
            .expect("valid settings");
        let config = serde_json::to_value(&c).expect("serializes");
        let client = &config["client"];
        assert_eq!(
            client["producer"]["confirms"],
            serde_json::json!({"value": "false", "from": "user"})
        );
        assert_eq!(
            client["producer"]["persistent"],
            serde_json::json!({"value": "true", "from": "preset"})
        );
        assert_eq!(
            client["producer"]["mandatory"],
            serde_json::json!({"value": "true", "from": "preset"})
        );
        assert_eq!(client["producer"]["confirm_timeout_ms"]["value"], "5000");
        assert_eq!(
            client["consumer"]["prefetch"],
            serde_json::json!({"value": "0", "from": "user"})
        );
        assert_eq!(
            client["consumer"]["auto_ack"],
            serde_json::json!({"value": "false", "from": "preset"})
        );
        // What the clients do with it.
        let p = ProducerConfig::of(c.mode, &c.client_settings).expect("reads");
        assert!(!p.confirms && p.persistent && p.mandatory);
        let k = ConsumerConfig::of(c.mode, &c.client_settings).expect("reads");
        assert_eq!((k.auto_ack, k.prefetch), (false, 0));
    }

    #[test]
    fn rabbitmq_presets_follow_the_mode_and_library_defaults_are_amqps() {
        let amo = Campaign::parse("t.toml", &RABBITMQ.replace("at-least-once", "at-most-once")).expect("valid");
        let s = &amo.client_settings;
        assert_eq!(s.producer.get("confirms"), Some("false"));
        assert_eq!(s.producer.get("persistent"), Some("false"));
        assert_eq!(s.consumer.get("auto_ack"), Some("true"));
        assert_eq!(s.consumer.get("prefetch"), Some("0"));
        let alo = parse_rabbitmq("").expect("valid");
        assert_eq!(alo.client_settings.producer.get("confirms"), Some("true"));
        assert_eq!(alo.client_settings.consumer.get("prefetch"), Some("200"));
        assert_eq!(alo.client_settings.consumer.get("auto_ack"), Some("false"));
        let lib =
            parse_rabbitmq("[client]\ndefaults = \"library\"\n[client.consumer]\nauto_ack = true\n").expect("valid");
        let s = &lib.client_settings;
        assert_eq!(s.producer.get("confirms"), Some("false"), "no confirm.select");
        assert_eq!(
            s.producer.get("persistent"),
            Some("false"),
            "no delivery mode: transient"
        );
        assert_eq!(s.producer.get("mandatory"), Some("false"));
        assert_eq!(s.consumer.get("prefetch"), Some("0"), "no basic.qos: unlimited");
        assert_eq!(s.consumer.get("auto_ack"), Some("true"));
        assert_eq!(s.consumer.user_keys().collect::<Vec<_>>(), ["auto_ack"]);
        let config = serde_json::to_value(&lib).expect("serializes");
        assert_eq!(config["client"]["defaults"], "library");
    }

    #[test]
    fn bad_rabbitmq_settings_are_refused_at_load_naming_key_line_and_what_is_allowed() {
        let e = parse_rabbitmq("[client.producer]\nconfirms = true\nconfirm = false\n").unwrap_err();
        assert!(e.contains("line 7") && e.contains("`client.producer.confirm`"), "{e}");
        assert!(e.contains("`confirms`, `persistent`, `mandatory`"), "{e}");
        let e = parse_rabbitmq("[client.producer]\npersistent = \"sometimes\"\n").unwrap_err();
        assert!(e.contains("line 6") && e.contains("must be true or false"), "{e}");
        let e = parse_rabbitmq("[client.consumer]\nprefetch = -1\n").unwrap_err();
        assert!(e.contains("line 6") && e.contains("from 0 to 65535"), "{e}");
        let e = parse_rabbitmq("[client.producer]\nauto_ack = true\n").unwrap_err();
        assert!(e.contains("put it under [client.consumer]"), "{e}");
        let e = parse_rabbitmq("[client.producer]\nconfirm_timeout_ms = 10\n").unwrap_err();
        assert!(e.contains("from 100 to 600000"), "{e}");
        let e = parse_rabbitmq("[client.consumer]\nvhost = \"/orders\"\n").unwrap_err();
        assert!(e.contains("set by ackcheck itself"), "{e}");
        // The Kafka vocabulary is not RabbitMQ's.
        let e = parse_rabbitmq("[client.producer]\nacks = \"all\"\n").unwrap_err();
        assert!(e.contains("not a RabbitMQ producer setting"), "{e}");
    }

    #[test]
    fn a_rabbitmq_password_reaches_the_client_and_never_the_recorded_configuration() {
        let c = parse_rabbitmq("[client.producer]\nusername = \"orders\"\npassword = \"hunter2\"\n[client.consumer]\npassword = \"hunter3\"\n")
            .expect("valid credentials");
        let text = serde_json::to_string(&c).expect("serializes");
        assert!(!text.contains("hunter2") && !text.contains("hunter3"), "{text}");
        assert_eq!(text.matches("<redacted>").count(), 2, "{text}");
        assert!(text.contains("\"orders\""), "a user name is no secret: {text}");
        let p = ProducerConfig::of(c.mode, &c.client_settings).expect("reads");
        assert_eq!(
            (p.credentials.username.as_str(), p.credentials.password.as_str()),
            ("orders", "hunter2")
        );
        let k = ConsumerConfig::of(c.mode, &c.client_settings).expect("reads");
        assert_eq!(
            (k.credentials.username.as_str(), k.credentials.password.as_str()),
            ("guest", "hunter3")
        );
    }

    #[test]
    fn rabbitmq_dest_takes_the_queue_type_durability_and_x_arguments_checked() {
        let c = parse_rabbitmq("[dest]\nqueue_type = \"classic\"\ndurable = true\n\"x-max-length\" = 1000\n\"x-overflow\" = \"reject-publish\"\n\"x-queue-mode\" = \"lazy\"\n")
            .expect("valid [dest]");
        assert_eq!(
            c.dest_settings,
            serde_json::json!({
                "queue_type": "classic",
                "durable": true,
                "arguments": {"x-max-length": 1000, "x-overflow": "reject-publish", "x-queue-mode": "lazy"}
            })
        );
        let q = parse_rabbitmq("[dest]\n\"x-queue-type\" = \"quorum\"\n\"x-delivery-limit\" = 3\n").expect("valid");
        assert_eq!(q.dest_settings["queue_type"], "quorum");
        assert_eq!(q.dest_settings["arguments"]["x-delivery-limit"], 3);
        let e = parse_rabbitmq("[dest]\nqueue_type = \"classic\"\n\"x-delivery-limit\" = 3\n").unwrap_err();
        assert!(e.contains("line 7") && e.contains("quorum queues only"), "{e}");
        let e = parse_rabbitmq("[dest]\n\"x-max-length\" = \"many\"\n").unwrap_err();
        assert!(e.contains("line 6") && e.contains("whole number"), "{e}");
        let e = parse_rabbitmq("[dest]\n\"x-overflow\" = \"drop-tail\"\n").unwrap_err();
        assert!(e.contains("\"drop-head\", \"reject-publish\""), "{e}");
        let e = parse_rabbitmq("[dest]\ndurable = false\n").unwrap_err();
        assert!(e.contains("line 6") && e.contains("quorum queue"), "{e}");
        let e = parse_rabbitmq("[dest]\n\"x-max-lenght\" = 10\n").unwrap_err();
        assert!(
            e.contains("not a RabbitMQ destination setting") && e.contains("x-max-length,"),
            "{e}"
        );
    }

    #[test]
    fn rabbitmq_server_takes_rabbitmq_conf_keys_and_refuses_ackchecks_own() {
        let c =
            parse_rabbitmq("[server]\ncluster_partition_handling = \"pause_minority\"\nconsumer_timeout = 900000\n")
                .expect("valid [server]");
        let config = serde_json::to_value(&c).expect("serializes");
        assert_eq!(
            config["server"]["cluster_partition_handling"],
            serde_json::json!({"value": "pause_minority", "from": "user"})
        );
        assert_eq!(config["server"]["consumer_timeout"]["value"], "900000");
        let e = parse_rabbitmq("[server]\n\"listeners.tcp.default\" = 5672\n").unwrap_err();
        assert!(
            e.contains("line 6") && e.contains("set by ackcheck itself") && e.contains("port plan"),
            "{e}"
        );
        let e = parse_rabbitmq("[server]\n\"distribution.listener.port_range.min\" = 25672\n").unwrap_err();
        assert!(e.contains("set by ackcheck itself"), "{e}");
        let e = parse_rabbitmq("[server]\ndefault_pass = \"hunter2\"\n").unwrap_err();
        assert!(e.contains("connect as guest") && !e.contains("hunter2"), "{e}");
        let e = parse_rabbitmq("[server]\n\"Cluster Partition Handling\" = \"ignore\"\n").unwrap_err();
        assert!(e.contains("not a rabbitmq.conf key"), "{e}");
    }

    #[test]
    fn validate_exits_2_on_a_bad_rabbitmq_setting_and_names_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, format!("{RABBITMQ}[client.consumer]\nprefetch_count = 10\n")).expect("written");
        let out = Command::new(env!("CARGO_BIN_EXE_ackcheck"))
            .arg("validate")
            .arg(&file)
            .output()
            .expect("ackcheck runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("prefetch_count") && stderr.contains("line 6") && stderr.contains("`prefetch`"),
            "{stderr}"
        );
    }
}
