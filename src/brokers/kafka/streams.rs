//! Kafka Streams as the pipeline's processor (`[workload] processor = "kafka-streams"`): the
//! application in `processors/kafka-streams/` (Java 17, `kafka-streams` pinned to the broker's
//! version), built by Maven and run as separate JVMs that ackcheck starts, kills and restarts.
//!
//! Build: the pom and the Java source are compiled into this binary; the first run that needs
//! them writes them to `install/kafka-streams-app-<version>-<hash of the source>/` and runs
//! `mvn -q -B package` there (Maven Central only, like the broker install; every plugin pinned).
//! Later runs reuse the build: a changed source gets a new folder, so a stale jar is never run.
//!
//! Instances: `java -cp <jar>:lib/* ackcheck.streams.Processor <instance>.properties`, each in
//! its own folder under the run's `kafka-streams/` with its log and its state directory (kept
//! across restarts, so a restarted instance finds what the killed one left there). The
//! properties are ackcheck's settings below, then the campaign's `processor_config`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::node::VERSION;
use crate::broker::{ClientError, ProcessorApp, ProcessorAppSpec};
use crate::history::Guarantee;
use crate::nodes::process::{self, NodeProcess};
use crate::nodes::{maven, ClusterError, Home};

/// The processor names the Kafka driver offers.
pub const PLAIN: &str = "kafka-streams";
/// The same topology with a count per key in a changelog-backed state store.
pub const STATEFUL: &str = "kafka-streams-stateful";
pub const APPS: &[&str] = &[PLAIN, STATEFUL];

const POM: &str = include_str!("../../../processors/kafka-streams/pom.xml");
const SOURCE_PATH: &str = "src/main/java/ackcheck/streams/Processor.java";
const SOURCE: &str = include_str!("../../../processors/kafka-streams/src/main/java/ackcheck/streams/Processor.java");
const JAR: &str = "target/ackcheck-kafka-streams.jar";
const MAIN: &str = "ackcheck.streams.Processor";
const HEAP: [&str; 2] = ["-Xms64m", "-Xmx256m"];

/// The build folder's name: the Kafka version and a hash of everything built, so that a changed
/// source or pom is built afresh.
fn build_name() -> String {
    // FNV-1a: stable across Rust versions (std's hasher is not), and enough to tell sources apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in POM.bytes().chain([0]).chain(SOURCE.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("kafka-streams-app-{VERSION}-{hash:016x}")
}

/// Build the application once (cached); returns the build folder.
pub fn install(home: &Home) -> Result<PathBuf, ClusterError> {
    let dir = home.install_dir(&build_name());
    if dir.join(JAR).is_file() && dir.join("target/lib").is_dir() {
        return Ok(dir);
    }
    let what = format!("the Kafka Streams processor (kafka-streams {VERSION})");
    let staging = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    let source = staging.join(SOURCE_PATH);
    if let Some(parent) = source.parent() {
        fs::create_dir_all(parent).map_err(ClusterError::io(format!("creating {}", parent.display())))?;
    }
    fs::write(staging.join("pom.xml"), POM).map_err(ClusterError::io(format!("writing the pom of {what}")))?;
    fs::write(&source, SOURCE).map_err(ClusterError::io(format!("writing the source of {what}")))?;
    fs::write(staging.join("settings.xml"), maven::CENTRAL_ONLY_SETTINGS)
        .map_err(ClusterError::io("writing the Maven settings"))?;
    process::run_step(
        &what,
        "mvn -q -B package (Maven Central)",
        Command::new("mvn")
            .current_dir(&staging)
            .args(["-q", "-B", "--global-settings", "settings.xml", "package"]),
    )?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&staging, &dir).map_err(ClusterError::io(format!(
        "moving the build of {what} to {}",
        dir.display()
    )))?;
    Ok(dir)
}

