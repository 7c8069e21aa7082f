//! What one organization costs at the vendor must not grow with the fleet: creating one more
//! Rossum organization takes the same requests whether the account sees 2 organizations or 400
//! (the operator keeps create intents on the resource, so a new one needs no scan of every org),
//! while a lost create response is still resolved by that scan.

mod support;

use orgops::engine::{EngineOptions, OrgState, reconcile_org};
use orgops::vendors::Endpoints;
use support::*;

/// Requests the simulator received while the engine created `tenants/new`, after `others`
/// organizations were made by hand, with the given engine options.
async fn requests_to_create(others: usize, options: &EngineOptions) -> u64 {
    let sim = simulator("").await;
    sim.with_db(|db| {
        for i in 0..others {
            db.create_org(1, &format!("Customer {i:04}"), serde_json::json!({}), None)
                .unwrap();
        }
    });
    let client = client(&sim, &Endpoints::default());
    let mut desired = desired("new", "New customer");
    desired.template = None;
    let sink = MemorySink::default();
    let before = sim
        .running
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let report = reconcile_org(
        client.as_ref(),
        &desired,
        &OrgState::default(),
        &sink,
        options,
    )
    .await;
    assert!(
        report.ready,
        "{} {}",
        report.ready_reason(),
        report.ready_message()
    );
    assert_eq!(sim.org_ids("New customer").len(), 1);
    sim.running
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst)
        - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_costs_the_same_requests_whatever_the_fleet() {
    let operator = EngineOptions {
        durable_state: true,
        ..EngineOptions::default()
    };
    let small = requests_to_create(0, &operator).await;
    let large = requests_to_create(400, &operator).await;
    assert_eq!(small, large, "requests per create grew with the fleet");

    // Without durable state (the CLI) every visible org is scanned for a renamed one of ours:
    // 400 orgs are at least 4 more pages of 100.
    let cli = EngineOptions::default();
    let small = requests_to_create(0, &cli).await;
    let large = requests_to_create(400, &cli).await;
    assert!(large >= small + 4, "{small} vs {large}");
}

/// A template listing is read once for any number of organizations while fresh, and a change
/// is reported by the next refresh even when an organization's own read saw it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_template_listing_is_read_once_and_no_change_goes_unreported() {
    use orgops::engine::copy::TemplateCache;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    let sim = simulator("").await;
    let client = client(&sim, &Endpoints::default());
    let template = sim
        .org_id(orgops::simulator::rossum::TEMPLATE_ORG)
        .unwrap()
        .to_string();
    let queues = client
        .capabilities()
        .kinds
        .iter()
        .find(|k| k.name == "queues")
        .unwrap();
    let requests = || sim.running.stats.requests.load(Ordering::SeqCst);

    let shared = TemplateCache::new(Duration::from_secs(3600));
    client.verify_credentials().await.unwrap();
    // One listing's cost, with the session already open.
    client.list_objects(&template, queues).await.unwrap();
    let before = requests();
    client.list_objects(&template, queues).await.unwrap();
    let one_listing = requests() - before;
    let before = requests();
    for _ in 0..50 {
        shared
            .list("conn", client.as_ref(), &template, queues)
            .await
            .unwrap();
    }
    assert_eq!(
        requests() - before,
        one_listing,
        "50 organizations, one listing"
    );

    // Expired at once: an organization's own read sees the change first.
    let cache = TemplateCache::new(Duration::ZERO);
    cache
        .list("conn", client.as_ref(), &template, queues)
        .await
        .unwrap();
    assert!(
        !cache
            .refresh("conn", client.as_ref(), &template)
            .await
            .unwrap()
    );
    let qid = sim.objects("queues", template.parse().unwrap())[0]["id"]
        .as_u64()
        .unwrap();
    sim.with_db(|db| db.hand_patch("queues", qid, &serde_json::json!({"name": "Renamed"})))
        .unwrap();
    cache
        .list("conn", client.as_ref(), &template, queues)
        .await
        .unwrap();
    assert!(
        cache
            .refresh("conn", client.as_ref(), &template)
            .await
            .unwrap(),
        "the change an organization read first was never reported"
    );
    assert!(
        !cache
            .refresh("conn", client.as_ref(), &template)
            .await
            .unwrap()
    );
    // Fields that do not copy (a queue's document counts) are not a change.
    sim.with_db(|db| {
        db.hand_patch(
            "queues",
            qid,
            &serde_json::json!({"counts": {"to_review": 41}}),
        )
    })
    .unwrap();
    assert!(
        !cache
            .refresh("conn", client.as_ref(), &template)
            .await
            .unwrap()
    );
}
