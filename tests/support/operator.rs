//! `orgops run` as a real process for end-to-end tests.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::cluster::Cluster;

/// A running operator; killed when dropped.
pub struct Operator {
    /// The process.
    pub child: tokio::process::Child,
    /// Its `/metrics` URL.
    pub metrics: String,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `orgops run` as pod `identity` watching `namespaces`, with its Lease (and own
/// namespace) in `lease_ns`, plus `extra` arguments; returns once `/readyz` answers.
pub async fn start(
    c: &Cluster,
    namespaces: &[&str],
    lease_ns: &str,
    identity: &str,
    lease_seconds: u64,
    extra: &[&str],
) -> Operator {
    start_with_env(c, namespaces, lease_ns, identity, lease_seconds, extra, &[]).await
}

/// [`start`] with extra environment variables.
pub async fn start_with_env(
    c: &Cluster,
    namespaces: &[&str],
    lease_ns: &str,
    identity: &str,
    lease_seconds: u64,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Operator {
    let client = reqwest::Client::new();
    let port = free_port();
    let mut cmd = command(
        c,
        namespaces,
        lease_ns,
        identity,
        lease_seconds,
        port,
        extra,
    );
    cmd.envs(env.iter().copied());
    start_with(cmd, "http", port, &client).await
}

/// Like [`start`], serving over HTTPS: `extra` names the certificate files
/// (`--metrics-tls-cert-file`, `--metrics-tls-key-file`) and `client` trusts the certificate;
/// [`Operator::metrics`] is then the `https://` URL.
pub async fn start_https(
    c: &Cluster,
    namespaces: &[&str],
    lease_ns: &str,
    identity: &str,
    extra: &[&str],
    client: &reqwest::Client,
) -> Operator {
    let port = free_port();
    let cmd = command(c, namespaces, lease_ns, identity, 15, port, extra);
    start_with(cmd, "https", port, client).await
}

fn command(
    c: &Cluster,
    namespaces: &[&str],
    lease_ns: &str,
    identity: &str,
    lease_seconds: u64,
    port: u16,
    extra: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgops"));
    cmd.args(["run", "--namespace", &namespaces.join(",")])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--vendor-rate-limit", "200"])
        .args(["--lease-namespace", lease_ns])
        .args(["--lease-duration-seconds", &lease_seconds.to_string()])
        .args(extra)
        .env("POD_NAME", identity)
        .env("KUBECONFIG", &c.kubeconfig)
        .env("RUST_LOG", "warn,orgops=info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

async fn start_with(
    mut cmd: tokio::process::Command,
    scheme: &str,
    port: u16,
    client: &reqwest::Client,
) -> Operator {
    let child = cmd.spawn().expect("orgops run starts");
    let metrics = format!("{scheme}://127.0.0.1:{port}/metrics");
    let mut op = Operator { child, metrics };
    let ready = format!("{scheme}://127.0.0.1:{port}/readyz");
    wait_ready(&mut op.child, client, &ready).await;
    op
}

/// Waits (up to 20 s) until `url` answers 2xx through `client`; fails at once, with its exit
/// status, when `child` exits first.
pub async fn wait_ready(child: &mut tokio::process::Child, client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("orgops run exited ({status}) before {url} answered");
        }
        assert!(
            Instant::now() < deadline,
            "orgops run did not become ready at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Operator {
    /// The whole metrics page (empty when it cannot be read).
    pub async fn metrics_text(&self) -> String {
        match reqwest::get(&self.metrics).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The value of the metric line that starts with `series` (e.g.
    /// `orgops_reconciles_total{kind="connection",result="not_ready"}`), 0 when absent.
    pub async fn metric(&self, series: &str) -> u64 {
        let Ok(r) = reqwest::get(&self.metrics).await else {
            return 0;
        };
        let text = r.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next())
            .filter_map(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}