/// ackcheck's Streams settings for a run; the campaign's `processor_config` is applied after.
fn own_settings(spec: &ProcessorAppSpec, bootstrap: &str, application_id: &str) -> BTreeMap<String, String> {
    let guarantee = match spec.mode {
        Guarantee::ExactlyOnce => "exactly_once_v2",
        _ => "at_least_once",
    };
    [
        ("ackcheck.source", spec.source.as_str()),
        ("ackcheck.sink", spec.sink.as_str()),
        (
            "ackcheck.stateful",
            if spec.name == STATEFUL { "true" } else { "false" },
        ),
        ("application.id", application_id),
        ("bootstrap.servers", bootstrap),
        ("processing.guarantee", guarantee),
        // A killed instance's tasks move to the others once its session times out: Kafka's 45 s
        // default would idle its partitions for most of a 60 s run; 6 s is what ackcheck's own
        // processors use.
        ("consumer.session.timeout.ms", "6000"),
        ("consumer.heartbeat.interval.ms", "1500"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl StreamsApp {
    /// What the instance's current process has logged (since its last start).
    fn lines_since_start(&self, instance: usize) -> String {
        let start = self.log(instance).start;
        String::from_utf8_lossy(&self.log_from(instance, start)).into_owned()
    }

    fn log(&self, instance: usize) -> InstanceLog {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(instance).copied().unwrap_or_default()
    }

    /// The instance's log from byte `from` to its end; empty when it cannot be read (the
    /// process has not written it yet).
    fn log_from(&self, instance: usize, from: u64) -> Vec<u8> {
        let mut text = Vec::new();
        if let Ok(mut file) = fs::File::open(&self.instance(instance).log_file) {
            if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut text).is_err() {
                text.clear();
            }
        }
        text
    }
}

/// The instances of one run.
pub struct StreamsApp {
    build: PathBuf,
    dir: PathBuf,
    properties: String,
    /// Per instance: where its current process's lines begin in its log, and how far
    /// [`ProcessorApp::processed_count`] has counted.
    logs: Mutex<Vec<InstanceLog>>,
}

/// One instance's log as seen since its current process started.
#[derive(Debug, Clone, Copy, Default)]
struct InstanceLog {
    /// The log's length when the process started.
    start: u64,
    /// Counted up to here (the end of the last whole line read).
    counted_to: u64,
    /// `processed` lines up to `counted_to`.
    processed: usize,
}

/// The line the application prints for every input it processes ([`ProcessorApp::processed`]).
const PROCESSED: &str = "ackcheck-streams processed ";
/// The line the application prints when it starts processing after a rebalance.
const RUNNING: &str = "ackcheck-streams state REBALANCING -> RUNNING";

impl StreamsApp {
    /// Build (or reuse) the application and prepare a run's instances: `bootstrap` is what
    /// ackcheck's own clients use (the proxies, so that proxy faults reach Streams too).
    pub fn new(spec: &ProcessorAppSpec, bootstrap: &str, run: &str) -> Result<StreamsApp, ClusterError> {
        let build = install(&Home::from_env())?;
        let mut settings = own_settings(spec, bootstrap, &format!("ackcheck-streams-{run}"));
        settings.extend(spec.config.clone());
        let mut properties = "# Written by ackcheck: ackcheck's settings, then the campaign's processor_config.
"
        .to_string();
        for (key, value) in &settings {
            properties.push_str(&format!("{key}={}\n", escape(value)));
        }
        fs::create_dir_all(&spec.dir).map_err(ClusterError::io(format!("creating {}", spec.dir.display())))?;
        Ok(StreamsApp {
            build,
            dir: spec.dir.clone(),
            properties,
            logs: Mutex::new(Vec::new()),
        })
    }

    fn instance(&self, instance: usize) -> NodeProcess {
        NodeProcess::in_dir(self.dir.join(format!("instance{instance}")))
    }

    fn command(&self, instance: usize, config: &Path) -> Command {
        let mut cmd = Command::new("java");
        cmd.args(HEAP)
            .arg("-XX:+ExitOnOutOfMemoryError")
            .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
            .arg("-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS")
            // Streams' own progress (rebalances, restoration) at info; the clients' chatter not.
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=info")
            .arg("-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn")
            .arg("-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common=warn")
            .arg("-cp")
            .arg(format!(
                "{}:{}",
                self.build.join(JAR).display(),
                self.build.join("target/lib/*").display()
            ))
            .arg(MAIN)
            .arg(config)
            .env("ACKCHECK_STREAMS_INSTANCE", instance.to_string());
        cmd
    }
}

/// A properties-file value: backslashes and line breaks escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

fn client_error(instance: usize, what: &str) -> impl FnOnce(ClusterError) -> ClientError + '_ {
    move |e| ClientError::new(format!("{what} Kafka Streams instance {instance} failed: {e}"))
}

impl ProcessorApp for StreamsApp {
    fn start(&self, instance: usize) -> Result<u32, ClientError> {
        let node = self.instance(instance);
        let state = node.dir.join("state");
        fs::create_dir_all(&state)
            .map_err(|e| ClientError::new(format!("creating {} failed: {e}", state.display())))?;
        let config = node.dir.join("streams.properties");
        let text = format!(
            "{}state.dir={}\n",
            self.properties,
            escape(&state.display().to_string())
        );
        fs::write(&config, text).map_err(|e| ClientError::new(format!("writing {} failed: {e}", config.display())))?;
        let start = fs::metadata(&node.log_file).map_or(0, |m| m.len());
        {
            let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
            if logs.len() <= instance {
                logs.resize(instance + 1, InstanceLog::default());
            }
            logs[instance] = InstanceLog {
                start,
                counted_to: start,
                processed: 0,
            };
        }
        node.spawn(self.command(instance, &config))
            .map_err(client_error(instance, "starting"))
    }

    fn processed(&self, instance: usize) -> Vec<String> {
        self.lines_since_start(instance)
            .lines()
            .filter_map(|line| line.strip_prefix(PROCESSED))
            .map(|id| id.trim().to_string())
            .collect()
    }

    fn processed_count(&self, instance: usize) -> usize {
        let log = self.log(instance);
        let text = self.log_from(instance, log.counted_to);
        // Whole lines only: the last one may still be being written.
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |end| end + 1);
        let processed = text[..whole]
            .split(|&b| b == b'\n')
            .filter(|line| line.starts_with(PROCESSED.as_bytes()))
            .count();
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        match logs.get_mut(instance) {
            // Unless the process was restarted meanwhile (its log start moved).
            Some(now) if now.start == log.start && now.counted_to == log.counted_to => {
                now.counted_to += whole as u64;
                now.processed += processed;
                now.processed
            }
            Some(now) => now.processed,
            None => 0,
        }
    }

    fn ready(&self, instance: usize) -> bool {
        self.lines_since_start(instance).lines().any(|line| line == RUNNING)
    }

    fn kill(&self, instance: usize) -> Result<Option<u32>, ClientError> {
        let node = self.instance(instance);
        let pid = node.pid();
        node.kill().map_err(client_error(instance, "killing"))?;
        Ok(pid)
    }

    fn running(&self, instance: usize) -> bool {
        self.instance(instance).pid().is_some()
    }

    fn log_tail(&self, instance: usize) -> String {
        self.instance(instance).log_tail(20)
    }

    fn stop(&self, instance: usize, grace: Duration) {
        let _ = self.instance(instance).stop(grace);
    }
}

/// A run that ends without stopping its instances (an error, a panic) still takes them down:
/// a JVM left running would hold its partitions and load the machine.
impl Drop for StreamsApp {
    fn drop(&mut self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let _ = NodeProcess::in_dir(entry.path()).kill();
        }
    }
}
