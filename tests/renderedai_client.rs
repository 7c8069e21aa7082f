//! The Rendered.ai client end to end against the Rendered.ai simulator (which anatools drives
//! unchanged), through the engine: the seeded target org adopted by name, its name, rules and
//! legacy limits kept in sync (and a condition where the server no longer serves limits), the
//! template's volumes, workspaces, graphs and workspace rules copied with volumes remapped and
//! channels shared, nothing written once settled, no duplicate after a lost create answer or
//! under faults; members invited, accepted, changed and removed; password sessions renewed
//! before they expire; hostile answers bounded and never echoing a credential.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use orgops::api::Vendor;
use orgops::api::conditions::types;
use orgops::engine::membership::{MemberPlan, plan_member, reconcile_member};
use orgops::engine::{DesiredOrg, Mode, Requeue, TemplateSelector, TemplateSpec};
use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::renderedai::seed::{
    ANALYST_EMAIL, TARGET_ORG_NAME, TEMPLATE_ORG_NAME, TEMPLATE_RULES, VOLUME_FILES, file_bytes,
};
use orgops::simulator::renderedai::{Options, RenderedAiSimulator};
use orgops::vendors::renderedai::RenderedAiClient;
use orgops::vendors::renderedai::models::volume_file_ref;
use orgops::vendors::renderedai::vendor::{
    CAPABILITIES, GRAPHS, VOLUME_DATA, VOLUMES, WORKSPACE_RULES, WORKSPACES,
};
use orgops::vendors::{
    Credentials, Endpoints, HttpConfig, MemberDesired, Owner, Presence, VendorClient, VendorError,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use support::{MemorySink, reconcile, reconcile_until_ready};

async fn start(options: Options) -> RenderedAiSimulator {
    RenderedAiSimulator::start(
        0,
        Options {
            id_seed: Some(7),
            ..options
        },
    )
    .await
    .expect("simulator starts")
}

fn fast() -> HttpConfig {
    HttpConfig {
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(10),
        rate_per_second: 1000,
        ..HttpConfig::default()
    }
}

fn secret(values: &[(&str, &str)]) -> Credentials {
    Credentials::new(
        "tenants/rai",
        values
            .iter()
            .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
            .collect(),
    )
}

fn key_client(url: &str, key: &str) -> RenderedAiClient {
    RenderedAiClient::new(
        Some(url),
        secret(&[("apiKey", key)]),
        fast(),
        &Endpoints::default(),
    )
    .unwrap()
}

fn admin(sim: &RenderedAiSimulator) -> RenderedAiClient {
    key_client(&sim.graphql_url, &sim.api_key)
}

fn desired(external_id: Option<&str>, name: &str, settings: Value) -> DesiredOrg {
    DesiredOrg {
        owner: Owner {
            key: "tenants/target".into(),
            uid: None,
        },
        generation: Some(1),
        vendor: Vendor::RenderedAi,
        display_name: name.into(),
        external_id: external_id.map(str::to_string),
        template: Some(TemplateSpec {
            selector: TemplateSelector::Name(TEMPLATE_ORG_NAME.into()),
            include: None,
            secrets: Default::default(),
            prune: false,
        }),
        settings,
        mode: Mode::Apply,
        sync_interval: Duration::from_secs(600),
    }
}

fn condition<'a>(
    report: &'a orgops::engine::OrgReport,
    type_: &str,
) -> &'a orgops::api::conditions::ConditionSpec {
    report
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", report.conditions))
}

fn names(objects: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = objects
        .iter()
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

fn ids(objects: &[Value]) -> HashSet<String> {
    objects
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_string))
        .collect()
}

/// Objects the simulator created, changed or deleted through the API, over every kind.
fn changes(sim: &RenderedAiSimulator) -> u64 {
    sim.kinds()
        .into_iter()
        .filter_map(|k| sim.writes(k))
        .map(|w| w.creates + w.updates + w.deletes)
        .sum()
}

/// Every volume id a graph's JSON references as `"<volumeId>:/path"`.
fn volume_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(r) = volume_file_ref(s) {
                out.push(s[r].to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| volume_refs(i, out)),
        Value::Object(m) => m.values().for_each(|i| volume_refs(i, out)),
        _ => {}
    }
}

/// The target holds exactly one copy of every template object of every kind, references
/// pointing into the target (volumes) or kept (channels, shared volumes).
async fn assert_copied(client: &RenderedAiClient, template: &str, target: &str) {
    let own = |objects: Vec<Value>| -> Vec<Value> {
        objects
            .into_iter()
            .filter(|v| v["shared"] != true)
            .collect()
    };
    let t_vol = own(client.list_objects(template, &VOLUMES).await.unwrap());
    let n_vol = own(client.list_objects(target, &VOLUMES).await.unwrap());
    assert!(!t_vol.is_empty());
    assert_eq!(names(&t_vol), names(&n_vol), "volumes");
    let target_volumes = ids(&n_vol);
    let template_volumes = ids(&t_vol);

    let t_ws = client.list_objects(template, &WORKSPACES).await.unwrap();
    let n_ws: Vec<Value> = client
        .list_objects(target, &WORKSPACES)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| {
            w["tags"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|t| t.as_str().is_some_and(|t| t.starts_with("orgops:")))
            })
        })
        .collect();
    assert_eq!(names(&t_ws), names(&n_ws), "workspaces");
    for w in &t_ws {
        let copy = n_ws.iter().find(|c| c["name"] == w["name"]).unwrap();
        assert_eq!(
            copy["channelIds"], w["channelIds"],
            "channels are shared: {copy}"
        );
        assert!(!copy["channelIds"].as_array().unwrap().is_empty());
        assert_eq!(copy["description"], w["description"]);
        assert_eq!(copy["objective"], w["objective"]);
        assert_eq!(
            copy["volumeIds"].as_array().unwrap().len(),
            w["volumeIds"].as_array().unwrap().len()
        );
        for v in copy["volumeIds"].as_array().unwrap() {
            assert!(target_volumes.contains(v.as_str().unwrap()), "{copy}");
        }
    }
    let copied_ws = ids(&n_ws);

    let t_graphs = client.list_objects(template, &GRAPHS).await.unwrap();
    let n_graphs: Vec<Value> = client
        .list_objects(target, &GRAPHS)
        .await
        .unwrap()
        .into_iter()
        .filter(|g| copied_ws.contains(g["workspaceId"].as_str().unwrap()))
        .collect();
    assert!(!t_graphs.is_empty());
    assert_eq!(names(&t_graphs), names(&n_graphs), "graphs");
    for g in &n_graphs {
        let mut refs = Vec::new();
        volume_refs(&g["graph"], &mut refs);
        assert!(!refs.is_empty(), "{g}");
        for r in refs {
            assert!(target_volumes.contains(&r), "graph {} uses {r}", g["name"]);
            assert!(!template_volumes.contains(&r));
        }
        let source = t_graphs.iter().find(|s| s["name"] == g["name"]).unwrap();
        assert_eq!(g["channelId"], source["channelId"]);
    }

    let t_rules = client
        .list_objects(template, &WORKSPACE_RULES)
        .await
        .unwrap();
    let n_rules = client.list_objects(target, &WORKSPACE_RULES).await.unwrap();
    for w in &t_ws {
        let copy = n_ws.iter().find(|c| c["name"] == w["name"]).unwrap();
        let want = t_rules
            .iter()
            .find(|r| r["workspaceId"] == w["id"])
            .unwrap();
        let have = n_rules
            .iter()
            .find(|r| r["workspaceId"] == copy["id"])
            .unwrap();
        assert_eq!(have["rules"], want["rules"], "rules of {}", w["name"]);
    }
}

