//! Bulk memberships: 200 OrgMemberships (10 people × 20 organizations) through the Rossum
//! simulator, which enforces the same request rate as the client (default Rossum's 10 req/s).
//! Prints elapsed, requests, requests per membership, the rate-limit ratio and how many
//! requests the vendor throttled (429) — the target is no 429 storm.
//!
//! `cargo bench --bench memberships [-- --rate N --people N --orgs N]`

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orgops::api::Vendor;
use orgops::engine::Mode;
use orgops::engine::membership::reconcile_member;
use orgops::simulator::ServeOptions;
use orgops::simulator::rossum::{Admin, RossumSimulator, Seed};
use orgops::vendors::{Credentials, Endpoints, HttpConfig, MemberDesired, connect};
use secrecy::SecretString;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rate = arg("--rate", 10) as u32;
    let people = arg("--people", 10);
    let orgs_n = arg("--orgs", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let admin = Admin { username: "bulk@orgops.example".into(), password: "bulk-pw".into(), create_key: "k".into() };
        let seed = Seed::from_json(r#"{"organization_group": {"name": "Bulk"}, "organizations": []}"#).unwrap();
        let options = ServeOptions { rate_limit: Some(rate), latency: Duration::from_millis(20), ..Default::default() };
        let sim = RossumSimulator::start(0, &seed, std::slice::from_ref(&admin), options).await.unwrap();
        let orgs: Vec<u64> = sim.with_db(|db| (0..orgs_n).map(|i| db.create_org(1, &format!("Dept {i}"), serde_json::json!({}), None).unwrap()).collect());
        let mut values = BTreeMap::new();
        values.insert("username".to_string(), SecretString::from(admin.username.clone()));
        values.insert("password".to_string(), SecretString::from(admin.password.clone()));
        let client = connect(Vendor::Rossum, Some(&sim.base_url), Credentials::new("bench/creds", values), HttpConfig { rate_per_second: rate, ..HttpConfig::default() }, &Endpoints::default()).unwrap();
        let start = Instant::now();
        // One task per person (their orgs one after another, as the controller serialises a
        // person's first access), all people at once, one shared rate limit.
        let tasks = (0..people).map(|p| {
            let client = client.clone();
            let orgs = orgs.clone();
            async move {
                let mut not_ready = 0;
                for org in orgs {
                    let d = MemberDesired { org: org.to_string(), email: format!("person-{p}@bulk.example"), first_name: None, last_name: None, roles: ["annotator".to_string()].into(), scopes: Default::default() };
                    let r = reconcile_member(client.as_ref(), &d, Mode::Apply).await;
                    if !r.ready {
                        not_ready += 1;
                    }
                }
                not_ready
            }
        });
        let failed: u32 = futures::future::join_all(tasks).await.into_iter().sum();
        let elapsed = start.elapsed();
        let requests = sim.running.stats.requests.load(Ordering::Relaxed);
        let throttled = sim.running.stats.throttled.load(Ordering::Relaxed);
        let n = people * orgs_n;
        println!("bulk memberships: {n} ({people} people x {orgs_n} orgs), vendor limit {rate} req/s, 20 ms latency");
        println!("elapsed:                 {:.1} s", elapsed.as_secs_f64());
        println!("requests:                {requests} ({:.1} per membership)", requests as f64 / n as f64);
        println!("elapsed / (requests / rate): {:.2}", elapsed.as_secs_f64() / (requests as f64 / f64::from(rate)));
        println!("throttled (429):         {throttled}");
        println!("not Ready:               {failed}");
        let users = sim.all_objects("users").iter().filter(|u| u["username"].as_str().is_some_and(|n| n.ends_with("@bulk.example"))).count();
        let memberships = sim.all_objects("memberships").len();
        println!("users: {users} (want {people}), memberships: {memberships} (want {})", n - people);
    });
}
