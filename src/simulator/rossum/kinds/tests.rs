//! The kind rules through the generic create / update / delete / render, on a database without
//! HTTP: side effects, the hook ↔ queue relation, delete rules, write counters.

use serde_json::{Value, json};

use super::super::db::Db;
use super::super::seed::{self, Seed};
use crate::simulator::kit::WriteCounts;

const BASE: &str = "http://sim.example/api/v1";

/// One organization with a workspace, a schema, a connector and two hooks; counters at zero.
fn db() -> (Db, u64) {
    let seed = Seed::from_json(
        r#"{"organization_group": {"name": "G"}, "organizations": [{"name": "Acme",
            "workspaces": [{"key": "ws", "name": "WS"}],
            "schemas": [{"key": "s", "name": "S", "content": []}],
            "connectors": [{"key": "c", "name": "C", "service_url": "https://c.example"}],
            "hooks": [{"key": "h1", "name": "H1"}, {"key": "h2", "name": "H2", "run_after": ["h1"]}]}]}"#,
    )
    .unwrap();
    let mut db = Db::new(BASE);
    seed::load(&mut db, &seed, &[]).unwrap();
    let org = db
        .find("organizations", |o| o.value["name"] == "Acme")
        .unwrap()
        .id;
    (db, org)
}

fn url_of(db: &Db, kind: &str, org: u64, name: &str) -> String {
    db.in_org(kind, org)
        .into_iter()
        .find(|r| r.value["name"] == name)
        .map(|r| db.url(kind, r.id))
        .unwrap()
}

fn id_of(url: &str) -> u64 {
    super::super::db::id_in(url).unwrap()
}

fn queue(db: &mut Db, org: u64, extra: Value) -> Value {
    let mut body = json!({"name": "Q", "schema": url_of(db, "schemas", org, "S"),
                          "workspace": url_of(db, "workspaces", org, "WS")});
    json_patch::merge(&mut body, &extra);
    db.create_object("queues", org, body).unwrap()
}

#[test]
fn a_queue_brings_its_default_templates_and_counts_each_object_made() {
    let (mut db, org) = db();
    assert_eq!(
        db.writes("queues"),
        WriteCounts::default(),
        "seeding is not counted"
    );
    let q = queue(&mut db, org, json!({}));
    assert_eq!(q["status"], "active");
    assert_eq!(q["inbox"], Value::Null);
    let templates: Vec<Value> = db
        .in_org("email_templates", org)
        .into_iter()
        .filter(|t| t.value["queue"] == q["url"])
        .map(|t| t.value.clone())
        .collect();
    assert_eq!(templates.len(), 5);
    assert_eq!(
        templates
            .iter()
            .filter(|t| t["triggers"].as_array().unwrap().len() == 1)
            .count(),
        3
    );
    assert_eq!(db.writes("queues").creates, 1);
    assert_eq!(db.writes("email_templates").creates, 5);
    assert_eq!(db.writes("triggers").creates, 3);
    // The workspace lists the queue, the schema too.
    let ws = db
        .render("workspaces", id_of(q["workspace"].as_str().unwrap()))
        .unwrap();
    assert_eq!(ws["queues"], json!([q["url"]]));
}

#[test]
fn an_inbox_points_its_queue_back_without_counting_a_queue_write() {
    let (mut db, org) = db();
    let q = queue(&mut db, org, json!({}));
    let body = json!({"name": "In", "queues": [q["url"]], "email_prefix": "acme-ap"});
    let inbox = db.create_object("inboxes", org, body.clone()).unwrap();
    let email = inbox["email"].as_str().unwrap();
    assert!(
        email.starts_with("acme-ap-") && email.ends_with("@acme.rossum.app"),
        "{email}"
    );
    let qid = id_of(q["url"].as_str().unwrap());
    assert_eq!(db.render("queues", qid).unwrap()["inbox"], inbox["url"]);
    assert_eq!(db.writes("queues").updates, 0);
    assert_eq!(db.writes("inboxes").creates, 1);
    let again = db.create_object("inboxes", org, body).unwrap_err();
    assert_eq!(
        again.body,
        json!({"queues": ["This queue already has an inbox."]})
    );
}

