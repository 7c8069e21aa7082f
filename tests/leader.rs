//! Leader election end to end: never two leaders acting at once, even when the leader is frozen
//! (SIGSTOP) past its Lease in the middle of a copy and then resumed (SIGCONT).
//!
//! Whose write is whose: each replica sends its vendor traffic through its own forward proxy
//! (its `HTTP_PROXY`, which the HTTP layer honours like any reqwest client; the Kubernetes
//! client does not read it), and the proxy records each request as it arrives. Both replicas
//! read the same VendorConnection, so this is how a write is attributed to a process.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use orgops::engine::Requeue;
use orgops::simulator::ServeOptions;
use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::rossum::{RossumSimulator, Seed};
use orgops::vendors::{Endpoints, Fence, HttpConfig};
use reqwest::Method;
use serde_json::Value;
use support::cluster::{Cluster, stderr, stdout};
use support::operator::Operator;
use support::*;

/// Organizations copied at once.
const ORGS: [&str; 3] = ["dept-1", "dept-2", "dept-3"];

/// Short, so the test is quick; the renew deadline (2/3) and retry period (2/15) follow it.
const LEASE_SECONDS: u64 = 4;

/// One request a proxy forwarded.
#[derive(Clone, Debug)]
struct Forwarded {
    method: Method,
    path: String,
    at: Instant,
}

impl Forwarded {
    fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }
}

/// A forward HTTP proxy on loopback for one operator process: records every request when it
/// arrives, then relays it to the URL it names and relays the answer back — or holds the answer
/// while [`Proxy::hold`] says so.
struct Proxy {
    url: String,
    log: Arc<Mutex<Vec<Forwarded>>>,
    hold: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (hold, held) = tokio::sync::watch::channel(false);
        let relay_client = reqwest::Client::builder().no_proxy().build().unwrap();
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, client, held) = (task_log.clone(), relay_client.clone(), held.clone());
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (log, client, mut held) = (log.clone(), client.clone(), held.clone());
                    async move {
                        let response = relay(req, &log, &client).await;
                        let _ = held.wait_for(|hold| !*hold).await;
                        response
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            url,
            log,
            hold,
            task,
        }
    }

    /// Holds every answer from now on (`true`), or lets them all go (`false`).
    fn hold(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    /// Waits until no request has arrived for `quiet`.
    async fn wait_quiet(&self, quiet: Duration) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let last = self.log.lock().unwrap().last().map(|f| f.at);
            if last.is_none_or(|at| at.elapsed() >= quiet) {
                return;
            }
            assert!(Instant::now() < deadline, "requests kept coming");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn writes(&self) -> Vec<Forwarded> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|f| f.is_write()).cloned().collect()
    }

    fn total(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

const HOP_BY_HOP: [&str; 7] = [
    "host",
    "connection",
    "proxy-connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
    "proxy-authorization",
];

async fn relay(
    req: hyper::Request<Incoming>,
    log: &Mutex<Vec<Forwarded>>,
    client: &reqwest::Client,
) -> Result<hyper::Response<axum::body::Body>, Infallible> {
    log.lock().unwrap().push(Forwarded {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        at: Instant::now(),
    });
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
        .await
        .unwrap_or_default();
    let mut headers = parts.headers;
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    // A proxied request names its absolute URL.
    let answer = client
        .request(parts.method, parts.uri.to_string())
        .headers(headers)
        .body(body)
        .send()
        .await;
    let mut response = hyper::Response::new(axum::body::Body::empty());
    match answer {
        Ok(answer) => {
            *response.status_mut() = answer.status();
            let mut headers = answer.headers().clone();
            for h in HOP_BY_HOP {
                headers.remove(h);
            }
            *response.headers_mut() = headers;
            *response.body_mut() = axum::body::Body::from(answer.bytes().await.unwrap_or_default());
        }
        Err(_) => *response.status_mut() = hyper::StatusCode::BAD_GATEWAY,
    }
    Ok(response)
}

/// Replica `identity` of the operator, its vendor traffic through `proxy`.
async fn replica(c: &Cluster, ns: &str, identity: &str, proxy: &Proxy, extra: &[&str]) -> Operator {
    let mut args = vec!["--allowed-endpoints", "rossum=http://127.0.0.1:*"];
    args.extend_from_slice(extra);
    support::operator::start_with_env(
        c,
        &[ns],
        ns,
        identity,
        LEASE_SECONDS,
        &args,
        &[
            ("HTTP_PROXY", &proxy.url),
            ("http_proxy", &proxy.url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
    )
    .await
}

/// A Secret and a VendorConnection to the simulator.
fn connection(ns: &str, endpoint: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: rossum-admin, namespace: {ns}}}\nstringData:\n  username: {ADMIN}\n  password: {PASSWORD}\n  createKey: {CREATE_KEY}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: rossum, namespace: {ns}}}\nspec:\n  vendor: rossum\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: rossum-admin}}\n"
    )
}

