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
