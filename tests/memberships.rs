//! Memberships through the Rossum simulator over HTTP: one person across several orgs.

mod support;

use orgops::engine::Mode;
use orgops::engine::membership::{ROLE_CONFLICT, reconcile_member};
use orgops::simulator::kit::SimulatorHandle;
use orgops::vendors::{Endpoints, MemberDesired};
use support::*;

fn george(org: u64, role: &str, queues: &[&str]) -> MemberDesired {
    MemberDesired {
        org: org.to_string(),
        email: "george@acme.example".into(),
        first_name: Some("George".into()),
        last_name: Some("Smith".into()),
        roles: [role.to_string()].into(),
        scopes: Some(queues.iter().map(|q| q.to_string()).collect()),
    }
}

fn users_named(sim: &orgops::simulator::rossum::RossumSimulator, username: &str) -> usize {
    sim.all_objects("users")
        .iter()
        .filter(|u| u["username"] == username)
        .count()
}

fn memberships_of(sim: &orgops::simulator::rossum::RossumSimulator, org: u64) -> usize {
    sim.all_objects("memberships")
        .iter()
        .filter(|m| {
            m["organization"]
                .as_str()
                .is_some_and(|o| o.ends_with(&format!("/{org}")))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_in_two_orgs_is_one_user_plus_a_membership() {
    let sim = simulator("").await;
    let endpoints = Endpoints::default();
    let c = client(&sim, &endpoints);
    let template = sim.org_id("Template org").unwrap();
    let (de, fr) = sim.with_db(|db| {
        (
            db.create_org(1, "DE", serde_json::json!({}), None).unwrap(),
            db.create_org(1, "FR", serde_json::json!({}), None).unwrap(),
        )
    });
    let _ = template;

    // George exists nowhere: a user in DE with the role.
    let r = reconcile_member(c.as_ref(), &george(de, "admin", &[]), Mode::Apply).await;
    assert!(r.ready, "{}: {}", r.ready_reason(), r.ready_message());
    assert!(r.changed);
    assert!(r.external_id.as_deref().unwrap().starts_with("user/"));
    assert_eq!(users_named(&sim, "george@acme.example"), 1);

    // Again: nothing to do.
    let again = reconcile_member(c.as_ref(), &george(de, "admin", &[]), Mode::Apply).await;
    assert!(again.ready && !again.changed);

    // George in FR: a membership, not a second user (username is global).
    let r = reconcile_member(c.as_ref(), &george(fr, "admin", &[]), Mode::Apply).await;
    assert!(r.ready, "{}: {}", r.ready_reason(), r.ready_message());
    assert!(r.external_id.as_deref().unwrap().starts_with("membership/"));
    assert_eq!(users_named(&sim, "george@acme.example"), 1);
    assert_eq!(memberships_of(&sim, fr), 1);

    // Another role in FR cannot be expressed: reported, and George's role is left alone.
    let r = reconcile_member(c.as_ref(), &george(fr, "annotator", &[]), Mode::Apply).await;
    assert!(!r.ready);
    assert_eq!(r.ready_reason(), "RoleConflict");
    assert!(
        r.conditions
            .iter()
            .any(|c| c.type_ == ROLE_CONFLICT && c.status)
    );
    let still_admin = reconcile_member(c.as_ref(), &george(de, "admin", &[]), Mode::Apply).await;
    assert!(
        still_admin.ready && !still_admin.changed,
        "the role must not flip"
    );

    // In his primary org the role is his to change.
    let r = reconcile_member(c.as_ref(), &george(de, "manager", &[]), Mode::Apply).await;
    assert!(r.ready && r.changed);

    // Drift by hand: the membership removed at the vendor is restored.
    for m in sim.all_objects("memberships") {
        sim.delete_object("memberships", &m["id"].to_string())
            .unwrap();
    }
    let r = reconcile_member(c.as_ref(), &george(fr, "manager", &[]), Mode::Apply).await;
    assert!(r.ready && r.changed);
    assert_eq!(memberships_of(&sim, fr), 1);

    // Removing FR access removes only that.
    let members = c.members().unwrap();
    let observed = members
        .observe_member(&george(fr, "manager", &[]))
        .await
        .unwrap();
    members
        .remove_member(&fr.to_string(), &observed)
        .await
        .unwrap();
    assert_eq!(memberships_of(&sim, fr), 0);
    let de_access = members
        .observe_member(&george(de, "manager", &[]))
        .await
        .unwrap();
    assert_eq!(de_access.presence, orgops::vendors::Presence::Active);
    assert!(
        de_access
            .id
            .as_deref()
            .is_some_and(|i| i.starts_with("user/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_set_by_name_and_unknown_roles_and_queues_are_clear_errors() {
    let sim = simulator("").await;
    let endpoints = Endpoints::default();
    let c = client(&sim, &endpoints);
    let template = sim.org_id("Template org").unwrap();
    let r = reconcile_member(
        c.as_ref(),
        &george(template, "annotator", &["AP Invoices DE", "AP Invoices FR"]),
        Mode::Apply,
    )
    .await;
    assert!(r.ready, "{}", r.ready_message());
    let user = sim
        .all_objects("users")
        .into_iter()
        .find(|u| u["username"] == "george@acme.example")
        .unwrap();
    assert_eq!(user["queues"].as_array().unwrap().len(), 2);

    let bad_role =
        reconcile_member(c.as_ref(), &george(template, "overlord", &[]), Mode::Apply).await;
    assert_eq!(bad_role.ready_reason(), "InvalidSpec");
    assert!(bad_role.ready_message().contains("annotator"));
    let mut other = george(template, "viewer", &["No such queue"]);
    other.email = "vera@acme.example".into();
    let bad_queue = reconcile_member(c.as_ref(), &other, Mode::Apply).await;
    assert!(!bad_queue.ready);
    assert!(
        bad_queue.ready_message().contains("No such queue"),
        "{}",
        bad_queue.ready_message()
    );
    assert_eq!(users_named(&sim, "vera@acme.example"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_make_a_second_user_or_membership() {
    let sim = simulator("5xx=0.05,429=0.04,reset=0.04,drop=0.1,seed=11").await;
    let endpoints = Endpoints::default();
    let c = client(&sim, &endpoints);
    let (de, fr) = sim.with_db(|db| {
        (
            db.create_org(1, "DE", serde_json::json!({}), None).unwrap(),
            db.create_org(1, "FR", serde_json::json!({}), None).unwrap(),
        )
    });
    for org in [de, fr, de, fr] {
        let mut ok = false;
        for _ in 0..10 {
            let r = reconcile_member(c.as_ref(), &george(org, "admin", &[]), Mode::Apply).await;
            if r.ready {
                ok = true;
                break;
            }
            assert!(r.transient, "{}: {}", r.ready_reason(), r.ready_message());
        }
        assert!(ok, "not Ready under faults");
    }
    assert!(
        sim.running
            .stats
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    assert_eq!(users_named(&sim, "george@acme.example"), 1);
    assert_eq!(memberships_of(&sim, fr), 1);
    assert_eq!(memberships_of(&sim, de), 0);
}
