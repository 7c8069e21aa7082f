//! Fleet benchmark: N Organizations made from one template by the real `orgops run`, against
//! the in-repo API server and the Rossum simulator, with the vendor rate limit as the budget.
//!
//! `cargo bench --bench fleet [-- --orgs 100 --rate 50 --changes 2 --template small|full
//! --template-interval 2 --sync 60 --idle-seconds 120]` prints, for creating the fleet and for a
//! change of k template objects reaching every copy: elapsed, vendor requests, and
//! elapsed ÷ (requests ÷ rate limit) — how close to the rate limit the operator runs (goal
//! ≤ 1.2: the requests are the cost, not waiting) — then the idle cost: vendor requests per
//! org-hour, split into what the whole fleet shares (template reads) and each org's own drift
//! checks.

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

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn num(name: &str, default: u64) -> u64 {
    arg(name, &default.to_string()).parse().unwrap_or(default)
}

fn ratio(elapsed: Duration, requests: u64, rate: u64) -> f64 {
    elapsed.as_secs_f64() / (requests as f64 / rate as f64).max(f64::EPSILON)
}

fn main() {
    let orgs_n = num("--orgs", 100) as usize;
    let rate = num("--rate", 50);
    let changes = num("--changes", 2) as usize;
    let template_interval = num("--template-interval", 2);
    let sync = num("--sync", 60);
    let idle = Duration::from_secs(num("--idle-seconds", 120));
    let full = arg("--template", "small") == "full";
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let server = TestApiServer::start().await.unwrap();
        let dir = std::env::temp_dir().join(format!("orgops-fleet-{}", std::process::id()));
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
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "fleet"}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();

        let admin = Admin {
            username: "fleet@orgops.example".into(),
            password: "fleet-pw".into(),
            create_key: "fleet-key".into(),
        };
        let (seed, template_name) = if full {
            (Seed::template().unwrap(), orgops::simulator::rossum::TEMPLATE_ORG)
        } else {
            (Seed::from_json(SMALL_TEMPLATE).unwrap(), "Small template")
        };
        let sim = RossumSimulator::start(
            0,
            &seed,
            std::slice::from_ref(&admin),
            ServeOptions::default(),
        )
        .await
        .unwrap();
        let template = sim.org_id(template_name).unwrap();
        let template_objects: usize = ["workspaces", "schemas", "queues", "inboxes", "hooks", "labels", "rules", "connectors", "email_templates"]
            .iter()
            .map(|k| sim.objects(k, template).len())
            .sum();
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "rossum"}, "stringData": {
            "username": admin.username, "password": admin.password, "createKey": admin.create_key}}))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), "fleet")
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let connection: ClusterVendorConnection = serde_json::from_value(json!({"metadata": {"name": "rossum"}, "spec": {
            "vendor": "rossum", "endpoint": sim.base_url, "rateLimit": rate,
            "credentialsSecretRef": {"name": "rossum", "namespace": "fleet"}}}))
        .unwrap();
        Api::<ClusterVendorConnection>::all(client.clone())
            .create(&PostParams::default(), &connection)
            .await
            .unwrap();

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orgops"))
            .args([
                "run",
                "--namespace",
                "fleet",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--concurrency",
                "16",
                "--vendor-rate-limit",
                &rate.to_string(),
                "--lease-namespace",
                "fleet",
                "--min-sync-interval",
                "1s",
                "--template-interval",
                &format!("{template_interval}s"),
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        while !reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let requests = || sim.running.stats.requests.load(Ordering::Relaxed);

        // Create the fleet.
        let orgs: Api<Organization> = Api::namespaced(client.clone(), "fleet");
        let (start, before) = (Instant::now(), requests());
        for i in 0..orgs_n {
            let o: Organization = serde_json::from_value(json!({
                "apiVersion": "orgops.io/v1alpha1", "kind": "Organization", "metadata": {"name": format!("tenant-{i:04}")},
                "spec": {"vendor": "rossum", "displayName": format!("Tenant {i}"),
                         "connectionRef": {"kind": "ClusterVendorConnection", "name": "rossum"},
                         "syncInterval": format!("{sync}s"),
                         "template": {"displayName": template_name},
                         "settings": {"rossum": {"firstUser": {"email": format!("tenant-{i}@fleet.example")}}}}
            }))
            .unwrap();
            orgs.create(&PostParams::default(), &o).await.unwrap();
        }
        loop {
            let list = orgs.list(&ListParams::default()).await.unwrap();
            let ready = list
                .items
                .iter()
                .filter(|o| o.status.as_ref().and_then(|s| s.phase) == Some(OrgPhase::Ready))
                .count();
            if ready == orgs_n {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(3600),
                "only {ready}/{orgs_n} Ready after an hour"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (create_elapsed, create_requests) = (start.elapsed(), requests() - before);

        // Change k template objects (queue names); wait until every copy follows.
        let queues: Vec<u64> = sim
            .objects("queues", template)
            .iter()
            .filter_map(|q| q["id"].as_u64())
            .take(changes)
            .collect();
        let k = queues.len();
        let (start, before) = (Instant::now(), requests());
        for (n, id) in queues.iter().enumerate() {
            sim.with_db(|db| db.hand_patch("queues", *id, &json!({"name": format!("Changed {n}")})))
                .unwrap();
        }
        let target_ids: Vec<u64> = (0..orgs_n)
            .map(|i| sim.org_id(&format!("Tenant {i}")).unwrap())
            .collect();
        let mut first_copy: Option<Duration> = None;
        loop {
            let followed = target_ids
                .iter()
                .filter(|id| {
                    let copies = sim.objects("queues", **id);
                    (0..k).all(|n| copies.iter().any(|q| q["name"] == format!("Changed {n}")))
                })
                .count();
            if followed > 0 && first_copy.is_none() {
                first_copy = Some(start.elapsed());
            }
            if followed == orgs_n {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1800),
                "{followed}/{orgs_n} followed after 30 min"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (change_elapsed, change_requests) = (start.elapsed(), requests() - before);

        // Idle.
        let before = requests();
        tokio::time::sleep(idle).await;
        let idle_requests = requests() - before;
        let _ = child.kill();
        let _ = child.wait();

        let hours = idle.as_secs_f64() / 3600.0;
        let template_reads_per_hour = (3600 / template_interval.max(1)) as f64;
        println!(
            "fleet benchmark: {orgs_n} Organizations from one template ({template_objects} objects), vendor rate limit {rate}/s, syncInterval {sync}s, template interval {template_interval}s"
        );
        println!(
            "create fleet:       {:>7.1} s, {create_requests:>6} vendor requests ({:.1}/org), elapsed ÷ (requests ÷ rate) = {:.2}",
            create_elapsed.as_secs_f64(),
            create_requests as f64 / orgs_n as f64,
            ratio(create_elapsed, create_requests, rate)
        );
        println!(
            "change {k} objects:  {:>7.1} s to every copy (first copy after {:.1} s), {change_requests:>6} vendor requests ({:.1}/org), elapsed ÷ (requests ÷ rate) = {:.2} (goal ≤ 1.2)",
            change_elapsed.as_secs_f64(),
            first_copy.unwrap_or_default().as_secs_f64(),
            change_requests as f64 / orgs_n as f64,
            ratio(change_elapsed, change_requests, rate)
        );
        println!(
            "idle {} s:          {idle_requests} vendor requests = {:.1} per org-hour at syncInterval {sync}s (template reads shared by the fleet: ~{:.0}/h × kinds listed)",
            idle.as_secs(),
            idle_requests as f64 / orgs_n as f64 / hours,
            template_reads_per_hour
        );
    });
}
