//! Toxiproxy: install (Go module proxy), start once and share, and a small async client for its
//! HTTP API. One proxy per broker node carries all client traffic; toxics on it make faults.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::process::{self, NodeProcess};
use super::{toxiproxy_api_port, ClusterError, Home, Result};

/// The pinned Toxiproxy version.
pub const VERSION: &str = "v2.12.0";

/// A toxic to add to a proxy.
#[derive(Debug, Clone, Serialize)]
pub struct Toxic {
    pub name: String,
    /// `latency`, `timeout`, `reset_peer`, `bandwidth`, `slow_close`, `limit_data`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `upstream` (client → broker) or `downstream` (broker → client).
    pub stream: String,
    pub toxicity: f32,
    pub attributes: serde_json::Value,
}

impl Toxic {
    /// Replies from the broker never reach the client (requests still do): a lost ack.
    /// `timeout_ms = 0` holds the connection open forever.
    pub fn lost_acks(timeout_ms: u64) -> Toxic {
        Toxic {
            name: "lost-acks".into(),
            kind: "timeout".into(),
            stream: "downstream".into(),
            toxicity: 1.0,
            attributes: json!({ "timeout": timeout_ms }),
        }
    }

    /// Connections are reset (TCP RST) after `timeout_ms`.
    pub fn reset(timeout_ms: u64) -> Toxic {
        Toxic {
            name: "reset".into(),
            kind: "reset_peer".into(),
            stream: "downstream".into(),
            toxicity: 1.0,
            attributes: json!({ "timeout": timeout_ms }),
        }
    }

    /// Every reply is delayed by `latency_ms` ± `jitter_ms`.
    pub fn latency(latency_ms: u64, jitter_ms: u64) -> Toxic {
        Toxic {
            name: "latency".into(),
            kind: "latency".into(),
            stream: "downstream".into(),
            toxicity: 1.0,
            attributes: json!({ "latency": latency_ms, "jitter": jitter_ms }),
        }
    }
}

/// Client for one Toxiproxy server.
#[derive(Debug, Clone)]
pub struct Toxiproxy {
    base: String,
    http: reqwest::Client,
}

impl Default for Toxiproxy {
    fn default() -> Self {
        Toxiproxy::new(toxiproxy_api_port())
    }
}

impl Toxiproxy {
    pub fn new(api_port: u16) -> Toxiproxy {
        Toxiproxy::at(&format!("http://127.0.0.1:{api_port}"))
    }

    /// The Toxiproxy whose API is at `base` (`http://host:port`): one that something else runs.
    pub fn at(base: &str) -> Toxiproxy {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .expect("a reqwest client with only a timeout and no proxy always builds");
        Toxiproxy {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    fn err(what: &str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::Proxy {
            what: what.to_string(),
            reason: e.to_string(),
        }
    }

    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| Self::err(what, e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(Self::err(what, format!("HTTP {status}: {}", body.trim())));
        }
        Ok(resp)
    }

    /// True when the API answers.
    pub async fn is_up(&self) -> bool {
        self.http
            .get(format!("{}/version", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Create (or replace) a proxy `name` listening on 127.0.0.1:`listen`, forwarding to `upstream`.
    pub async fn create_proxy(&self, name: &str, listen: u16, upstream: &str) -> Result<()> {
        let what = format!("creating proxy {name}");
        let _ = self.delete_proxy(name).await;
        let body =
            json!({ "name": name, "listen": format!("127.0.0.1:{listen}"), "upstream": upstream, "enabled": true });
        self.send(&what, self.http.post(format!("{}/proxies", self.base)).json(&body))
            .await?;
        Ok(())
    }

    /// Delete a proxy (closing its connections); deleting a missing proxy is not an error.
    pub async fn delete_proxy(&self, name: &str) -> Result<()> {
        let what = format!("deleting proxy {name}");
        let resp = self
            .http
            .delete(format!("{}/proxies/{name}", self.base))
            .send()
            .await
            .map_err(|e| Self::err(&what, e))?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::err(&what, format!("HTTP {}", resp.status())))
        }
    }

    /// Enable or disable a proxy (disabled: refuses and drops every connection).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        let what = format!("setting proxy {name} enabled={enabled}");
        let body = json!({ "enabled": enabled });
        self.send(
            &what,
            self.http.post(format!("{}/proxies/{name}", self.base)).json(&body),
        )
        .await?;
        Ok(())
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<()> {
        let what = format!("adding toxic {} to {proxy}", toxic.name);
        self.send(
            &what,
            self.http
                .post(format!("{}/proxies/{proxy}/toxics", self.base))
                .json(toxic),
        )
        .await?;
        Ok(())
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<()> {
        let what = format!("removing toxic {toxic} from {proxy}");
        let resp = self
            .http
            .delete(format!("{}/proxies/{proxy}/toxics/{toxic}", self.base))
            .send()
            .await
            .map_err(|e| Self::err(&what, e))?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::err(&what, format!("HTTP {}", resp.status())))
        }
    }

    /// Names of the toxics on `proxy` (none if the proxy does not exist).
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
        }
        let what = format!("listing the toxics on proxy {proxy}");
        let resp = self
            .http
            .get(format!("{}/proxies/{proxy}/toxics", self.base))
            .send()
            .await
            .map_err(|e| Self::err(&what, e))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            return Err(Self::err(&what, format!("HTTP {}", resp.status())));
        }
        let named: Vec<Named> = resp.json().await.map_err(|e| Self::err(&what, e))?;
        Ok(named.into_iter().map(|t| t.name).collect())
    }

    /// Names of the proxies that exist.
    pub async fn proxies(&self) -> Result<Vec<String>> {
        let resp = self
            .send("listing proxies", self.http.get(format!("{}/proxies", self.base)))
            .await?;
        let map: serde_json::Map<String, serde_json::Value> =
            resp.json().await.map_err(|e| Self::err("listing proxies", e))?;
        Ok(map.keys().cloned().collect())
    }
}

