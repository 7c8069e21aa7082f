//! Operator benchmark: `orgops run` (the real binary) against the in-repo API server and the
//! Rossum simulator, with N Organizations (default 500) copying a small template.
//!
//! `cargo bench --bench operator [-- --orgs N --idle-seconds S]` prints: time until all are
//! Ready, vendor requests per org, the operator's peak RSS, API server requests per reconcile,
//! and reconciles and vendor writes while idle. Targets: RSS < 150 MiB; while idle zero vendor
//! writes and no reconcile storm.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use orgops::api::{ClusterVendorConnection, OrgPhase, Organization};
use orgops::simulator::ServeOptions;
use orgops::simulator::rossum::{Admin, RossumSimulator, Seed};
use serde_json::json;
use test_apiserver::TestApiServer;

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
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
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
        let mut peak_rss = 0;
        loop {
            peak_rss = peak_rss.max(rss_kib(pid, "VmHWM:"));
            let list = orgs.list(&ListParams::default()).await.unwrap();
            let ready = list.items.iter().filter(|o| o.status.as_ref().and_then(|s| s.phase) == Some(OrgPhase::Ready)).count();
            if ready == orgs_n {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(1800), "only {ready}/{orgs_n} Ready after 30 min");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let to_ready = start.elapsed();
        let vendor_requests = sim.running.stats.requests.load(Ordering::Relaxed);
        let reconciles = metric(&metrics, "orgops_reconciles_total").await;
        let api_requests: u64 = server.requests().values().sum();

        // Idle.
        let writes_before = sim.with_db(|db| db.write_requests());
        let reconciles_before = reconciles;
        let requests_before = sim.running.stats.requests.load(Ordering::Relaxed);
        tokio::time::sleep(idle).await;
        peak_rss = peak_rss.max(rss_kib(pid, "VmHWM:"));
        let idle_reconciles = metric(&metrics, "orgops_reconciles_total").await - reconciles_before;
        let idle_writes = sim.with_db(|db| db.write_requests()) - writes_before;
        let idle_vendor_requests = sim.running.stats.requests.load(Ordering::Relaxed) - requests_before;
        let _ = child.kill();
        let _ = child.wait();

        let by_route: BTreeMap<String, u64> = server.requests().into_iter().collect();
        println!("operator benchmark: {orgs_n} Organizations, small template (16 objects each)");
        println!("time to all Ready:                {:.1} s", to_ready.as_secs_f64());
        println!("vendor requests per org:          {:.1}", vendor_requests as f64 / orgs_n as f64);
        println!("operator peak RSS:                {:.1} MiB (target < 150)", peak_rss as f64 / 1024.0);
        println!("reconciles until Ready:           {reconciles:.0}");
        println!("API server requests per reconcile: {:.2} ({api_requests} requests)", api_requests as f64 / reconciles.max(1.0));
        println!("idle {} s: reconciles {idle_reconciles:.0}, vendor requests {idle_vendor_requests}, vendor writes {idle_writes} (target 0 writes)", idle.as_secs());
        println!("API server requests by route: {by_route:?}");
    });
}
