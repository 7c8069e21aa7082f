//! Operator benchmark: `orgops run` (the real binary) against the in-repo API server and the
//! Rossum simulator, with N Organizations (default 500) copying a small template.
//!
//! `cargo bench --bench operator [-- --orgs N --idle-seconds S]` prints, per run: the number
//! of orgs, time until all are Ready, the operator's peak RSS against the chart's memory limit,
//! API server requests per reconcile, vendor requests and writes per org, the mean reconcile
//! time, and over the idle window reconciles, vendor requests and API server requests per
//! org-hour. Targets: peak RSS < 256 MiB (the chart's limit) at 5,000 orgs; vendor requests per
//! org flat as the fleet grows; while idle zero vendor writes and no reconcile storm.
//!
//! The harness's own cost follows the work, not the fleet: readiness is followed through a
//! watch (not by listing every org), the bench's requests are made under their own user and
//! left out of the operator's figures, and the in-process API server and simulator list by
//! index and render only what they serve.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use orgops::api::{ClusterVendorConnection, OrgPhase, Organization};
use orgops::simulator::ServeOptions;
use orgops::simulator::rossum::{Admin, RossumSimulator, Seed};
use serde_json::json;
use test_apiserver::{LoggedRequest, TestApiServer};

/// The chart's memory limit for the operator (deploy/helm values).
const MEMORY_LIMIT_MIB: f64 = 256.0;
/// The user the bench's own requests are made as, so they can be told from the operator's.
const BENCH_USER: &str = "bench";

/// Requests the operator made (everything but the bench's own).
fn operator_requests(log: &[LoggedRequest]) -> impl Iterator<Item = &LoggedRequest> {
    log.iter().filter(|r| r.user != BENCH_USER)
}

