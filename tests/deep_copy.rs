//! Deep copy of the shipped template org through the Rossum simulator, over real HTTP.

mod support;

use std::collections::{BTreeSet, HashMap};

use orgops::simulator::kit::SimulatorHandle;
use orgops::vendors::Endpoints;
use serde_json::Value;
use support::*;

/// Fields a copy must carry equal to its template object (after URL mapping).
fn compared_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "labels" => &["name", "color"],
        "workspaces" => &["name", "metadata"],
        "schemas" => &["name", "content", "metadata"],
        "connectors" => &[
            "name",
            "service_url",
            "params",
            "authorization_type",
            "asynchronous",
            "metadata",
        ],
        "queues" => &[
            "name",
            "workspace",
            "schema",
            "connector",
            "settings",
            "locale",
            "session_timeout",
            "automation_enabled",
            "automation_level",
            "default_score_threshold",
            "use_confirmed_state",
            "document_lifetime",
            "metadata",
            "hooks",
        ],
        "inboxes" => &[
            "name",
            "queues",
            "email_prefix",
            "filters",
            "bounce_email_to",
            "dmarc_check_action",
            "metadata",
        ],
        "hooks" => &[
            "name",
            "type",
            "queues",
            "run_after",
            "events",
            "config",
            "settings",
            "active",
            "metadata",
            "sideload",
        ],
        "email_templates" => &[
            "name", "queue", "type", "subject", "message", "automate", "to",
        ],
        "rules" => &["name", "enabled", "queues", "trigger_condition", "actions"],
        _ => &[],
    }
}