#[test]
fn queue_hooks_and_hook_queues_are_one_relation() {
    let (mut db, org) = db();
    let h1 = url_of(&db, "hooks", org, "H1");
    let h2 = url_of(&db, "hooks", org, "H2");
    let q = queue(&mut db, org, json!({"hooks": [h1]}));
    let qid = id_of(q["url"].as_str().unwrap());
    assert_eq!(q["hooks"], json!([h1]));
    assert_eq!(q["webhooks"], json!([h1]));
    assert_eq!(
        db.render("hooks", id_of(&h1)).unwrap()["queues"],
        json!([q["url"]])
    );
    // Rossum prefers the deprecated alias when both are sent.
    let q2 = db
        .update_object("queues", qid, org, json!({"hooks": [h1], "webhooks": [h2]}))
        .unwrap();
    assert_eq!(q2["hooks"], json!([h2]));
    assert_eq!(db.render("hooks", id_of(&h1)).unwrap()["queues"], json!([]));
    assert_eq!(db.writes("queues").updates, 1);
    assert_eq!(
        db.writes("hooks").updates,
        0,
        "the other side is not a write"
    );
    // A hook of another organization (or none) is refused before anything changes.
    let before = db.render("queues", qid).unwrap();
    let bad = db
        .update_object(
            "queues",
            qid,
            org,
            json!({"name": "renamed", "hooks": [format!("{BASE}/hooks/1")]}),
        )
        .unwrap_err();
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body,
        json!({"hooks": ["Invalid hyperlink - Object does not exist."]})
    );
    assert_eq!(db.render("queues", qid).unwrap(), before);
    let creates = db.writes("queues").creates;
    let bad = db.create_object(
        "queues",
        org,
        json!({"name": "Q2", "schema": url_of(&db, "schemas", org, "S"),
               "hooks": [format!("{BASE}/hooks/1")]}),
    );
    assert!(bad.is_err());
    assert_eq!(db.writes("queues").creates, creates, "nothing stored");
    assert_eq!(db.in_org("queues", org).len(), 1);
}

#[test]
fn delete_rules_conflict_soft_delete_and_unlink() {
    let (mut db, org) = db();
    let q = queue(&mut db, org, json!({}));
    let qid = id_of(q["url"].as_str().unwrap());
    let ws = id_of(q["workspace"].as_str().unwrap());
    let schema = id_of(q["schema"].as_str().unwrap());
    let e = db.delete_object("workspaces", ws).unwrap_err();
    assert_eq!(
        (e.status, e.body["detail"].clone()),
        (409, json!("Workspace still contains queues."))
    );
    let e = db.delete_object("schemas", schema).unwrap_err();
    assert_eq!(e.status, 409);
    assert_eq!(db.writes("workspaces").deletes, 0);
    // Deleting a queue requests its deletion: it stays, out of its workspace, no longer live.
    db.delete_object("queues", qid).unwrap();
    let gone = db.render("queues", qid).unwrap();
    assert_eq!(gone["status"], "deletion_requested");
    assert_eq!(gone["workspace"], Value::Null);
    assert_eq!(db.writes("queues").deletes, 1);
    db.delete_object("schemas", schema).unwrap();
    db.delete_object("workspaces", ws).unwrap();
    assert!(db.get("workspaces", ws).is_none());
    // A deleted hook leaves the run_after lists that held it.
    let h1 = url_of(&db, "hooks", org, "H1");
    let h2 = id_of(&url_of(&db, "hooks", org, "H2"));
    assert_eq!(db.render("hooks", h2).unwrap()["run_after"], json!([h1]));
    db.delete_object("hooks", id_of(&h1)).unwrap();
    assert_eq!(db.render("hooks", h2).unwrap()["run_after"], json!([]));
    assert_eq!(
        db.writes("hooks"),
        WriteCounts {
            creates: 0,
            updates: 0,
            deletes: 1
        }
    );
    // Rossum's own templates cannot be deleted; custom ones can.
    let default = db
        .in_org("email_templates", org)
        .into_iter()
        .find(|t| t.value["type"] == "rejection_default")
        .unwrap()
        .id;
    assert_eq!(
        db.delete_object("email_templates", default)
            .unwrap_err()
            .status,
        400
    );
}

