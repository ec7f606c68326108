//! Broker installs from Maven Central: a generated pom's runtime dependencies copied into a
//! `lib/` directory (Kafka and Pulsar run from those jars).

use std::fs;
use std::path::Path;
use std::process::Command;

use super::process;
use super::{ClusterError, Result};

const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies";

/// Some broker poms name repositories besides Maven Central (Confluent's, Restlet's) that cannot
/// be reached here; these settings block every repository but `central`, so Maven never tries
/// another host.
pub const CENTRAL_ONLY_SETTINGS: &str = r#"<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <mirrors>
    <mirror><id>central-only</id><mirrorOf>*,!central</mirrorOf><url>http://0.0.0.0/</url><blocked>true</blocked></mirror>
  </mirrors>
</settings>
"#;

/// Resolve `pom`'s runtime dependencies into `<dir>/lib` (once: a finished install is reused).
/// Built in `<dir>.partial` and renamed into place at the end, so that an interrupted install is
/// never mistaken for a finished one. `what` names the install in errors ("Kafka 4.1.1").
pub fn install_jars(dir: &Path, what: &str, pom: &str) -> Result<()> {
    if dir.join("lib").is_dir() {
        return Ok(());
    }
    let staging = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(ClusterError::io(format!("creating {}", staging.display())))?;
    fs::write(staging.join("pom.xml"), pom).map_err(ClusterError::io(format!("writing the {what} install pom")))?;
    fs::write(staging.join("settings.xml"), CENTRAL_ONLY_SETTINGS)
        .map_err(ClusterError::io("writing the Maven settings"))?;
    process::run_step(
        what,
        "mvn dependency:copy-dependencies (Maven Central)",
        Command::new("mvn").current_dir(&staging).args([
            "-q",
            "-B",
            "--global-settings",
            "settings.xml",
            DEPENDENCY_PLUGIN,
            "-DoutputDirectory=lib",
            "-DincludeScope=runtime",
        ]),
    )?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&staging, dir).map_err(ClusterError::io(format!(
        "moving the {what} install to {}",
        dir.display()
    )))
}

/// [`install_jars`], then `<dir>/log4j2.xml` with `log4j2_xml`: the logging config is ours, not
/// Maven's, so it is kept current even in a cached install.
pub fn install_jars_with_log4j2(dir: &Path, what: &str, pom: &str, log4j2_xml: &str) -> Result<()> {
    install_jars(dir, what, pom)?;
    let path = dir.join("log4j2.xml");
    if fs::read_to_string(&path).ok().as_deref() != Some(log4j2_xml) {
        fs::write(&path, log4j2_xml).map_err(ClusterError::io(format!("writing the {what} log4j2 config")))?;
    }
    Ok(())
}