fn normalized(field: &str, v: &Value) -> Value {
    match (field, v) {
        ("metadata", Value::Object(m)) => {
            let mut m = m.clone();
            m.remove("orgops");
            Value::Object(m)
        }
        ("queues" | "hooks" | "run_after", Value::Array(a)) => {
            let set: BTreeSet<String> = a.iter().map(|x| x.to_string()).collect();
            Value::Array(set.into_iter().map(Value::String).collect())
        }
        _ => v.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_object_has_exactly_one_equal_copy_inside_the_new_org() {
    let sim = simulator("").await;
    let endpoints = Endpoints::default();
    let client = client(&sim, &endpoints);
    let sink = MemorySink::default();
    let report = reconcile(
        client.as_ref(),
        &desired("german", "German department"),
        &sink,
    )
    .await;
    assert!(
        report.ready,
        "{}: {}",
        report.ready_reason(),
        report.ready_message()
    );
    assert!(report.org_created);

    let template = sim.org_id("Template org").unwrap();
    let target: u64 = report.external_id.as_deref().unwrap().parse().unwrap();
    let map = url_map(&sim, template, target);

    let copy = report.copy.as_ref().unwrap();
    for kind in ALL_KINDS {
        let originals = sim.objects(kind, template);
        let progress = copy.kinds[kind];
        // Status counts equal the fixture's.
        assert_eq!(progress.total as usize, originals.len(), "{kind} total");
        assert_eq!(progress.done as usize, originals.len(), "{kind} done");
        assert_eq!(progress.failed, 0, "{kind} failed");

        // Exactly one copy per template object.
        let copies = sim.objects(kind, target);
        if MARKER_KINDS.contains(kind) {
            let mut sources: Vec<&str> = copies
                .iter()
                .filter_map(|c| c.pointer("/metadata/orgops/source").and_then(Value::as_str))
                .collect();
            let n = sources.len();
            sources.sort();
            sources.dedup();
            assert_eq!(
                n,
                sources.len(),
                "{kind}: two copies of one template object"
            );
            assert_eq!(n, originals.len(), "{kind}: copies");
        }
        for t in &originals {
            let t_url = t["url"].as_str().unwrap();
            let c_url = map
                .get(t_url)
                .unwrap_or_else(|| panic!("{t_url} has no copy"));
            let c = copies.iter().find(|c| c["url"] == *c_url).unwrap();
            for field in compared_fields(kind) {
                let want = normalized(field, &rewrite(t.get(*field).unwrap_or(&Value::Null), &map));
                let have = normalized(field, c.get(*field).unwrap_or(&Value::Null));
                assert_eq!(want, have, "{kind} {t_url} field {field}");
            }
        }
    }

    // Inboxes get their own generated address, never the template's.
    for inbox in sim.objects("inboxes", target) {
        let email = inbox["email"].as_str().unwrap();
        assert!(email.starts_with(inbox["email_prefix"].as_str().unwrap()));
        assert!(
            sim.objects("inboxes", template)
                .iter()
                .all(|t| t["email"] != inbox["email"])
        );
    }
    // Hooks: run_after and hook↔queue links are preserved (also checked field by field above),
    // and the new org's first user owns their tokens.
    let hooks = sim.objects("hooks", target);
    let creator = sim
        .with_db(|db| db.render("organizations", target))
        .unwrap()["creator"]
        .clone();
    assert!(creator.is_string());
    assert!(
        hooks.iter().all(|h| h["token_owner"] == creator),
        "token owners: {:?}",
        hooks.iter().map(|h| &h["token_owner"]).collect::<Vec<_>>()
    );
    assert!(
        hooks
            .iter()
            .any(|h| h["run_after"].as_array().is_some_and(|a| a.len() == 2))
    );

    // Every reference inside the new org points inside the new org.
    let owner_of = |url: &str| -> Option<u64> {
        let rest = url.strip_prefix(&format!("{}/", sim.base_url))?;
        let (kind, id) = rest.split_once('/')?;
        let id: u64 = id.parse().ok()?;
        if kind == "organizations" {
            return Some(id);
        }
        sim.with_db(|db| db.get(kind, id).map(|r| r.org))
    };
    for kind in ALL_KINDS {
        for c in sim.objects(kind, target) {
            let mut urls = Vec::new();
            urls_in(&c, &sim.base_url, &mut urls);
            for u in urls {
                assert_eq!(
                    owner_of(&u),
                    Some(target),
                    "{kind} {} references {u}",
                    c["url"]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapply_changes_nothing_then_repairs_drift_and_propagates_template_changes() {
    let sim = simulator("").await;
    let endpoints = Endpoints::default();
    let client = client(&sim, &endpoints);
    let sink = MemorySink::default();
    let d = desired("french", "French department");
    let first = reconcile(client.as_ref(), &d, &sink).await;
    assert!(first.ready);
    let target: u64 = first.external_id.as_deref().unwrap().parse().unwrap();
    let template = sim.org_id("Template org").unwrap();

    // Re-apply: nothing created, nothing written at all.
    let writes_before = client_writes(&sim);
    let again = reconcile(client.as_ref(), &d, &sink).await;
    assert!(again.ready);
    assert!(!again.org_created && !again.settings_updated);
    let c = again.copy.as_ref().unwrap();
    assert_eq!((c.created, c.updated), (0, 0));
    assert_eq!(
        client_writes(&sim),
        writes_before,
        "a re-apply must not write"
    );

    // A fresh process (no state) finds the org by its marker instead of creating another.
    let fresh = MemorySink::default();
    let third = reconcile(client.as_ref(), &d, &fresh).await;
    assert!(third.ready && !third.org_created);
    assert_eq!(third.external_id, first.external_id);
    assert_eq!(orgs_named(&sim, "French department"), 1);

    // Drift by hand at the vendor: a queue renamed, a hook's config edited, a label deleted.
    let queue = sim.objects("queues", target)[0].clone();
    let hook = sim.objects("hooks", target)[0].clone();
    let label = sim
        .objects("labels", target)
        .into_iter()
        .find(|l| l["name"] == "Urgent")
        .unwrap();
    sim.patch_object(
        "queues",
        &queue["id"].to_string(),
        &serde_json::json!({"name": "renamed by hand"}),
    )
    .unwrap();
    // A merge patch merges objects: the config is replaced by removing it first.
    sim.patch_object(
        "hooks",
        &hook["id"].to_string(),
        &serde_json::json!({"config": null}),
    )
    .unwrap();
    sim.patch_object(
        "hooks",
        &hook["id"].to_string(),
        &serde_json::json!({"config": {"url": "https://evil.example"}}),
    )
    .unwrap();
    sim.delete_object("labels", &label["id"].to_string())
        .unwrap();
    // A change to the template reaches its copy.
    let t_schema = sim.objects("schemas", template)[0].clone();
    sim.patch_object(
        "schemas",
        &t_schema["id"].to_string(),
        &serde_json::json!({"name": "Invoice (EU) v2"}),
    )
    .unwrap();

    let repaired = reconcile(client.as_ref(), &d, &sink).await;
    assert!(repaired.ready, "{}", repaired.ready_message());
    let c = repaired.copy.as_ref().unwrap();
    assert_eq!(c.created, 1, "the deleted label is recreated");
    // Queue name, hook config, schema name, and the rule that used the deleted label now
    // points at the label's new copy.
    assert_eq!(c.updated, 4);
    let new_label = sim
        .objects("labels", target)
        .into_iter()
        .find(|l| l["name"] == label["name"])
        .unwrap();
    let rule = sim
        .objects("rules", target)
        .into_iter()
        .find(|r| r["name"] == "Flag high amounts")
        .unwrap();
    assert!(
        rule["actions"][0]["payload"]["labels"]
            .as_array()
            .unwrap()
            .contains(&new_label["url"])
    );
    let q = sim
        .objects("queues", target)
        .into_iter()
        .find(|x| x["id"] == queue["id"])
        .unwrap();
    assert_eq!(q["name"], queue["name"]);
    let h = sim
        .objects("hooks", target)
        .into_iter()
        .find(|x| x["id"] == hook["id"])
        .unwrap();
    assert_eq!(h["config"], hook["config"]);
    assert!(
        sim.objects("labels", target)
            .iter()
            .any(|l| l["name"] == label["name"])
    );
    assert!(
        sim.objects("schemas", target)
            .iter()
            .any(|s| s["name"] == "Invoice (EU) v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_limits_the_kinds_and_pulls_in_dependencies() {
    let sim = simulator("").await;
    let endpoints = Endpoints::default();
    let client = client(&sim, &endpoints);
    let mut d = desired("partial", "Partial department");
    d.template.as_mut().unwrap().include = Some(vec!["inboxes".into()]);
    let sink = MemorySink::default();
    let r = reconcile(client.as_ref(), &d, &sink).await;
    assert!(r.ready, "{}", r.ready_message());
    let kinds: BTreeSet<&str> = r.copy.as_ref().unwrap().kinds.keys().copied().collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["connectors", "inboxes", "queues", "schemas", "workspaces"])
    );
    let target: u64 = r.external_id.unwrap().parse().unwrap();
    assert!(sim.objects("hooks", target).is_empty());
    assert!(sim.objects("labels", target).is_empty());

    let mut bad = desired("bad", "Bad include");
    bad.template.as_mut().unwrap().include = Some(vec!["projects".into()]);
    let r = reconcile(client.as_ref(), &bad, &MemorySink::default()).await;
    assert!(!r.ready);
    assert_eq!(r.ready_reason(), "Unsupported");
    assert!(r.ready_message().contains("projects"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_reports_drift_and_changes_nothing() {
    let sim = simulator("").await;
    let endpoints = Endpoints::default();
    let client = client(&sim, &endpoints);
    let sink = MemorySink::default();
    let mut d = desired("sus", "Suspended department");
    assert!(reconcile(client.as_ref(), &d, &sink).await.ready);
    let target: u64 = sink.state().external_id.unwrap().parse().unwrap();
    let queue = sim.objects("queues", target)[0].clone();
    sim.patch_object(
        "queues",
        &queue["id"].to_string(),
        &serde_json::json!({"name": "drifted"}),
    )
    .unwrap();
    d.mode = orgops::engine::Mode::ObserveOnly;
    d.display_name = "Renamed while suspended".into();
    let writes = client_writes(&sim);
    let r = reconcile(client.as_ref(), &d, &sink).await;
    assert!(!r.ready);
    assert_eq!(client_writes(&sim), writes, "suspend must not write");
    assert_eq!(r.copy.as_ref().unwrap().drifted, 1);
    assert_eq!(
        sim.objects("queues", target)
            .iter()
            .filter(|q| q["name"] == "drifted")
            .count(),
        1
    );
    let reasons: HashMap<&str, &str> = r
        .conditions
        .iter()
        .map(|c| (c.type_, c.reason.as_str()))
        .collect();
    assert_eq!(reasons["SettingsSynced"], "DriftDetected");
    assert_eq!(reasons["TemplateCopied"], "DriftDetected");
}

fn client_writes(sim: &orgops::simulator::rossum::RossumSimulator) -> u64 {
    // Mutating requests the vendor handled (logins and token exchanges excluded).
    sim.total_writes()
}

fn orgs_named(sim: &orgops::simulator::rossum::RossumSimulator, name: &str) -> usize {
    sim.org_ids(name).len()
}