#[test]
fn secrets_and_private_keys_are_never_served() {
    let (mut db, org) = db();
    let hook = db
        .create_object(
            "hooks",
            org,
            json!({"name": "H3", "secrets": {"token": "s3cr3t"},
                   "config": {"url": "https://h.example", "client_ssl_key": "KEY"}}),
        )
        .unwrap();
    let id = hook["id"].as_u64().unwrap();
    let c = url_of(&db, "connectors", org, "C");
    let patched = db
        .update_object(
            "connectors",
            id_of(&c),
            org,
            json!({"client_ssl_key": "KEY"}),
        )
        .unwrap();
    db.update_object("hooks", id, org, json!({"secrets": {"token": "other"}}))
        .unwrap();
    for served in [hook, patched, db.render("hooks", id).unwrap()] {
        let text = served.to_string();
        assert!(
            !text.contains("s3cr3t") && !text.contains("other") && !text.contains("KEY"),
            "{text}"
        );
    }
    assert_eq!(db.write_only[&("hooks", id)]["secrets"]["token"], "other");
}

#[test]
fn creates_check_required_fields_references_and_types() {
    let (mut db, org) = db();
    let e = db
        .create_object("queues", org, json!({"name": ""}))
        .unwrap_err();
    assert_eq!(
        e.body,
        json!({"name": ["This field is required."], "schema": ["This field is required."]})
    );
    let e = db
        .create_object("queues", org, json!({"name": "Q", "schema": 7}))
        .unwrap_err();
    assert_eq!(
        e.body,
        json!({"schema": ["Incorrect type. Expected URL string."]})
    );
    let e = db
        .create_object("hooks", org, json!({"name": "H", "type": "cron"}))
        .unwrap_err();
    assert_eq!(e.body, json!({"type": ["\"cron\" is not a valid choice."]}));
    let e = db
        .create_object("rules", org, json!({"name": "R", "queues": "nope"}))
        .unwrap_err();
    assert_eq!(e.body, json!({"queues": ["Expected a list of items."]}));
    let e = db
        .create_object("labels", org, json!({"name": "L", "metadata": [1]}))
        .unwrap_err();
    assert_eq!(
        e.body,
        json!({"metadata": ["Value must be valid JSON object."]})
    );
    assert_eq!(
        db.create_object("triggers", org, json!({}))
            .unwrap_err()
            .status,
        405
    );
    let label = db
        .create_object("labels", org, json!({"name": "L"}))
        .unwrap();
    assert_eq!(label["organization"], json!(db.url("organizations", org)));
    assert_eq!(label["color"], Value::Null);
    assert_eq!(db.writes("labels").creates, 1);
}

#[test]
fn rendering_changes_only_the_fields_lists_treat_as_computed() {
    // Lists filter and order stored objects and render only the page they serve, unless a
    // query names a computed field; that is right only while rendering changes nothing else.
    let (mut db, org) = db();
    let h1 = url_of(&db, "hooks", org, "H1");
    let rule_queue = queue(&mut db, org, json!({"hooks": [h1]}));
    db.create_object(
        "rules",
        org,
        json!({"name": "R", "queues": [rule_queue["url"]], "trigger_condition": "True"}),
    )
    .unwrap();
    let mut reverse_lists_seen = 0;
    for kind in super::names() {
        let computed = super::computed_fields(kind);
        for r in db.all(kind) {
            let rendered = db.render_rec(kind, r);
            let (Some(stored), Some(served)) = (r.value.as_object(), rendered.as_object()) else {
                panic!("{kind} {} is not an object", r.id);
            };
            for (field, value) in served {
                if stored.get(field) != Some(value) {
                    assert!(
                        computed.contains(&field.as_str()),
                        "{kind}.{field} changes on render but is not declared computed"
                    );
                    reverse_lists_seen += 1;
                }
            }
            for field in stored.keys() {
                assert!(
                    served.contains_key(field),
                    "{kind}.{field} dropped on render"
                );
            }
        }
    }
    assert!(
        reverse_lists_seen >= 4,
        "the fixture renders reverse lists (queue.hooks, schema.queues, …): {reverse_lists_seen}"
    );
}