/// Adopted by name (nothing created), name/rules/limits set, the template copied; a second
/// reconcile writes nothing; a rename goes through `editOrganization`.
#[tokio::test]
async fn the_target_is_adopted_set_up_like_the_template_and_then_left_alone() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let sink = MemorySink::default();
    let settings =
        json!({"rules": "Be kind to the GPUs.", "limits": {"Workspaces": 7, "Members": 3}});
    let want = desired(None, TARGET_ORG_NAME, settings.clone());
    let report = reconcile_until_ready(&client, &want, &sink, 4).await;
    assert_eq!(
        report.external_id.as_deref(),
        Some(sim.target_org_id.as_str())
    );
    assert_eq!(sim.writes("organizations").map(|w| w.creates), Some(0));
    let org = client.get_org(&sim.target_org_id).await.unwrap().unwrap();
    assert_eq!(org.raw["rules"], "Be kind to the GPUs.");
    assert_eq!(org.raw["limits"]["Workspaces"], 7);
    assert_eq!(org.raw["limits"]["Members"], 3);
    let usage = org.usage.unwrap();
    assert_eq!(usage["limitsServed"], true);
    assert!(
        usage["limits"]["Workspaces"]["usage"].is_number(),
        "{usage}"
    );
    // The template's own rules were not copied over the setting.
    assert_ne!(org.raw["rules"], TEMPLATE_RULES);
    assert_copied(&client, &sim.template_org_id, &sim.target_org_id).await;

    // Nothing to do the second time: no write request, no object changed, no mutation sent.
    let writes = changes(&sim);
    let write_requests = sim.total_writes();
    let mutations = client.api().mutations();
    let again = reconcile(&client, &want, &sink).await;
    assert!(
        again.ready,
        "{} {}",
        again.ready_reason(),
        again.ready_message()
    );
    assert_eq!(changes(&sim), writes, "a settled org was written again");
    assert_eq!(sim.total_writes(), write_requests);
    assert_eq!(client.api().mutations(), mutations);
    assert!(!again.settings_updated);
    assert!(again.usage.is_some());
    assert_eq!(client.api().refusals(), 0);

    // A rename, now adopted by id.
    let renamed = desired(Some(&sim.target_org_id), "Target Renamed", settings);
    let r = reconcile_until_ready(&client, &renamed, &sink, 2).await;
    assert!(r.settings_updated);
    assert_eq!(
        client
            .get_org(&sim.target_org_id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Target Renamed"
    );
    // Drift made by hand is repaired.
    client
        .api()
        .set_organization_limit(&sim.target_org_id, "Workspaces", 2)
        .await
        .unwrap();
    reconcile_until_ready(&client, &renamed, &sink, 2).await;
    assert_eq!(
        client
            .get_org(&sim.target_org_id)
            .await
            .unwrap()
            .unwrap()
            .raw["limits"]["Workspaces"],
        7
    );
}

/// A server without the legacy limits: a SettingsSynced condition on the setting that waits
/// for a change (no backoff loop), the other settings and the copy still done; without a
/// limits setting the org is Ready and status says limits are not served.
#[tokio::test]
async fn limits_a_server_no_longer_serves_are_a_condition_not_a_loop() {
    let sim = start(Options {
        serve_limits: false,
        ..Options::default()
    })
    .await;
    let client = admin(&sim);
    let sink = MemorySink::default();
    let want = desired(
        Some(&sim.target_org_id),
        TARGET_ORG_NAME,
        json!({"rules": "r1", "limits": {"Workspaces": 7}}),
    );
    let mut report = reconcile(&client, &want, &sink).await;
    for _ in 0..3 {
        if report.copy.as_ref().is_some_and(|c| c.failures.is_empty()) {
            break;
        }
        report = reconcile(&client, &want, &sink).await;
    }
    let settings = condition(&report, types::SETTINGS_SYNCED);
    assert!(!settings.status);
    assert_eq!(settings.reason, "Unsupported");
    assert!(
        settings.message.contains("spec.settings.renderedai.limits"),
        "{}",
        settings.message
    );
    assert_eq!(report.requeue, Requeue::OnChange, "no retry loop");
    assert!(condition(&report, types::TEMPLATE_COPIED).status);
    assert_eq!(report.usage.as_ref().unwrap()["limitsServed"], false);
    let org = client.get_org(&sim.target_org_id).await.unwrap().unwrap();
    assert_eq!(org.raw["rules"], "r1", "the other settings were applied");
    assert_copied(&client, &sim.template_org_id, &sim.target_org_id).await;

    let plain = desired(
        Some(&sim.target_org_id),
        TARGET_ORG_NAME,
        json!({"rules": "r1"}),
    );
    let r = reconcile_until_ready(&client, &plain, &sink, 2).await;
    assert_eq!(r.usage.as_ref().unwrap()["limitsServed"], false);
}

