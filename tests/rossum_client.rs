//! The Rossum client's object deletes (pruning) and usage reads end to end against the Rossum
//! simulator: `DELETE /v1/<kind>/{id}` → 204 for every copied kind, a second delete of the
//! same object still succeeds, and the vendor's refusals (a default e-mail template) stay
//! errors.

mod support;

use orgops::simulator::kit::SimulatorHandle;
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
