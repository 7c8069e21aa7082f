//! With ≥ 20 % of requests failing in mixed ways — dropped POST responses included — the result
//! is identical to a clean run: one org, one copy of every template object.

mod support;

use std::sync::atomic::Ordering;

use orgops::vendors::Endpoints;
use serde_json::Value;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_duplicate_the_org_or_any_copy() {
    let sim =
        simulator("5xx=0.05,429=0.04,reset=0.04,slow=0.01,drop=0.08,slow_ms=50,seed=42").await;
    let endpoints = Endpoints::default();
    let client = client(&sim, &endpoints);
    let sink = MemorySink::default();
    let d = desired("faulty", "Faulty department");
    let report = reconcile_until_ready(client.as_ref(), &d, &sink, 10).await;

    let stats = &sim.running.stats;
    let requests = stats.requests.load(Ordering::Relaxed);
    let faults = stats.faults.load(Ordering::Relaxed);
    let dropped = stats.dropped.load(Ordering::Relaxed);
    assert!(
        faults as f64 >= 0.18 * requests as f64,
        "{faults}/{requests} faults"
    );
    assert!(dropped > 0, "no response was dropped");

    // Exactly one organization.
    let orgs: Vec<u64> = sim.org_ids("Faulty department");
    assert_eq!(orgs.len(), 1, "organizations: {orgs:?}");
    let target = orgs[0];
    assert_eq!(
        report.external_id.as_deref(),
        Some(target.to_string().as_str())
    );
    let org = sim
        .with_db(|db| db.render("organizations", target))
        .unwrap();
    assert_eq!(org["metadata"]["orgops"]["owner"], "tenants/faulty");

    // Exactly one copy of every template object, of every kind.
    let template = sim.org_id("Template org").unwrap();
    for kind in ALL_KINDS {
        let originals = sim.objects(kind, template).len();
        let copies = sim.objects(kind, target);
        // Marker kinds count marked copies (the vendor's own default workspace is not one).
        let live = if MARKER_KINDS.contains(kind) {
            copies
                .iter()
                .filter(|c| c.pointer("/metadata/orgops").is_some())
                .count()
        } else {
            copies.len()
        };
        assert_eq!(
            live, originals,
            "{kind}: {live} copies of {originals} template objects"
        );
        if MARKER_KINDS.contains(kind) {
            let mut sources: Vec<&str> = copies
                .iter()
                .filter_map(|c| c.pointer("/metadata/orgops/source").and_then(Value::as_str))
                .collect();
            sources.sort();
            let n = sources.len();
            sources.dedup();
            assert_eq!(n, sources.len(), "{kind}: duplicate copies");
        }
    }
    // Natural-key kinds: no two copies with the same name in the same parent.
    for (kind, parent) in [
        ("labels", "organization"),
        ("rules", "organization"),
        ("email_templates", "queue"),
    ] {
        let mut keys: Vec<String> = sim
            .objects(kind, target)
            .iter()
            .map(|c| {
                format!(
                    "{}|{}|{}",
                    c[parent],
                    c["name"],
                    c.get("type").unwrap_or(&Value::Null)
                )
            })
            .collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(n, keys.len(), "{kind}: duplicates");
    }
    // Only one user was made by the org creation (the first user), however often it was retried.
    let first_users = sim
        .all_objects("users")
        .iter()
        .filter(|u| u["username"] == "faulty@tenants.example")
        .count();
    assert_eq!(first_users, 1);
}