/// A proxy in front of the simulator that lets the simulator carry out the first request of
/// each named operation and then loses its answer (502), as a gateway timing out would.
async fn lossy_proxy(upstream: String, lose: &[&str]) -> (String, Arc<Mutex<BTreeSet<String>>>) {
    let pending: Arc<Mutex<BTreeSet<String>>> =
        Arc::new(Mutex::new(lose.iter().map(|s| s.to_string()).collect()));
    let lost = Arc::new(Mutex::new(BTreeSet::new()));
    let (p, l) = (pending.clone(), lost.clone());
    let http = reqwest::Client::new();
    let app = Router::new().fallback(any(move |headers: HeaderMap, body: Bytes| {
        let (p, l, http, upstream) = (p.clone(), l.clone(), http.clone(), upstream.clone());
        async move {
            let op = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["operationName"].as_str().map(str::to_string))
                .unwrap_or_default();
            let mut req = http.post(&upstream).body(body.to_vec());
            for (k, v) in &headers {
                if k != "host" && k != "content-length" {
                    req = req.header(k, v);
                }
            }
            let answer = req.send().await.unwrap();
            let status = answer.status().as_u16();
            let text = answer.bytes().await.unwrap();
            if p.lock().unwrap().remove(&op) {
                l.lock().unwrap().insert(op);
                return (StatusCode::BAD_GATEWAY, "upstream timed out").into_response();
            }
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                text,
            )
                .into_response()
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/graphql"), lost)
}

/// Creates whose answers are lost are found again by their tags: one copy of each object.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_made_twice() {
    let sim = start(Options::default()).await;
    let (url, lost) = lossy_proxy(
        sim.graphql_url.clone(),
        &["createVolume", "createWorkspace", "createGraph"],
    )
    .await;
    let client = key_client(&url, &sim.api_key);
    let sink = MemorySink::default();
    let want = desired(Some(&sim.target_org_id), TARGET_ORG_NAME, Value::Null);
    // The engine observes again after each lost answer (in this reconcile or the next).
    let report = reconcile_until_ready(&client, &want, &sink, 5).await;
    assert!(report.ready);
    assert_eq!(
        lost.lock().unwrap().len(),
        3,
        "every lost answer was exercised"
    );
    let direct = admin(&sim);
    assert_copied(&direct, &sim.template_org_id, &sim.target_org_id).await;
    // Exactly one copy per template object (names are unique in the seed).
    for kind in [&VOLUMES, &WORKSPACES, &GRAPHS] {
        let all = direct.list_objects(&sim.target_org_id, kind).await.unwrap();
        let copies: Vec<&Value> = all
            .iter()
            .filter(|o| o["tags"].to_string().contains("orgops:"))
            .collect();
        let mut seen = BTreeSet::new();
        for c in &copies {
            let marker = c["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t.as_str().unwrap().starts_with("orgops:"))
                .unwrap()
                .clone();
            assert!(
                seen.insert(marker.to_string()),
                "{}: duplicate {c}",
                kind.name
            );
        }
    }
}

/// Transport faults (server errors, throttling, resets, lost answers): the copy settles with
/// one copy of everything and the template is untouched.
#[tokio::test]
async fn faults_make_no_duplicates() {
    for seed in [1u64, 2, 3] {
        let sim = start(Options::default()).await;
        let client = admin(&sim);
        let sink = MemorySink::default();
        let want = desired(
            Some(&sim.target_org_id),
            TARGET_ORG_NAME,
            json!({"rules": "x"}),
        );
        let mut before = Vec::new();
        for kind in CAPABILITIES.kinds {
            before.push(
                client
                    .list_objects(&sim.template_org_id, kind)
                    .await
                    .unwrap()
                    .len(),
            );
        }
        sim.set_faults(
            orgops::simulator::FaultSpec::parse(&format!(
                "5xx=0.04,429=0.03,reset=0.03,drop=0.06,seed={seed}"
            ))
            .unwrap(),
        );
        let mut ready = false;
        for _ in 0..15 {
            if reconcile(&client, &want, &sink).await.ready {
                ready = true;
                break;
            }
        }
        sim.set_faults(orgops::simulator::FaultSpec::none());
        if !ready {
            let r = reconcile(&client, &want, &sink).await;
            assert!(
                r.ready,
                "seed {seed}: {} {}",
                r.ready_reason(),
                r.ready_message()
            );
        }
        for (n, kind) in CAPABILITIES.kinds.iter().enumerate() {
            let from = client
                .list_objects(&sim.template_org_id, kind)
                .await
                .unwrap();
            assert_eq!(
                from.len(),
                before[n],
                "seed {seed}: the template's {} changed",
                kind.name
            );
        }
        assert_copied(&client, &sim.template_org_id, &sim.target_org_id).await;
    }
}

/// An unknown e-mail is invited (Invited until accepted, nothing sent again meanwhile), its
/// role changed while invited, accepted, changed again as a member, and removed; a person with
/// an account becomes a member at once.
#[tokio::test]
async fn a_member_is_invited_accepted_changed_and_removed() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let org = sim.target_org_id.clone();
    let mut person = MemberDesired {
        org: org.clone(),
        email: "Newbie@orgops.example".into(),
        first_name: None,
        last_name: None,
        roles: ["member".to_string()].into(),
        scopes: Default::default(),
    };
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert_eq!(r.ready_reason(), "Invited", "{}", r.ready_message());
    let writes = sim.total_writes();
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert_eq!(r.ready_reason(), "Invited");
    assert_eq!(
        sim.total_writes(),
        writes,
        "an open invitation is not sent again"
    );

    // A role change while invited: the invitation now carries the new role.
    person.roles = ["admin".to_string()].into();
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert_eq!(r.ready_reason(), "Invited", "{}", r.ready_message());
    let members = client.members().unwrap();
    let seen = members.observe_member(&person).await.unwrap();
    assert_eq!(seen.presence, Presence::Invited);
    assert_eq!(seen.roles, ["admin".to_string()].into());

    sim.accept_invitation(&org, "newbie@orgops.example")
        .unwrap();
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    let seen = members.observe_member(&person).await.unwrap();
    assert_eq!(seen.presence, Presence::Active);
    assert_eq!(seen.roles, ["admin".to_string()].into());

    person.roles = ["member".to_string()].into();
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    let seen = members.observe_member(&person).await.unwrap();
    assert_eq!(seen.roles, ["member".to_string()].into());
    let writes = sim.total_writes();
    assert!(reconcile_member(&client, &person, Mode::Apply).await.ready);
    assert_eq!(sim.total_writes(), writes);

    // Two roles, or a role Rendered.ai does not have: refused, nothing sent.
    person.roles = ["owner".to_string()].into();
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(!r.ready);
    assert_eq!(sim.total_writes(), writes);

    members.remove_member(&org, &seen).await.unwrap();
    let gone = members.observe_member(&person).await.unwrap();
    assert!(!gone.holds_access(), "{gone:?}");
    members.remove_member(&org, &gone).await.unwrap();

    // An invitation is revoked by removal too.
    let invited = MemberDesired {
        email: "later@orgops.example".into(),
        roles: ["member".to_string()].into(),
        ..person.clone()
    };
    assert_eq!(
        reconcile_member(&client, &invited, Mode::Apply)
            .await
            .ready_reason(),
        "Invited"
    );
    let inv = members.observe_member(&invited).await.unwrap();
    members.remove_member(&org, &inv).await.unwrap();
    assert!(
        !members
            .observe_member(&invited)
            .await
            .unwrap()
            .holds_access()
    );

    // Someone with an account is a member at once.
    let known = MemberDesired {
        email: ANALYST_EMAIL.into(),
        roles: ["member".to_string()].into(),
        ..person
    };
    let r = reconcile_member(&client, &known, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
}

/// Sessions that live three seconds: the client signs in again before each expires, and the
/// server never refuses a call.
#[tokio::test]
async fn password_sessions_are_renewed_before_they_expire() {
    let sim = start(Options {
        token_lifetime: Some(Duration::from_secs(3)),
        ..Options::default()
    })
    .await;
    let client = RenderedAiClient::new(
        Some(&sim.graphql_url),
        secret(&[
            ("email", &sim.admin_email),
            ("password", &sim.admin_password),
        ]),
        fast(),
        &Endpoints::default(),
    )
    .unwrap();
    client.verify_credentials().await.unwrap();
    for _ in 0..5 {
        assert!(client.get_org(&sim.target_org_id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    assert_eq!(
        client.api().refusals(),
        0,
        "a call went out with an expired session"
    );
    assert!(
        client.api().sign_ins() >= 2,
        "renewed: {}",
        client.api().sign_ins()
    );
    let account = client.describe_account().await.unwrap();
    assert_eq!(account.details["user"], sim.admin_email);

    // A session ended by the server is renewed once and the call still answers.
    sim.expire_sessions();
    assert!(client.get_org(&sim.target_org_id).await.unwrap().is_some());

    // A wrong password names the Secret and never shows the password.
    let wrong = RenderedAiClient::new(
        Some(&sim.graphql_url),
        secret(&[
            ("email", &sim.admin_email),
            ("password", "wrong-password-42"),
        ]),
        fast(),
        &Endpoints::default(),
    )
    .unwrap();
    let e = wrong.verify_credentials().await.unwrap_err();
    assert_eq!(e.category(), "CredentialsInvalid", "{e}");
    assert!(e.to_string().contains("tenants/rai"), "{e}");
    assert!(!e.to_string().contains("wrong-password-42"), "{e}");
}

/// Organizations come from sign-up: asked to create one, orgops says how to get one.
#[tokio::test]
async fn organizations_are_adopted_never_created() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let sink = MemorySink::default();
    let mut want = desired(None, "No Such Org", Value::Null);
    want.template = None;
    let r = reconcile(&client, &want, &sink).await;
    assert!(!r.ready);
    let msg = r.ready_message();
    assert!(
        msg.contains("sign-up") || msg.contains("externalId"),
        "{msg}"
    );
    assert_eq!(sim.total_writes(), 0);
    assert_eq!(client.get_org("not-an-org").await.unwrap(), None);
    let found = client.find_orgs(Some(TARGET_ORG_NAME)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, sim.target_org_id);
    assert!(matches!(
        client
            .create_org(&orgops::vendors::OrgDesired {
                owner: Owner {
                    key: "a/b".into(),
                    uid: None
                },
                display_name: "x".into(),
                settings: Value::Null,
            })
            .await,
        Err(VendorError::Unsupported { .. })
    ));
}

/// A scripted hostile server: errors echoing the key, a cursor that never moves, answers of
/// the wrong shape. Nothing panics or hangs, and the key never appears in an error.
#[tokio::test]
async fn hostile_answers_are_errors_that_never_echo_the_key() {
    const KEY: &str = "hostile-test-key-5f4e3d";
    let script: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let s = script.clone();
    let app = Router::new().fallback(any(move || {
        let s = s.clone();
        async move {
            let answer = {
                let mut s = s.lock().unwrap();
                if s.is_empty() {
                    json!({"data": null})
                } else {
                    s.remove(0)
                }
            };
            axum::Json(answer)
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = key_client(&format!("http://{addr}/graphql"), KEY);
    let push = |v: Value| script.lock().unwrap().push(v);

    push(json!({"errors": [{
        "message": format!("Unauthorized: key {KEY} unknown"),
        "extensions": {"code": "UNAUTHENTICATED"},
    }]}));
    let e = client.verify_credentials().await.unwrap_err();
    assert_eq!(e.category(), "CredentialsInvalid");
    assert!(!e.to_string().contains(KEY), "{e}");

    // A full page whose cursor comes back: an error, not an endless loop.
    let page: Vec<Value> = (0..100)
        .map(|_| json!({"organizationId": "same", "name": "x"}))
        .collect();
    for _ in 0..3 {
        push(json!({"data": {"getOrganizations": page}}));
    }
    let e = client.find_orgs(None).await.unwrap_err();
    assert!(e.to_string().contains("second time"), "{e}");
    script.lock().unwrap().clear();

    // Rows of the wrong shape are dropped; a list that is not a list is an error.
    push(
        json!({"data": {"getOrganizations": [1, "x", null, {"organizationId": "o", "name": {"x": 1}}]}}),
    );
    let orgs = client.find_orgs(None).await.unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].name, "");
    push(json!({"data": {"getOrganizations": "nope"}}));
    assert!(client.find_orgs(None).await.is_err());

    // A create answered with something that is not an id.
    push(json!({"data": {"createVolume": {"id": 1}}}));
    let e = client
        .create_object("o", &VOLUMES, json!({"name": "v", "tags": []}))
        .await
        .unwrap_err();
    assert_eq!(e.category(), "VendorRejected", "{e}");
    // A GraphQL error on a mutation is not repeated.
    let before = client.api().transport().stats().total();
    push(
        json!({"errors": [{"message": "The Workspaces limit has been reached by this organization"}]}),
    );
    let e = client
        .create_object("o", &WORKSPACES, json!({"name": "w", "tags": []}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("limit has been reached"), "{e}");
    assert!(!e.is_transient());
    assert_eq!(client.api().transport().stats().total(), before + 1);
}

/// A proxy in front of the simulator that records every request's `operationName` and
/// `variables`, for tests that count what a client sends.
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<Value>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let http = reqwest::Client::new();
    let app = Router::new().fallback(any(move |headers: HeaderMap, body: Bytes| {
        let (l, http, upstream) = (l.clone(), http.clone(), upstream.clone());
        async move {
            let sent = serde_json::from_slice::<Value>(&body).unwrap_or_default();
            l.lock().unwrap().push(json!({
                "op": sent["operationName"],
                "variables": sent["variables"],
            }));
            let mut req = http.post(&upstream).body(body.to_vec());
            for (k, v) in &headers {
                if k != "host" && k != "content-length" {
                    req = req.header(k, v);
                }
            }
            let answer = req.send().await.unwrap();
            let status = answer.status().as_u16();
            let text = answer.bytes().await.unwrap();
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                text,
            )
                .into_response()
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/graphql"), log)
}

/// Requests of a log that touch workspace guests: a member operation with `workspaceId`, or
/// the workspace listing that reading guest places starts with.
fn guest_requests(log: &Mutex<Vec<Value>>) -> Vec<Value> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| {
            r["variables"]
                .get("workspaceId")
                .is_some_and(|w| !w.is_null())
                && matches!(
                    r["op"].as_str(),
                    Some("getMembers" | "getInvitations" | "addMember" | "removeMember")
                )
                || r["op"] == "getWorkspaces"
        })
        .cloned()
        .collect()
}

/// The names of the workspaces of `org` that `email` is a guest of, read from the simulator.
fn guest_of(sim: &RenderedAiSimulator, org: &str, email: &str) -> BTreeSet<String> {
    sim.with_state(|st| {
        let ws: Vec<(String, String)> = st
            .store
            .in_org("workspaces", org)
            .into_iter()
            .map(|(id, r)| {
                (
                    id.to_string(),
                    r.value["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        st.store
            .in_org("members", org)
            .into_iter()
            .filter(|(_, r)| r.value["email"] == email && !r.value["workspaceId"].is_null())
            .filter_map(|(_, r)| {
                let w = r.value["workspaceId"].as_str()?;
                ws.iter().find(|(id, _)| id == w).map(|(_, n)| n.clone())
            })
            .collect()
    })
}

fn scopes(items: &[&str]) -> Option<BTreeSet<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

async fn add_workspace(client: &RenderedAiClient, org: &str, name: &str) -> String {
    client
        .api()
        .create_workspace(org, name, None, None, &[], &[], &[])
        .await
        .unwrap_or_else(|e| panic!("workspace {name}: {e}"))
}

/// Workspace guest places are a membership's scopes: given, changed, emptied, seen settled
/// (no drift, no change) and set again by a client that never saw the spec before (an
/// operator restart), refused for an unknown or
/// ambiguous workspace name without writing, and ended with the membership.
#[tokio::test]
async fn workspace_guests_are_scopes_given_changed_and_removed() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let org = sim.target_org_id.clone();
    add_workspace(&client, &org, "Blue").await;
    add_workspace(&client, &org, "Green").await;
    let mut person = MemberDesired {
        org: org.clone(),
        email: ANALYST_EMAIL.into(),
        first_name: None,
        last_name: None,
        roles: ["member".to_string()].into(),
        scopes: scopes(&["Default workspace", "Blue"]),
    };
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    assert_eq!(
        Some(guest_of(&sim, &org, ANALYST_EMAIL)),
        person.scopes,
        "guest places given"
    );
    let members = client.members().unwrap();
    let seen = members.observe_member(&person).await.unwrap();
    assert_eq!(Some(seen.scopes), person.scopes);
    let writes = sim.total_writes();
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready && !r.changed, "{}", r.ready_message());
    assert_eq!(sim.total_writes(), writes, "settled scopes wrote");

    person.scopes = scopes(&["Green"]);
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    assert_eq!(Some(guest_of(&sim, &org, ANALYST_EMAIL)), person.scopes);

    person.scopes = scopes(&[]);
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    assert!(guest_of(&sim, &org, ANALYST_EMAIL).is_empty(), "emptied");

    // After a restart (a new client, which remembers nothing): a settled membership with
    // scopes is observed as it is, so nothing is planned (no false drift, no change), and a
    // guest place left over is still emptied for `scopes: []`.
    person.scopes = scopes(&["Blue"]);
    assert!(reconcile_member(&client, &person, Mode::Apply).await.ready);
    let restarted = admin(&sim);
    let seen = restarted
        .members()
        .unwrap()
        .observe_member(&person)
        .await
        .unwrap();
    assert_eq!(Some(seen.scopes.clone()), person.scopes);
    assert_eq!(
        plan_member(&person, &seen),
        MemberPlan::default(),
        "a settled membership with scopes planned a change after a restart"
    );
    // A suspended Organization's membership (observe only) reports no drift either.
    let r = reconcile_member(&admin(&sim), &person, Mode::ObserveOnly).await;
    assert_eq!(r.ready_reason(), "Ready", "{}", r.ready_message());
    let writes = sim.total_writes();
    let r = reconcile_member(&admin(&sim), &person, Mode::Apply).await;
    assert!(r.ready && !r.changed, "{}", r.ready_message());
    assert_eq!(
        sim.total_writes(),
        writes,
        "settled scopes wrote after a restart"
    );
    person.scopes = scopes(&[]);
    let r = reconcile_member(&restarted, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    assert!(guest_of(&sim, &org, ANALYST_EMAIL).is_empty());

    // Unknown and ambiguous names: a clear failure, nothing written.
    let writes = sim.total_writes();
    person.scopes = scopes(&["Blue", "Purple"]);
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(!r.ready);
    assert_eq!(r.ready_reason(), "NotFound", "{}", r.ready_message());
    assert!(
        r.ready_message().contains("spec.scopes")
            && r.ready_message().contains(&org)
            && r.ready_message().contains("Purple"),
        "{}",
        r.ready_message()
    );
    assert_eq!(sim.total_writes(), writes, "an unknown workspace wrote");
    add_workspace(&client, &org, "Green").await;
    let writes = sim.total_writes();
    person.scopes = scopes(&["Green"]);
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert_eq!(r.ready_reason(), "VendorRejected", "{}", r.ready_message());
    assert!(
        r.ready_message().contains("2 workspaces"),
        "{}",
        r.ready_message()
    );
    assert_eq!(sim.total_writes(), writes, "an ambiguous workspace wrote");

    // Removal ends the guest places too.
    person.scopes = scopes(&["Blue"]);
    assert!(reconcile_member(&client, &person, Mode::Apply).await.ready);
    let seen = members.observe_member(&person).await.unwrap();
    members.remove_member(&org, &seen).await.unwrap();
    assert!(
        guest_of(&sim, &org, ANALYST_EMAIL).is_empty(),
        "guest places left"
    );
    let gone = members.observe_member(&person).await.unwrap();
    assert!(!gone.holds_access(), "{gone:?}");
}

/// Memberships without scopes send no guest request at all (added, settled, role changed),
/// on a server that serves guests.
#[tokio::test]
async fn memberships_without_scopes_send_no_guest_requests() {
    let sim = start(Options::default()).await;
    let (url, log) = recording_proxy(sim.graphql_url.clone()).await;
    let client = key_client(&url, &sim.api_key);
    let org = sim.target_org_id.clone();
    let mut person = MemberDesired {
        org: org.clone(),
        email: ANALYST_EMAIL.into(),
        first_name: None,
        last_name: None,
        roles: ["member".to_string()].into(),
        scopes: None,
    };
    for role in ["member", "member", "admin"] {
        person.roles = [role.to_string()].into();
        let r = reconcile_member(&client, &person, Mode::Apply).await;
        assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    }
    assert!(log.lock().unwrap().len() >= 3, "the proxy saw the requests");
    assert_eq!(guest_requests(&log), Vec::<Value>::new());
    // With scopes, the guest places are read (the recording counts them).
    person.scopes = scopes(&["Default workspace"]);
    assert!(reconcile_member(&client, &person, Mode::Apply).await.ready);
    assert!(!guest_requests(&log).is_empty());
    assert_eq!(
        guest_of(&sim, &org, ANALYST_EMAIL),
        person.scopes.clone().unwrap()
    );
}

/// A server that no longer serves workspace guests: a membership with scopes fails with a
/// clear `Unsupported` and writes nothing; one without scopes (or with none) is Ready, and
/// observing and removal work.
#[tokio::test]
async fn guests_not_served_fail_only_memberships_with_scopes() {
    let sim = start(Options {
        serve_workspace_guests: false,
        ..Options::default()
    })
    .await;
    let client = admin(&sim);
    let org = sim.target_org_id.clone();
    let mut person = MemberDesired {
        org: org.clone(),
        email: ANALYST_EMAIL.into(),
        first_name: None,
        last_name: None,
        roles: ["member".to_string()].into(),
        scopes: None,
    };
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    let writes = sim.total_writes();
    person.scopes = scopes(&["Default workspace"]);
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(!r.ready);
    assert_eq!(r.ready_reason(), "Unsupported", "{}", r.ready_message());
    assert!(
        r.ready_message()
            .contains("no longer serves workspace guests")
            && r.ready_message().contains("remove spec.scopes"),
        "{}",
        r.ready_message()
    );
    assert!(!r.transient, "no retry loop");
    assert_eq!(sim.total_writes(), writes);
    // The person's guest places (none) are observed without failing.
    let members = client.members().unwrap();
    let seen = members.observe_member(&person).await.unwrap();
    assert!(seen.scopes.is_empty(), "{:?}", seen.scopes);
    person.scopes = scopes(&[]);
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    person.scopes = None;
    let r = reconcile_member(&client, &person, Mode::Apply).await;
    assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
    let seen = members.observe_member(&person).await.unwrap();
    members.remove_member(&org, &seen).await.unwrap();
    assert!(
        !members
            .observe_member(&person)
            .await
            .unwrap()
            .holds_access()
    );
}

// ---- volume files (the opt-in kind `volume_data`) ----

/// `desired` with `include` naming kinds (`None`: the default kinds).
fn including(mut want: DesiredOrg, include: Option<&[&str]>) -> DesiredOrg {
    if let Some(t) = want.template.as_mut() {
        t.include = include.map(|i| i.iter().map(|k| k.to_string()).collect());
    }
    want
}

/// The template's volumes (seed order: Backgrounds, Vehicle models, Textures) and, for each,
/// its copy in the target (by marker tag), if any.
async fn volume_pairs(
    client: &RenderedAiClient,
    sim: &RenderedAiSimulator,
) -> Vec<(String, String, Option<String>)> {
    let template = client
        .list_objects(&sim.template_org_id, &VOLUMES)
        .await
        .unwrap();
    let target = client
        .list_objects(&sim.target_org_id, &VOLUMES)
        .await
        .unwrap();
    template
        .iter()
        .filter(|v| v["shared"] != true)
        .map(|v| {
            let id = v["id"].as_str().unwrap().to_string();
            let marker = format!("orgops:{}:volumes:{id}", sim.template_org_id);
            let copy = target
                .iter()
                .find(|c| c["tags"].to_string().contains(&marker))
                .map(|c| c["id"].as_str().unwrap().to_string());
            (v["name"].as_str().unwrap().to_string(), id, copy)
        })
        .collect()
}

/// The copy of seeded volume `index` (0 Backgrounds, 1 Vehicle models).
async fn copied_volume(
    client: &RenderedAiClient,
    sim: &RenderedAiSimulator,
    index: usize,
) -> String {
    let name = ["Backgrounds", "Vehicle models"][index];
    volume_pairs(client, sim)
        .await
        .into_iter()
        .find(|(n, _, _)| n == name)
        .and_then(|(_, _, copy)| copy)
        .unwrap_or_else(|| panic!("{name} has no copy"))
}

/// Not copied unless `include` names `volume_data`; then every file copied with identical
/// bytes; a re-apply writes nothing; a template file changed by hand is uploaded again (and
/// only that one).
#[tokio::test]
async fn volume_files_are_opt_in_copied_byte_for_byte_and_left_alone_once_settled() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let sink = MemorySink::default();
    let plain = desired(Some(&sim.target_org_id), TARGET_ORG_NAME, Value::Null);
    let report = reconcile_until_ready(&client, &plain, &sink, 4).await;
    assert!(
        !report
            .copy
            .as_ref()
            .unwrap()
            .kinds
            .contains_key("volume_data"),
        "volume_data is opt-in"
    );
    assert_eq!(sim.volume_uploads(), 0);
    assert_eq!(sim.writes("volume_data").unwrap().creates, 0);
    for (_, _, copy) in volume_pairs(&client, &sim).await {
        let copy = copy.expect("volumes are copied by default");
        assert!(
            client
                .api()
                .volume_files(&copy, 100)
                .await
                .unwrap()
                .is_empty(),
            "a copied volume holds no file without volume_data"
        );
    }

    let with_data = including(plain.clone(), Some(&["volume_data"]));
    let report = reconcile_until_ready(&client, &with_data, &sink, 4).await;
    let progress = &report.copy.as_ref().unwrap().kinds["volume_data"];
    assert_eq!(progress.total as usize, VOLUME_FILES.len());
    assert_eq!(progress.done, progress.total);
    assert_eq!(sim.volume_uploads() as usize, VOLUME_FILES.len());
    assert_eq!(
        sim.writes("volume_data").unwrap().creates as usize,
        VOLUME_FILES.len()
    );
    for (index, key, size) in VOLUME_FILES {
        let copy = copied_volume(&client, &sim, *index).await;
        let bytes = sim.volume_file(&copy, key).expect("copied");
        assert!(bytes == file_bytes(key, *size), "{key}: bytes differ");
    }
    // The multi-part file really went in several parts.
    assert!(VOLUME_FILES.iter().any(|(_, _, n)| *n > 64 << 10));
    let listed = client
        .list_objects(&sim.target_org_id, &VOLUME_DATA)
        .await
        .unwrap();
    assert_eq!(listed.len(), VOLUME_FILES.len(), "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|f| f["hash"].as_str().is_some_and(|h| h.len() == 32)),
        "{listed:?}"
    );

    // Settled: nothing written, nothing uploaded, no mutation.
    let (writes, requests, mutations, uploads) = (
        changes(&sim),
        sim.total_writes(),
        client.api().mutations(),
        sim.volume_uploads(),
    );
    let again = reconcile(&client, &with_data, &sink).await;
    assert!(again.ready, "{}", again.ready_message());
    assert_eq!(changes(&sim), writes);
    assert_eq!(sim.total_writes(), requests);
    assert_eq!(client.api().mutations(), mutations);
    assert_eq!(sim.volume_uploads(), uploads);

    // A template file changes: that one file is uploaded again.
    let template_backgrounds = volume_pairs(&client, &sim).await[0].1.clone();
    let (_, key, _) = VOLUME_FILES[0];
    sim.put_volume_file(&template_backgrounds, key, b"a new day")
        .unwrap();
    let r = reconcile_until_ready(&client, &with_data, &sink, 3).await;
    assert_eq!(r.copy.as_ref().unwrap().updated, 1);
    assert_eq!(sim.volume_uploads(), uploads + 1);
    assert_eq!(sim.writes("volume_data").unwrap().updates, 1);
    let copy = copied_volume(&client, &sim, 0).await;
    assert_eq!(sim.volume_file(&copy, key).unwrap(), b"a new day");
}

/// A finalizer whose answer was lost is recognised by listing the file: no second upload, no
/// duplicate.
#[tokio::test]
async fn a_lost_finalizer_answer_uploads_nothing_twice() {
    let sim = start(Options::default()).await;
    let (url, lost) = lossy_proxy(sim.graphql_url.clone(), &["uploadVolumeDataFinalizer"]).await;
    let client = key_client(&url, &sim.api_key);
    let sink = MemorySink::default();
    let want = including(
        desired(Some(&sim.target_org_id), TARGET_ORG_NAME, Value::Null),
        Some(&["volume_data"]),
    );
    reconcile_until_ready(&client, &want, &sink, 5).await;
    assert_eq!(
        lost.lock().unwrap().len(),
        1,
        "the lost answer was exercised"
    );
    assert_eq!(sim.volume_uploads() as usize, VOLUME_FILES.len());
    let w = sim.writes("volume_data").unwrap();
    assert_eq!(w.creates as usize, VOLUME_FILES.len());
    assert_eq!(w.updates, 0);
    let direct = admin(&sim);
    let files = direct
        .list_objects(&sim.target_org_id, &VOLUME_DATA)
        .await
        .unwrap();
    assert_eq!(files.len(), VOLUME_FILES.len());
}

/// Download and upload URLs a server hands out are vetted: an internal address is refused
/// before anything is uploaded, and the failure says why.
#[tokio::test]
async fn transfer_urls_to_internal_addresses_are_refused() {
    for base in ["https://169.254.169.254", "http://10.1.2.3:8080", "file://"] {
        let sim = start(Options::default()).await;
        sim.with_state(|st| st.files.base_url = base.to_string());
        let client = admin(&sim);
        let sink = MemorySink::default();
        let want = including(
            desired(Some(&sim.target_org_id), TARGET_ORG_NAME, Value::Null),
            Some(&["volume_data"]),
        );
        let report = reconcile(&client, &want, &sink).await;
        let copy = report.copy.as_ref().unwrap();
        assert!(!report.ready);
        assert_eq!(copy.kinds["volume_data"].done, 0);
        assert!(
            copy.failures
                .iter()
                .any(|f| f.contains("refused the download URL")),
            "{base}: {:?}",
            copy.failures
        );
        assert_eq!(sim.volume_uploads(), 0, "{base}: nothing uploaded");
        assert_eq!(sim.writes("volume_data").unwrap().creates, 0);
    }
}

/// A server that answers every request with `answer(n)` (n = requests so far), on a fresh port.
async fn scripted(answer: fn(usize) -> (StatusCode, Value)) -> (String, Arc<Mutex<usize>>) {
    let count = Arc::new(Mutex::new(0usize));
    let c = count.clone();
    let app = Router::new().fallback(any(move || {
        let c = c.clone();
        async move {
            let n = {
                let mut c = c.lock().unwrap();
                *c += 1;
                *c
            };
            let (status, body) = answer(n);
            (status, axum::Json(body))
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/graphql"), count)
}

#[tokio::test]
async fn endless_pages_of_directories_are_an_error_naming_the_volume() {
    // Every page is full of directory entries with ever larger keys: none is a file.
    let (url, count) = scripted(|n| {
        let page: Vec<Value> = (0..100)
            .map(|i| json!({"key": format!("d{:09}/", n * 100 + i)}))
            .collect();
        (StatusCode::OK, json!({"data": {"getVolumeData": page}}))
    })
    .await;
    let client = key_client(&url, "scripted-key-0123456789");
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        client.api().volume_files("vol-hostile", 10_000),
    )
    .await
    .expect("the listing stops")
    .unwrap_err();
    assert!(e.to_string().contains("vol-hostile"), "{e}");
    let sent = *count.lock().unwrap();
    assert!(sent <= 201, "{sent} pages requested");
}

fn password_client(url: &str, password: &str) -> RenderedAiClient {
    RenderedAiClient::new(
        Some(url),
        secret(&[("email", "admin@example.com"), ("password", password)]),
        fast(),
        &Endpoints::default(),
    )
    .unwrap()
}

const ECHOED_PASSWORD: &str = "Echoed-Passw0rd-straddling-the-cut";

#[tokio::test]
async fn a_password_echoed_in_any_error_never_shows() {
    // The echo starts 10 bytes before the 300-byte cut: blanking after the cut would leave
    // its first 10 bytes.
    fn echo(status: StatusCode) -> (StatusCode, Value) {
        let message = format!("{} {ECHOED_PASSWORD} tail", "x".repeat(289));
        (status, json!({"message": message}))
    }
    for answer in [
        (|_| echo(StatusCode::INTERNAL_SERVER_ERROR)) as fn(usize) -> (StatusCode, Value),
        |_| echo(StatusCode::UNPROCESSABLE_ENTITY),
        |_| {
            let message = format!("{} {ECHOED_PASSWORD} tail", "x".repeat(289));
            (StatusCode::OK, json!({"errors": [{"message": message}]}))
        },
    ] {
        let (url, count) = scripted(answer).await;
        let client = password_client(&url, ECHOED_PASSWORD);
        let e = client.verify_credentials().await.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(*count.lock().unwrap() >= 1);
        assert!(!text.contains(&ECHOED_PASSWORD[..8]), "{text}");
    }
}

#[tokio::test]
async fn a_create_refused_as_unauthenticated_after_sending_is_not_sent_again() {
    // signIn succeeds; every later call is a GraphQL "Unauthorized" (the workspace may have
    // been stored before it).
    let (url, count) = scripted(|n| {
        if n == 1 {
            let creds = json!({"uid": "u1", "idtoken": "token-0123456789", "expires": 3600});
            (StatusCode::OK, json!({"data": {"signIn": creds}}))
        } else {
            (
                StatusCode::OK,
                json!({"errors": [{"message": "Unauthorized"}]}),
            )
        }
    })
    .await;
    let client = password_client(&url, "scripted-password-1");
    let e = client
        .create_object("o", &WORKSPACES, json!({"name": "w", "tags": []}))
        .await
        .unwrap_err();
    assert_eq!(e.category(), "OutcomeUnknown", "{e}");
    assert_eq!(client.api().mutations(), 1, "the create is sent once");
    assert_eq!(*count.lock().unwrap(), 2, "signIn + one createWorkspace");

    // A permission message naming "unauthorized" is neither a refused credential nor resent.
    let (url, count) = scripted(|_| {
        let m = "User is unauthorized to access channel X";
        (StatusCode::OK, json!({"errors": [{"message": m}]}))
    })
    .await;
    let client = key_client(&url, "scripted-key-0123456789");
    let e = client
        .create_object("o", &WORKSPACES, json!({"name": "w", "tags": []}))
        .await
        .unwrap_err();
    assert_ne!(e.category(), "CredentialsInvalid", "{e}");
    assert_eq!(*count.lock().unwrap(), 1);
}

/// The marker tag of a copied volume is in the tenant's hands: retagged to name a volume the
/// named organization does not hold, or given a second marker, its files are refused, and
/// nothing is read from the volume it names nor uploaded.
#[tokio::test]
async fn a_retagged_volume_copies_nothing_from_the_volume_it_names() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let sink = MemorySink::default();
    let plain = desired(Some(&sim.target_org_id), TARGET_ORG_NAME, Value::Null);
    let with_data = including(plain, Some(&["volume_data"]));
    reconcile_until_ready(&client, &with_data, &sink, 4).await;
    let pairs = volume_pairs(&client, &sim).await;
    let copy = pairs[0].2.clone().unwrap();
    let other = pairs[1].1.clone();
    let (_, key, _) = VOLUME_FILES[0];
    let file = orgops::vendors::renderedai::volume_data::file_id(&copy, key);
    let legit = format!("orgops:{}:volumes:{}", sim.template_org_id, pairs[0].1);
    for tags in [
        // The organization named does not hold the volume named.
        vec![format!("orgops:{}:volumes:{other}", sim.target_org_id)],
        // A second marker next to the real one.
        vec![
            format!("orgops:{}:volumes:{other}", sim.template_org_id),
            legit,
        ],
    ] {
        client
            .update_object(&sim.target_org_id, &VOLUMES, &copy, json!({"tags": tags}))
            .await
            .unwrap();
        let uploads = sim.volume_uploads();
        let e = client
            .update_object(
                &sim.target_org_id,
                &VOLUME_DATA,
                &file,
                json!({"size": 1, "hash": "00000000000000000000000000000000"}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.category(), "VendorRejected", "{e}");
        assert!(e.to_string().contains(&copy), "{e}");
        assert_eq!(sim.volume_uploads(), uploads);
    }
}

/// Pruning deletes: a graph, a workspace (its graphs go with it), a volume and a volume file
/// are gone at the simulator after `delete_object`, and a second delete is still Ok; workspace
/// rules have no delete of their own.
#[tokio::test]
async fn copies_are_deleted_and_a_second_delete_is_ok() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let sink = MemorySink::default();
    let want = including(
        desired(Some(&sim.target_org_id), TARGET_ORG_NAME, Value::Null),
        Some(&["volumes", "workspaces", "graphs", "volume_data"]),
    );
    reconcile_until_ready(&client, &want, &sink, 4).await;
    let target = sim.target_org_id.clone();
    let marked = |objects: Vec<Value>| -> Vec<Value> {
        objects
            .into_iter()
            .filter(|o| o["tags"].to_string().contains("orgops:"))
            .collect()
    };
    let listed = |kind| {
        let client = &client;
        let target = &target;
        async move { client.list_objects(target, kind).await.unwrap() }
    };

    // A graph, found in its workspace first.
    let graphs = marked(listed(&GRAPHS).await);
    let graph = graphs[0]["id"].as_str().unwrap().to_string();
    let before = sim.writes("graphs").unwrap().deletes;
    client
        .delete_object(&target, &GRAPHS, &graph)
        .await
        .unwrap();
    assert_eq!(sim.writes("graphs").unwrap().deletes, before + 1);
    assert!(!ids(&listed(&GRAPHS).await).contains(&graph));
    let mutations = client.api().mutations();
    client
        .delete_object(&target, &GRAPHS, &graph)
        .await
        .unwrap();
    assert_eq!(
        client.api().mutations(),
        mutations,
        "a graph no workspace holds is not deleted again"
    );

    // A volume file.
    let files = listed(&VOLUME_DATA).await;
    let file = files[0]["id"].as_str().unwrap().to_string();
    client
        .delete_object(&target, &VOLUME_DATA, &file)
        .await
        .unwrap();
    assert!(!ids(&listed(&VOLUME_DATA).await).contains(&file));
    client
        .delete_object(&target, &VOLUME_DATA, &file)
        .await
        .unwrap();

    // A workspace, with its graphs.
    let workspaces = marked(listed(&WORKSPACES).await);
    let ws = workspaces[0]["id"].as_str().unwrap().to_string();
    client
        .delete_object(&target, &WORKSPACES, &ws)
        .await
        .unwrap();
    assert!(!ids(&listed(&WORKSPACES).await).contains(&ws));
    assert!(
        listed(&GRAPHS)
            .await
            .iter()
            .all(|g| g["workspaceId"] != ws.as_str()),
        "graphs outlived their workspace"
    );
    client
        .delete_object(&target, &WORKSPACES, &ws)
        .await
        .unwrap();

    // A volume.
    let volumes = marked(listed(&VOLUMES).await);
    let volume = volumes[0]["id"].as_str().unwrap().to_string();
    client
        .delete_object(&target, &VOLUMES, &volume)
        .await
        .unwrap();
    assert!(!ids(&listed(&VOLUMES).await).contains(&volume));
    assert!(
        sim.objects("volumes", &target)
            .unwrap()
            .iter()
            .all(|v| v["volumeId"] != volume.as_str())
    );
    client
        .delete_object(&target, &VOLUMES, &volume)
        .await
        .unwrap();

    // Rules go with their workspace.
    let rules = client
        .delete_object(&target, &WORKSPACE_RULES, &ws)
        .await
        .unwrap_err();
    assert_eq!(rules.category(), "Unsupported", "{rules}");
}

/// `spec.template.prune`: a copy whose template workspace is gone is deleted, and nothing else
/// is — not a workspace made by hand in the target, not without `prune`.
#[tokio::test]
async fn prune_deletes_only_marked_copies_whose_template_object_is_gone() {
    let sim = start(Options::default()).await;
    let client = admin(&sim);
    let sink = MemorySink::default();
    let mut want = desired(None, TARGET_ORG_NAME, Value::Null);
    let extra = add_workspace(&client, &sim.template_org_id, "Seasonal study").await;
    let by_hand = add_workspace(&client, &sim.target_org_id, "Made by hand").await;
    reconcile_until_ready(&client, &want, &sink, 4).await;
    let workspaces = &WORKSPACES;
    let target_names = |objects: Vec<Value>| names(&objects);
    let listed = client
        .list_objects(&sim.target_org_id, workspaces)
        .await
        .unwrap();
    assert!(target_names(listed).contains(&"Seasonal study".to_string()));

    client
        .delete_object(&sim.template_org_id, workspaces, &extra)
        .await
        .unwrap();
    // Without prune the copy stays.
    reconcile_until_ready(&client, &want, &sink, 2).await;
    let listed = client
        .list_objects(&sim.target_org_id, workspaces)
        .await
        .unwrap();
    assert!(target_names(listed).contains(&"Seasonal study".to_string()));

    want.template.as_mut().unwrap().prune = true;
    let report = reconcile_until_ready(&client, &want, &sink, 2).await;
    assert_eq!(report.copy.as_ref().unwrap().pruned, 1);
    let listed = client
        .list_objects(&sim.target_org_id, workspaces)
        .await
        .unwrap();
    let left = target_names(listed.clone());
    assert!(!left.contains(&"Seasonal study".to_string()), "{left:?}");
    assert!(
        ids(&listed).contains(&by_hand),
        "a hand-made workspace was pruned"
    );
    // Settled: a second pass prunes and writes nothing.
    let writes = changes(&sim);
    let again = reconcile(&client, &want, &sink).await;
    assert!(again.ready);
    assert_eq!(again.copy.as_ref().unwrap().pruned, 0);
    assert_eq!(changes(&sim), writes);
}