/// The Toxiproxy server process under `$ACKCHECK_HOME/run/toxiproxy`.
pub fn server_process(home: &Home) -> NodeProcess {
    NodeProcess::in_dir(home.root().join("run").join("toxiproxy"))
}

fn server_binary(home: &Home) -> PathBuf {
    home.bin_dir().join(format!("toxiproxy-server-{VERSION}"))
}

/// Install Toxiproxy with `go install` (cached under `$ACKCHECK_HOME/bin`).
pub fn install(home: &Home) -> Result<PathBuf> {
    let target = server_binary(home);
    if target.exists() {
        return Ok(target);
    }
    let gobin = home.root().join("install").join(format!("toxiproxy-{VERSION}"));
    process::go_install(
        "Toxiproxy",
        "github.com/Shopify/toxiproxy/v2/cmd/server",
        VERSION,
        &gobin,
    )?;
    std::fs::create_dir_all(home.bin_dir()).map_err(ClusterError::io("creating the bin directory"))?;
    std::fs::copy(gobin.join("server"), &target).map_err(ClusterError::io("copying the Toxiproxy binary"))?;
    Ok(target)
}

/// Install and start the shared Toxiproxy server if it is not running; returns its client.
pub async fn ensure_running(home: &Home) -> Result<Toxiproxy> {
    let client = Toxiproxy::default();
    if client.is_up().await {
        return Ok(client);
    }
    let binary = install(home)?;
    process::ensure_ports_free(&[toxiproxy_api_port()], "Toxiproxy's API")?;
    let proc = server_process(home);
    let mut cmd = Command::new(binary);
    cmd.args(["-host", "127.0.0.1", "-port", &toxiproxy_api_port().to_string()]);
    proc.spawn(cmd)?;
    let c = client.clone();
    process::wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let c = c.clone();
        async move {
            if c.is_up().await {
                Ok(())
            } else {
                Err("API not answering".to_string())
            }
        }
    })
    .await
    .map_err(|e| {
        ClusterError::Other(format!(
            "Toxiproxy did not start ({e}); its log ends with:\n{}",
            proc.log_tail(20)
        ))
    })?;
    Ok(client)
}

/// Stop the shared Toxiproxy server if no proxy is left on it (another broker may still use it).
pub async fn stop_if_unused(home: &Home) -> Result<()> {
    let client = Toxiproxy::default();
    if client.is_up().await && !client.proxies().await?.is_empty() {
        return Ok(());
    }
    server_process(home).stop(Duration::from_secs(5))?;
    process::wait_ports_free(&[toxiproxy_api_port()], Duration::from_secs(10)).await;
    Ok(())
}
