//! The Rossum client's object deletes (pruning) and usage reads end to end against the Rossum
//! simulator: `DELETE /v1/<kind>/{id}` → 204 for every copied kind, a second delete of the
//! same object still succeeds, and the vendor's refusals (a default e-mail template) stay
//! errors; usage is the e-mail limits plus the current billing period, read only when due.

mod support;

use orgops::engine::{EngineOptions, OrgState, reconcile_org};
use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::rossum::billing_period;
use orgops::vendors::rossum::kinds;
use orgops::vendors::{Endpoints, KindSpec, VendorClient, VendorError};
use serde_json::Value;
use support::*;

fn kind(name: &str) -> &'static KindSpec {
    kinds::ALL.iter().find(|k| k.name == name).unwrap()
}

fn id_of(v: &Value) -> String {
    v["id"].as_u64().expect("an integer id").to_string()
}

/// The copied objects of `kind` the client still lists (queues being deleted are skipped, as
/// the engine skips them).
async fn live(client: &dyn VendorClient, org: &str, kind: &KindSpec) -> Vec<Value> {
    client
        .list_objects(org, kind)
        .await
        .unwrap()
        .into_iter()
        .filter(|v| kind.skip.is_none_or(|skip| !skip(v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copied_kind_is_deleted_and_a_second_delete_is_ok() {
    let sim = simulator("").await;
    let client = client(&sim, &Endpoints::default());
    let sink = MemorySink::default();
    let report = reconcile_until_ready(
        client.as_ref(),
        &desired("pruned", "Pruned department"),
        &sink,
        3,
    )
    .await;
    let org = report.external_id.clone().unwrap();
    let org_id: u64 = org.parse().unwrap();

    // Dependents first: a workspace holding queues cannot go before its queues (409).
    for name in [
        "rules",
        "labels",
        "hooks",
        "inboxes",
        "queues",
        "connectors",
        "workspaces",
    ] {
        let k = kind(name);
        let before = live(client.as_ref(), &org, k).await;
        let Some(victim) = before.first() else {
            panic!("the copy made no {name}");
        };
        let id = id_of(victim);
        let deletes = sim.writes(name).unwrap().deletes;
        client
            .delete_object(&org, k, &id)
            .await
            .unwrap_or_else(|e| panic!("{name}/{id}: {e}"));
        assert_eq!(sim.writes(name).unwrap().deletes, deletes + 1, "{name}");
        let after = live(client.as_ref(), &org, k).await;
        assert_eq!(after.len(), before.len() - 1, "{name}");
        assert!(
            after.iter().all(|v| id_of(v) != id),
            "{name}/{id} is listed"
        );
        if name == "queues" {
            // Rossum deletes queues later: marked, unlinked from the workspace.
            let q = sim
                .objects("queues", org_id)
                .into_iter()
                .find(|q| id_of(q) == id)
                .unwrap();
            assert_eq!(q["status"], "deletion_requested");
            assert_eq!(q["workspace"], Value::Null);
        } else {
            assert!(
                sim.objects(name, org_id).iter().all(|v| id_of(v) != id),
                "{name}/{id} still at the simulator"
            );
        }
        // Gone already: still Ok.
        client
            .delete_object(&org, k, &id)
            .await
            .unwrap_or_else(|e| panic!("second delete of {name}/{id}: {e}"));
    }

    // A schema linked to a queue cannot go (Rossum answers 409); an unlinked one can.
    let linked = live(client.as_ref(), &org, kind("schemas")).await;
    let refused = client
        .delete_object(&org, kind("schemas"), &id_of(&linked[0]))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("409"), "{refused}");
    assert!(!refused.is_transient(), "{refused}");
    let loose = client
        .create_object(
            &org,
            kind("schemas"),
            serde_json::json!({"name": "Loose", "content": []}),
        )
        .await
        .unwrap();
    client
        .delete_object(&org, kind("schemas"), &id_of(&loose))
        .await
        .unwrap();
    assert!(
        sim.objects("schemas", org_id)
            .iter()
            .all(|v| id_of(v) != id_of(&loose))
    );
    client
        .delete_object(&org, kind("schemas"), &id_of(&loose))
        .await
        .unwrap();

    // A custom e-mail template can go; a default one cannot (Rossum answers 400).
    let templates = live(client.as_ref(), &org, kind("email_templates")).await;
    let custom = templates.iter().find(|t| t["type"] == "custom").unwrap();
    client
        .delete_object(&org, kind("email_templates"), &id_of(custom))
        .await
        .unwrap();
    let default = templates
        .iter()
        .find(|t| t["type"] == "rejection_default")
        .unwrap();
    let refused = client
        .delete_object(&org, kind("email_templates"), &id_of(default))
        .await
        .unwrap_err();
    assert!(!refused.is_transient(), "{refused}");
    assert!(
        sim.objects("email_templates", org_id)
            .iter()
            .any(|t| id_of(t) == id_of(default)),
        "a default template was deleted"
    );

    // An id that is no number never reaches the vendor as a path.
    let requests = sim.total_writes();
    let bad = client
        .delete_object(&org, kind("hooks"), "7/../../organizations/1")
        .await
        .unwrap_err();
    assert!(matches!(bad, VendorError::Rejected(_)), "{bad}");
    assert_eq!(sim.total_writes(), requests);
}

/// Usage reads the organization's e-mail limits and the current period of its billing history
/// (`GET organizations/{id}/limits`, `GET organizations/{id}/billing_history`), and the engine
/// puts both, with a one-line summary, in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_the_email_limits_and_the_current_billing_period() {
    let sim = simulator("").await;
    let client = client(&sim, &Endpoints::default());
    let sink = MemorySink::default();
    let want = desired("billed", "Billed department");
    let first = reconcile_until_ready(client.as_ref(), &want, &sink, 3).await;
    let org = first.external_id.clone().unwrap();
    let org_id: u64 = org.parse().unwrap();
    // The copy created objects: usage was read with it.
    assert!(first.usage_observed_at.is_some());
    assert!(first.usage.as_ref().unwrap()["billing"].is_object());

    sim.with_db(|db| {
        db.billing_history.insert(
            org_id,
            vec![
                billing_period(
                    "2025",
                    serde_json::json!({"billable_pages": 1200, "purchased_pages": 5000}),
                ),
                billing_period(
                    "2024",
                    serde_json::json!({"billable_pages": 4999, "purchased_pages": 5000, "is_current": false}),
                ),
            ],
        )
    });
    let info = client.get_org(&org).await.unwrap().unwrap();
    let usage = client.usage(&info).await.unwrap().unwrap();
    assert_eq!(usage["billing"]["billable_pages"], 1200, "{usage}");
    assert_eq!(usage["billing"]["purchased_pages"], 5000, "{usage}");
    assert_eq!(usage["billing"]["begin_date"], "2025-01-01");
    assert_eq!(
        usage["email_limits"]["email_per_day_limit"], 1000,
        "{usage}"
    );
    assert_eq!(
        client.usage_summary(&usage).as_deref(),
        Some("pages 1200/5000 (2025-01-01..2025-12-31), emails today 0/1000")
    );

    // Through the engine (the CLI's options: usage read on every apply).
    let r = reconcile(client.as_ref(), &want, &sink).await;
    assert!(r.ready, "{}", r.ready_message());
    assert_eq!(r.usage.as_ref().unwrap()["billing"]["billable_pages"], 1200);
    assert_eq!(
        r.usage_summary.as_deref(),
        Some("pages 1200/5000 (2025-01-01..2025-12-31), emails today 0/1000")
    );
}

/// Usage costs two requests (limits, billing history), spent only when due: with a fresh
/// `usageObservedTime` a reconcile sends none; once it is older than the interval, or never
/// recorded, it sends them again. An hour of 10-minute drift checks costs 2 usage requests
/// instead of 12.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_read_only_when_due() {
    let sim = simulator("").await;
    let client = client(&sim, &Endpoints::default());
    let sink = MemorySink::default();
    let want = desired("counted", "Counted department");
    let first = reconcile_until_ready(client.as_ref(), &want, &sink, 3).await;
    let org = first.external_id.clone().unwrap();
    let reads = || sim.with_db(|db| db.usage_reads);
    let hourly = EngineOptions {
        usage_interval: std::time::Duration::from_secs(3600),
        ..EngineOptions::default()
    };
    let state = |observed: Option<jiff::Timestamp>| OrgState {
        external_id: Some(org.clone()),
        pending_create: None,
        usage_observed_at: observed,
    };
    let pass = |observed| {
        let state = state(observed);
        let want = &want;
        let sink = &sink;
        let client = &client;
        let hourly = &hourly;
        async move {
            let r = reconcile_org(client.as_ref(), want, &state, sink, hourly).await;
            assert!(r.ready, "{}", r.ready_message());
            r
        }
    };
    let now = jiff::Timestamp::now();

    // Fresh: nothing read, and the report carries no usage (status keeps the stored one).
    let before = reads();
    let r = pass(Some(now)).await;
    assert_eq!(reads(), before, "usage read although it was fresh");
    assert!(r.usage.is_none() && r.usage_observed_at.is_none());

    // Stale, or never recorded: read again, both requests.
    let r = pass(Some(now - jiff::SignedDuration::from_hours(2))).await;
    assert_eq!(reads(), before + 2);
    assert!(r.usage_observed_at.is_some());
    assert!(r.usage_summary.as_deref().unwrap().contains("emails today"));
    pass(None).await;
    assert_eq!(reads(), before + 4);

    // An hour of drift checks every 10 minutes, status fed back as the controller does.
    let hour_start = reads();
    let mut observed = None;
    for minute in (0..60).step_by(10) {
        let at = now + jiff::SignedDuration::from_mins(minute);
        // The engine reads the clock itself; what it compares is the recorded time, so an
        // hour is played by moving the record back instead of waiting.
        let shifted = observed.map(|o: jiff::Timestamp| o - (at - now));
        let r = pass(shifted).await;
        if let Some(t) = r.usage_observed_at {
            observed = Some(t + (at - now));
        }
    }
    let with_interval = reads() - hour_start;
    let every_time = {
        let start = reads();
        for _ in 0..6 {
            let r = reconcile_org(
                client.as_ref(),
                &want,
                &state(None),
                &sink,
                &EngineOptions::default(),
            )
            .await;
            assert!(r.ready);
        }
        reads() - start
    };
    assert_eq!(
        with_interval, 2,
        "usage requests in an org-hour with --usage-interval 1h"
    );
    assert_eq!(
        every_time, 12,
        "usage requests in an org-hour read on every check"
    );
}