#[path = "../tests/support/mod.rs"]
mod support;
use support::SMALL_TEMPLATE;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let orgs_n = arg("--orgs", 500) as usize;
    let idle = Duration::from_secs(arg("--idle-seconds", 60));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let server = TestApiServer::start().await.unwrap();
        let dir = std::env::temp_dir().join(format!("orgops-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The operator runs as the admin; the bench as its own user with every right.
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let bench_token = "orgops-bench-token";
        server.enforce_rbac(bench_token, BENCH_USER, &json!([
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}]));
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(&server.kubeconfig_for(BENCH_USER, bench_token)).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for (_, yaml) in orgops::api::crdgen::crd_files().unwrap() {
            let crd: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap();
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();

        let admin = Admin { username: "bench@orgops.example".into(), password: "bench-pw".into(), create_key: "bench-key".into() };
        let seed = Seed::from_json(SMALL_TEMPLATE).unwrap();
        let sim = RossumSimulator::start(0, &seed, std::slice::from_ref(&admin), ServeOptions::default()).await.unwrap();
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "rossum"}, "stringData": {
            "username": admin.username, "password": admin.password, "createKey": admin.create_key}})).unwrap();
        Api::<Secret>::namespaced(client.clone(), "bench").create(&PostParams::default(), &secret).await.unwrap();
        // One cluster connection for every org: one login, one rate limit.
        let connection: ClusterVendorConnection = serde_json::from_value(json!({"metadata": {"name": "rossum"}, "spec": {
            "vendor": "rossum", "endpoint": sim.base_url, "rateLimit": 1000,
            "credentialsSecretRef": {"name": "rossum", "namespace": "bench"}}})).unwrap();
        Api::<ClusterVendorConnection>::all(client.clone()).create(&PostParams::default(), &connection).await.unwrap();

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orgops"))
            .args(["run", "--namespace", "bench", "--listen", &format!("127.0.0.1:{port}"), "--concurrency", "16",
                   "--vendor-rate-limit", "1000", "--lease-namespace", "bench"])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        let pid = child.id();
        let metrics = format!("http://127.0.0.1:{port}/metrics");
        while !reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let orgs: Api<Organization> = Api::namespaced(client.clone(), "bench");
        // Readiness through a watch: the bench's cost follows the changes, not the fleet.
        let ready = Arc::new(AtomicUsize::new(0));
        let follower = tokio::spawn({
            let (orgs, ready) = (orgs.clone(), ready.clone());
            async move {
                let mut phases: HashMap<String, bool> = HashMap::new();
                let mut events = watcher(orgs, watcher::Config::default()).boxed();
                // A watch error (a 410 once the watch falls behind) is followed by a fresh
                // list: keep going.
                while let Some(event) = events.next().await {
                    let o = match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                        _ => continue,
                    };
                    let is_ready = o.status.as_ref().and_then(|s| s.phase) == Some(OrgPhase::Ready);
                    phases.insert(o.metadata.name.unwrap_or_default(), is_ready);
                    ready.store(phases.values().filter(|r| **r).count(), Ordering::Relaxed);
                }
            }
        });
        let start = Instant::now();
        for i in 0..orgs_n {
            let o: Organization = serde_json::from_value(json!({
                "apiVersion": "orgops.io/v1alpha1", "kind": "Organization", "metadata": {"name": format!("tenant-{i:04}")},
                "spec": {"vendor": "rossum", "displayName": format!("Tenant {i}"),
                         "connectionRef": {"kind": "ClusterVendorConnection", "name": "rossum"},
                         "template": {"displayName": "Small template"},
                         "settings": {"rossum": {"firstUser": {"email": format!("tenant-{i}@bench.example")}}}}
            })).unwrap();
            orgs.create(&PostParams::default(), &o).await.unwrap();
        }
        let mut last_report = Instant::now();
        loop {
            let ready = ready.load(Ordering::Relaxed);
            if ready == orgs_n {
                break;
            }
            if last_report.elapsed() >= Duration::from_secs(30) {
                eprintln!("{:.0} s: {ready}/{orgs_n} Ready, operator RSS {:.1} MiB", start.elapsed().as_secs_f64(),
                          rss_kib(pid, "VmRSS:") as f64 / 1024.0);
                last_report = Instant::now();
            }
            assert!(start.elapsed() < Duration::from_secs(3600), "only {ready}/{orgs_n} Ready after 60 min");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let to_ready = start.elapsed();
        let vendor_requests = sim.running.stats.requests.load(Ordering::Relaxed);
        let vendor_writes = sim.with_db(|db| db.write_requests());
        let reconciles = metric(&metrics, "orgops_reconciles_total").await;
        let reconcile_seconds = metric(&metrics, "orgops_reconcile_duration_seconds_sum").await;
        let reconcile_count = metric(&metrics, "orgops_reconcile_duration_seconds_count").await;
        let api_requests = operator_requests(&server.request_log()).count();

        // Idle.
        let writes_before = vendor_writes;
        let reconciles_before = reconciles;
        let requests_before = vendor_requests;
        let api_before = api_requests;
        tokio::time::sleep(idle).await;
        let peak_rss = rss_kib(pid, "VmHWM:");
        let idle_reconciles = metric(&metrics, "orgops_reconciles_total").await - reconciles_before;
        let idle_writes = sim.with_db(|db| db.write_requests()) - writes_before;
        let idle_vendor_requests = sim.running.stats.requests.load(Ordering::Relaxed) - requests_before;
        let log = server.request_log();
        let idle_api = operator_requests(&log).count() - api_before;
        let _ = child.kill();
        let _ = child.wait();
        follower.abort();

        let mut by_route: BTreeMap<String, u64> = BTreeMap::new();
        for r in operator_requests(&log) {
            let a = &r.attributes;
            let route = if a.resource_request {
                format!("{} {}{}", a.verb, a.resource, if a.subresource.is_empty() { String::new() } else { format!("/{}", a.subresource) })
            } else {
                format!("{} {}", a.verb, a.path)
            };
            *by_route.entry(route).or_default() += 1;
        }
        let n = orgs_n as f64;
        let per_org_hour = |x: f64| x / n / (idle.as_secs_f64() / 3600.0);
        let rss_mib = peak_rss as f64 / 1024.0;
        println!("operator benchmark: {orgs_n} Organizations, small template (16 objects each)");
        println!("orgs:                              {orgs_n}");
        println!("time to all Ready:                 {:.1} s", to_ready.as_secs_f64());
        println!("operator peak RSS:                 {rss_mib:.1} MiB of the {MEMORY_LIMIT_MIB:.0} MiB limit ({:.0} %)", 100.0 * rss_mib / MEMORY_LIMIT_MIB);
        println!("reconciles until Ready:            {reconciles:.0} (mean {:.1} ms each)", 1000.0 * reconcile_seconds / reconcile_count.max(1.0));
        println!("API server requests per reconcile: {:.2} ({api_requests} requests)", api_requests as f64 / reconciles.max(1.0));
        println!("vendor requests per org:           {:.1}", vendor_requests as f64 / n);
        println!("vendor write requests per org:     {:.1}", vendor_writes as f64 / n);
        println!("idle {} s, per org-hour: reconciles {:.2}, vendor requests {:.2}, API requests {:.2}; vendor writes {idle_writes} (target 0)",
                 idle.as_secs(), per_org_hour(idle_reconciles), per_org_hour(idle_vendor_requests as f64), per_org_hour(idle_api as f64));
        println!("operator API server requests by route: {by_route:?}");
    });
}