/// Organization `name` (displayed as `name` too) copying the template.
fn organization(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  vendor: rossum\n  displayName: {name}\n  connectionRef: {{name: rossum}}\n  template: {{displayName: Template org}}\n  settings: {{rossum: {{firstUser: {{email: {name}-{ns}@tenants.example}}}}}}\n"
    )
}

/// The connection and Organizations `names`, in one manifest.
fn manifests(ns: &str, endpoint: &str, names: &[&str]) -> String {
    let mut docs = vec![connection(ns, endpoint)];
    docs.extend(names.iter().map(|n| organization(ns, n)));
    docs.join("---\n")
}

async fn apply(c: &Cluster, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, text).unwrap();
    let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

async fn wait_ready(c: &Cluster, ns: &str, name: &str) {
    let out = c
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("org/{name}"),
            "-n",
            ns,
            "--timeout=90s",
        ])
        .await;
    assert!(
        out.status.success(),
        "wait Ready: {}\n{}",
        stderr(&out),
        stdout(&c.kubectl(&["get", "org", "-n", ns, "-o", "yaml"]).await)
    );
}

async fn leader_gauge(op: &Operator) -> Option<u64> {
    let text = reqwest::get(&op.metrics).await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with("orgops_leader "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn lease_holder(c: &Cluster, ns: &str) -> String {
    stdout(
        &c.kubectl(&[
            "get",
            "lease",
            "orgops-leader",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .await,
    )
}

/// Sends `signal` (`STOP`, `CONT`) to `pid` with the `kill` command.
fn signal(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Each template object of the kinds copied with a marker has exactly one marked copy in
/// vendor organization `org`; the other kinds have as many copies as the template has objects;
/// one organization is named `display_name`, and one user is `first_user`.
fn assert_one_copy_each(sim: &RossumSimulator, org: u64, display_name: &str, first_user: &str) {
    let template = sim.org_id("Template org").unwrap();
    for kind in MARKER_KINDS {
        let mut sources: Vec<String> = sim
            .objects(kind, org)
            .iter()
            .filter_map(|o| o.pointer("/metadata/orgops/source").map(Value::to_string))
            .collect();
        sources.sort();
        let copies = sources.len();
        sources.dedup();
        assert_eq!(
            copies,
            sources.len(),
            "{display_name} {kind}: a template object copied twice"
        );
        assert_eq!(
            copies,
            sim.objects(kind, template).len(),
            "{display_name} {kind}"
        );
    }
    for kind in ["labels", "rules", "email_templates"] {
        assert_eq!(
            sim.objects(kind, org).len(),
            sim.objects(kind, template).len(),
            "{display_name} {kind}"
        );
    }
    let orgs = sim.org_ids(display_name).len();
    assert_eq!(orgs, 1, "organizations named {display_name}");
    let users = sim
        .all_objects("users")
        .iter()
        .filter(|u| u["username"] == first_user)
        .count();
    assert_eq!(users, 1, "users {first_user}");
}

/// [`assert_one_copy_each`] for Organization `name` of [`organization`].
async fn assert_exactly_one_copy_of_everything(
    c: &Cluster,
    sim: &RossumSimulator,
    ns: &str,
    name: &str,
) {
    let org = external_id(c, ns, name).await;
    assert_one_copy_each(sim, org, name, &format!("{name}-{ns}@tenants.example"));
}

async fn external_id(c: &Cluster, ns: &str, name: &str) -> u64 {
    let out = c
        .kubectl(&[
            "get",
            "org",
            name,
            "-n",
            ns,
            "-o",
            "jsonpath={.status.externalId}",
        ])
        .await;
    stdout(&out).parse().expect("status.externalId")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_the_standby_took_over() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("freeze").await;
    // Latency stretches the copies over seconds, so that the freeze lands in the middle of them
    // (several reconciles, each with requests in flight) and the new leader has work left.
    let sim = RossumSimulator::start(
        0,
        &Seed::template().unwrap(),
        &[admin()],
        ServeOptions {
            latency: Duration::from_millis(100),
            ..ServeOptions::default()
        },
    )
    .await
    .unwrap();
    let (proxy_a, proxy_b) = (Proxy::start().await, Proxy::start().await);
    let slow = ["--copy-concurrency", "4"];
    let mut a = replica(&c, &ns, "replica-a", &proxy_a, &slow).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader_gauge(&a).await != Some(1) {
        assert!(Instant::now() < deadline, "replica-a did not become leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = replica(&c, &ns, "replica-b", &proxy_b, &slow).await;
    assert_eq!(leader_gauge(&b).await, Some(0), "replica-b stands by");

    apply(&c, &manifests(&ns, &sim.base_url, &ORGS)).await;
    // The leader is in the middle of the copies.
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy_a.writes().len() < 12 {
        assert!(Instant::now() < deadline, "replica-a did not start copying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        proxy_b.writes().is_empty(),
        "the standby wrote to the vendor"
    );

    // Freeze the leader past its Lease, with every copy task waiting on an answer that it
    // gets only once it runs again. (Waiting for that quiet moment keeps the freeze from
    // landing in the microseconds between the fence check and the socket write of a request,
    // which no fence on this side of the socket can cover.) The standby takes over.
    proxy_a.hold(true);
    proxy_a.wait_quiet(Duration::from_millis(500)).await;
    let pid = a.child.id().unwrap();
    signal("STOP", pid);
    let stopped = Instant::now();
    proxy_a.hold(false);
    let deadline = stopped + Duration::from_secs(30);
    loop {
        if leader_gauge(&b).await == Some(1) && lease_holder(&c, &ns).await == "replica-b" {
            break;
        }
        assert!(Instant::now() < deadline, "the standby did not take over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took_over = Instant::now();
    let takeover = took_over - stopped;
    eprintln!("takeover {takeover:?} after SIGSTOP (lease {LEASE_SECONDS} s)");
    // Not before the Lease, last renewed before the freeze, could have expired.
    assert!(
        takeover >= Duration::from_secs(LEASE_SECONDS),
        "taken over after {takeover:?}"
    );
    let a_writes = proxy_a.writes().len();
    let writes_at_takeover = sim.total_writes();

    // Resume it: whatever it was doing, it starts no vendor write, and exits non-zero.
    signal("CONT", pid);
    let status = tokio::time::timeout(Duration::from_secs(30), a.child.wait())
        .await
        .expect("the old leader exits after losing its Lease")
        .unwrap();
    assert!(!status.success(), "old leader's exit: {status:?}");
    let late: Vec<_> = proxy_a
        .writes()
        .into_iter()
        .filter(|w| w.at >= took_over)
        .map(|w| format!("{} {}", w.method, w.path))
        .collect();
    assert!(
        late.is_empty(),
        "the old leader wrote after the takeover: {late:?}"
    );
    assert_eq!(proxy_a.writes().len(), a_writes);

    // The new leader finishes the copies: exactly one copy of everything.
    for name in ORGS {
        wait_ready(&c, &ns, name).await;
    }
    assert!(
        sim.total_writes() > writes_at_takeover && !proxy_b.writes().is_empty(),
        "the new leader had nothing left to copy"
    );
    for name in ORGS {
        assert_exactly_one_copy_of_everything(&c, &sim, &ns, name).await;
    }
    // Every vendor request went through the replicas' proxies (none bypassed them).
    let proxied = (proxy_a.total() + proxy_b.total()) as u64;
    let received = sim
        .running
        .stats
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        received > 0 && received <= proxied,
        "{received} > {proxied}"
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leader_election_the_write_fence_stays_open() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("nolease").await;
    let sim = simulator("").await;
    let op = support::operator::start(
        &c,
        &[&ns],
        &ns,
        "replica-0",
        LEASE_SECONDS,
        &[
            "--allowed-endpoints",
            "rossum=http://127.0.0.1:*",
            "--leader-election=false",
        ],
    )
    .await;
    apply(&c, &manifests(&ns, &sim.base_url, &["dept-1"])).await;
    wait_ready(&c, &ns, "dept-1").await;
    assert!(sim.total_writes() > 0);
    assert_exactly_one_copy_of_everything(&c, &sim, &ns, "dept-1").await;
    assert_eq!(leader_gauge(&op).await, Some(1));
    // No Lease was involved.
    let lease = c
        .kubectl(&["get", "lease", "orgops-leader", "-n", &ns])
        .await;
    assert!(!lease.status.success(), "{}", stdout(&lease));
}

/// A client of `sim` whose writes go out only while `fence` holds.
fn fenced_client(
    sim: &RossumSimulator,
    fence: &Arc<Fence>,
) -> Arc<dyn orgops::vendors::VendorClient> {
    let config = HttpConfig {
        rate_per_second: 1000,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        fence: Some(fence.clone()),
        ..HttpConfig::default()
    };
    orgops::vendors::connect(
        orgops::api::Vendor::Rossum,
        Some(&sim.base_url),
        credentials(PASSWORD),
        config,
        &Endpoints::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_that_lapses_mid_copy_stops_the_writes_as_a_transient_failure() {
    let sim = RossumSimulator::start(
        0,
        &Seed::template().unwrap(),
        &[admin()],
        ServeOptions {
            latency: Duration::from_millis(100),
            ..ServeOptions::default()
        },
    )
    .await
    .unwrap();
    let template = sim.org_id("Template org").unwrap();
    let template_objects: usize = ALL_KINDS
        .iter()
        .map(|k| sim.objects(k, template).len())
        .sum();
    let fence = Arc::new(Fence::closed());
    let client = fenced_client(&sim, &fence);
    let desired = desired("fenced", "Fenced department");
    let sink = Arc::new(MemorySink::default());

    // Closed from the start (a standby, or a leader that lost its Lease): nothing is written,
    // and the failure is one to retry, not one for a human.
    let r = reconcile(client.as_ref(), &desired, &sink).await;
    assert!(!r.ready);
    assert_eq!(r.requeue, Requeue::Backoff, "{}", r.ready_message());
    assert_eq!(r.ready_reason(), "NotLeader", "{}", r.ready_message());
    assert_eq!(sim.total_writes(), 0);

    // Open, then lapsed in the middle of the copy: the writes stop there.
    fence.valid_until(Instant::now() + Duration::from_secs(600));
    let copy = {
        let (client, desired, sink) = (client.clone(), desired.clone(), sink.clone());
        tokio::spawn(async move { reconcile(client.as_ref(), &desired, &sink).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.total_writes() < 5 {
        assert!(Instant::now() < deadline, "the copy did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fence.close();
    let r = copy.await.unwrap();
    assert!(!r.ready);
    assert_eq!(r.requeue, Requeue::Backoff, "{}", r.ready_message());
    let written = sim.total_writes();
    assert!(
        written < (template_objects as u64) / 2,
        "{written} writes of about {template_objects} went on after the fence lapsed"
    );

    // Whoever holds the fence next finishes the copy, without duplicates.
    fence.valid_until(Instant::now() + Duration::from_secs(600));
    let r = reconcile_until_ready(client.as_ref(), &desired, &sink, 5).await;
    let org: u64 = r.external_id.unwrap().parse().unwrap();
    assert_one_copy_each(&sim, org, "Fenced department", "fenced@tenants.example");
}
