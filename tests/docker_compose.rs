//! docker-compose.yml (for users with a Docker engine; none runs here) must be valid for
//! `docker-compose config`, run the four brokers and Toxiproxy from pinned images of the versions
//! ackcheck installs itself, and put the proxies on ackcheck's port plan.
//!
//! Needs the `docker-compose` command (Debian package `docker-compose`): as root the test installs
//! it when missing (a fresh machine passes the README's test command with nothing installed by
//! hand); otherwise it fails, saying how to install it.

#![cfg(all(
    feature = "kafka",
    feature = "rabbitmq",
    feature = "sqs",
    feature = "pulsar",
    feature = "nats"
))]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use ackcheck::brokers::kafka::node as kafka;
use ackcheck::brokers::pulsar::node as pulsar;
use ackcheck::brokers::sqs::node as sqs;
use ackcheck::nodes::{toxiproxy_api_port, CLIENT_PROXY_SLOT};

fn compose_file() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
}

/// `apt-get install docker-compose` when it is missing and this test runs as root (a fresh
/// machine may have no package lists yet: update once, then retry).
fn install_docker_compose_if_missing() {
    let present = Command::new("docker-compose").arg("version").output().is_ok();
    if present || !nix::unistd::geteuid().is_root() {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = ["install", "-y", "--no-install-recommends", "docker-compose"];
    if !apt(&install) {
        assert!(
            apt(&["update"]) && apt(&install),
            "apt-get could not install docker-compose"
        );
    }
}

fn docker_compose(args: &[&str]) -> Output {
    install_docker_compose_if_missing();
    let file = compose_file();
    let out = Command::new("docker-compose")
        .current_dir(file.parent().expect("the compose file is in the repository root"))
        .arg("-f")
        .arg(file)
        .args(args)
        .output();
    match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("docker-compose is not installed; install it (`apt-get install -y docker-compose` on Debian) and run the tests again")
        }
        Err(e) => panic!("could not run docker-compose: {e}"),
    }
}

fn stdout_of(args: &[&str]) -> String {
    let out = docker_compose(args);
    assert!(
        out.status.success(),
        "`docker-compose {}` rejects docker-compose.yml ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn docker_compose_file_is_valid_and_matches_ackcheck() {
    // Validity: what the issue asks for.
    stdout_of(&["config", "-q"]);

    let services: BTreeSet<String> = stdout_of(&["config", "--services"])
        .lines()
        .map(str::to_string)
        .collect();
    let expected: BTreeSet<String> = [
        "kafka",
        "rabbitmq",
        "localstack",
        "pulsar",
        "nats",
        "toxiproxy",
        "toxiproxy-proxies",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(services, expected, "the services of docker-compose.yml");

    // Every image is pinned to a version tag, and the brokers are the versions ackcheck runs locally.
    let images: BTreeSet<String> = stdout_of(&["config"])
        .lines()
        .filter_map(|line| line.trim().strip_prefix("image:"))
        .map(|image| image.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect();
    assert_eq!(images.len(), expected.len(), "one image per service: {images:?}");
    for image in &images {
        let name = image.rsplit('/').next().unwrap_or(image);
        let tag = name.split_once(':').map(|(_, tag)| tag).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && tag.starts_with(|c: char| c.is_ascii_digit()),
            "image {image} is not pinned to a version"
        );
    }
    let toxiproxy_version = ackcheck::nodes::toxiproxy::VERSION.trim_start_matches('v');
    for pinned in [
        format!("apache/kafka:{}", kafka::VERSION),
        format!("localstack/localstack:{}", sqs::LOCALSTACK_VERSION),
        format!("apachepulsar/pulsar:{}", pulsar::VERSION),
        format!("ghcr.io/shopify/toxiproxy:{toxiproxy_version}"),
    ] {
        assert!(
            images.contains(&pinned),
            "docker-compose.yml should run {pinned}; it has {images:?}"
        );
    }
    assert!(
        images
            .iter()
            .any(|i| i.starts_with("rabbitmq:3.") || i.starts_with("rabbitmq:4.")),
        "RabbitMQ 3.x or 4.x: {images:?}"
    );

    // Toxiproxy's API and the proxies sit where ackcheck looks for them.
    let text = std::fs::read_to_string(compose_file()).expect("reading docker-compose.yml");
    assert!(
        text.contains(&format!("\"127.0.0.1:{}:8474\"", toxiproxy_api_port())),
        "Toxiproxy's API should be published on {}",
        toxiproxy_api_port()
    );
    // Every broker of the registry has its service in the compose file.
    for &kind in ackcheck::brokers::ALL {
        let proxy_port = kind.port(0, CLIENT_PROXY_SLOT);
        let proxy = format!("{{\"name\":\"{kind}-node0\",\"listen\":\"0.0.0.0:{proxy_port}\"");
        assert!(
            text.contains(&proxy),
            "docker-compose.yml should create the proxy {kind}-node0 on port {proxy_port}"
        );
        assert!(
            text.contains(&format!("\"127.0.0.1:{proxy_port}:{proxy_port}\"")),
            "the proxy port {proxy_port} should be published on 127.0.0.1"
        );
    }
}
