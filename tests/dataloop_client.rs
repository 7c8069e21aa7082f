//! The Dataloop client on the wire, against a scripted loopback gate that answers the way the
//! real one does (design/vendors/dataloop.md): what it sends (paths, query strings, JSON and
//! form bodies, DQL bodies, the bearer JWT), how it pages (`pageOffset` + `hasNextPage`, DQL
//! `page`), how it reads errors (`{status, name, message}`), and how it keeps its token valid
//! (renewed before `exp`, never a request with an expired token); then end to end against the
//! Dataloop simulator (which dtlpy drives unchanged): the seeded target org adopted, the
//! template copied and left alone once settled, also under faults and lost responses; plan
//! refused without a superuser; a member invited, accepted, changed and removed.

mod support;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use base64::Engine as _;
use orgops::vendors::dataloop::vendor::{DRIVERS, INTEGRATIONS, ONTOLOGIES, PROJECTS, RECIPES};
use orgops::vendors::dataloop::{DataloopApi, DataloopClient};
use orgops::vendors::{
    Credentials, Endpoints, HttpConfig, MemberChange, MemberDesired, Presence, VendorClient,
    VendorError,
};
use secrecy::SecretString;
use serde_json::{Value, json};

const SECRET: &str = "tenants/dataloop-creds";
const ORG: &str = "8c8387a3-e771-4d2b-ad77-6a30294dbd01";
const PASSWORD: &str = "m2m-password-9f8e7d";

/// A request as the gate saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn line(&self) -> String {
        match &self.query {
            Some(q) => format!("{} {}?{q}", self.method, self.path),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

/// One scripted answer: status and body (JSON, or none).
struct Answer(u16, Option<Value>);

fn ok(v: Value) -> Answer {
    Answer(200, Some(v))
}

/// Dataloop's error body.
fn error(status: u16, message: &str) -> Answer {
    let name = StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap_or("Error");
    Answer(
        status,
        Some(json!({"status": status, "name": name, "message": message})),
    )
}

#[derive(Default)]
struct Gate {
    answers: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Seen>>,
    /// `POST /token?default` issues JWTs living this many seconds (else it is scripted).
    token_lifetime: Mutex<Option<i64>>,
    issued: AtomicUsize,
    /// Requests that came with an expired bearer (answered 401).
    expired: AtomicUsize,
}

impl Gate {
    fn push(&self, answers: impl IntoIterator<Item = Answer>) {
        self.answers.lock().unwrap().extend(answers);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn lines(&self) -> Vec<String> {
        self.seen().iter().map(Seen::line).collect()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    fn unanswered(&self) -> usize {
        self.answers.lock().unwrap().len()
    }
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWT as the gate issues them (dtlpy never checks the signature).
fn jwt(claims: Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({"alg": "HS256", "typ": "JWT"})),
        b64(&claims)
    )
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn exp_of(bearer: &str) -> Option<i64> {
    let token = bearer.strip_prefix("Bearer ")?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["exp"].as_i64()
}

async fn serve() -> (String, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let app = Router::new().fallback(any(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
                let seen = Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    query: uri.query().map(str::to_string),
                    authorization: header("authorization"),
                    content_type: header("content-type"),
                    body: String::from_utf8_lossy(&body).to_string(),
                };
                g.seen.lock().unwrap().push(seen.clone());
                let lifetime = *g.token_lifetime.lock().unwrap();
                let next = if seen.path == "/token"
                    && let Some(lifetime) = lifetime
                {
                    let n = g.issued.fetch_add(1, Ordering::SeqCst);
                    let token = jwt(json!({
                        "email": "bot@acme.example", "sub": "bot@acme.example",
                        "iat": now(), "exp": now() + lifetime, "n": n,
                    }));
                    ok(json!({"id_token": token, "access_token": "a", "refresh_token": "r"}))
                } else if seen
                    .authorization
                    .as_deref()
                    .and_then(exp_of)
                    .is_some_and(|exp| exp <= now())
                {
                    g.expired.fetch_add(1, Ordering::SeqCst);
                    error(401, "jwt expired")
                } else {
                    g.answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(Answer(200, Some(json!([]))))
                };
                let status = StatusCode::from_u16(next.0).unwrap();
                match next.1 {
                    Some(v) => (status, axum::Json(v)).into_response(),
                    None => status.into_response(),
                }
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/api/v1"), gate)
}

fn config() -> HttpConfig {
    HttpConfig {
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(5),
        rate_per_second: 1000,
        ..HttpConfig::default()
    }
}

fn creds(values: &[(&str, &str)]) -> Credentials {
    Credentials::new(
        SECRET,
        values
            .iter()
            .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
            .collect(),
    )
}

fn api_key() -> String {
    jwt(json!({"email": "owner@acme.example", "sub": "owner@acme.example", "exp": now() + 3600}))
}

fn client(base: &str, values: &[(&str, &str)]) -> DataloopClient {
    let api = DataloopApi::new(Some(base), creds(values), config(), &Endpoints::default())
        .unwrap()
        .with_cache_timeout(Duration::from_secs(5));
    DataloopClient::from_api(api)
}

async fn with_key() -> (DataloopClient, Arc<Gate>, String) {
    let (base, gate) = serve().await;
    let key = api_key();
    (client(&base, &[("apiKey", &key)]), gate, key)
}

fn org_json(name: &str, plan: &str) -> Value {
    json!({"id": ORG, "name": name, "plan": plan,
           "account": {"id": "acc-1", "name": "Acme's account", "owner": "owner@acme.example"},
           "members": [], "groups": [], "integrations": [], "owner": "owner@acme.example",
           "creator": "owner@acme.example", "createdAt": 1674222447224u64, "updatedAt": 1674222447257u64})
}

#[tokio::test]
async fn organizations_are_adopted_by_id_or_name_never_created() {
    let (c, gate, key) = with_key().await;
    // An API key is checked once with GET /users/me.
    gate.push([ok(
        json!({"id": "owner@acme.example", "email": "owner@acme.example"}),
    )]);
    c.verify_credentials().await.unwrap();
    c.verify_credentials().await.unwrap();
    assert_eq!(gate.lines(), ["GET /api/v1/users/me"]);
    assert_eq!(
        gate.seen()[0].authorization.as_deref(),
        Some(format!("Bearer {key}").as_str())
    );
    gate.clear();

    gate.push([
        ok(org_json("Acme", "freemium")),
        ok(json!({"state": "READY"})),
    ]);
    let org = c.get_org(ORG).await.unwrap().unwrap();
    assert_eq!(
        gate.lines(),
        [
            format!("GET /api/v1/orgs/{ORG}"),
            "POST /api/v1/services/fs-cache?mode=get".to_string()
        ]
    );
    assert_eq!(
        gate.seen()[1].json(),
        json!({"org": {"name": "Acme", "id": ORG}})
    );
    assert_eq!((org.id.as_str(), org.name.as_str()), (ORG, "Acme"));
    assert_eq!(
        org.owner, None,
        "Dataloop's owner is a person, not a marker"
    );
    assert_eq!(
        org.usage,
        Some(json!({"plan": "freemium", "account": {"id": "acc-1", "name": "Acme's account"}}))
    );
    assert_eq!(org.raw["cache"]["ready"], true);
    assert_eq!(org.created_at.unwrap().as_millisecond(), 1_674_222_447_224);

    // Unknown: absent at once (the 404 is not retried), and nothing more is asked.
    gate.clear();
    gate.push([error(404, "Org not found")]);
    assert_eq!(c.get_org("nope").await.unwrap(), None);
    assert_eq!(gate.lines(), ["GET /api/v1/orgs/nope"]);
    // Not an id at all: nothing is sent.
    gate.clear();
    assert_eq!(c.get_org("..").await.unwrap(), None);
    assert!(gate.seen().is_empty());

    gate.push([ok(json!([
        org_json("Acme", "premium"),
        {"id": "o2", "name": "Acme GmbH"},
        {"id": "o3", "name": "Acme"},
    ]))]);
    let named = c.find_orgs(Some("Acme")).await.unwrap();
    assert_eq!(
        named.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        [ORG, "o3"]
    );
    assert_eq!(gate.lines(), ["GET /api/v1/orgs"]);

    gate.clear();
    let err = c
        .create_org(&orgops::vendors::OrgDesired {
            owner: orgops::vendors::Owner {
                key: "t/acme".into(),
                uid: None,
            },
            display_name: "Acme".into(),
            settings: Value::Null,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, VendorError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("spec.externalId"), "{err}");
    assert!(gate.seen().is_empty());
}

#[tokio::test]
async fn name_cache_and_plan_are_set_and_a_403_on_plan_names_the_setting() {
    let (c, gate, _) = with_key().await;
    gate.push([
        ok(org_json("New", "freemium")), // PATCH /orgs/{id}
        ok(org_json("New", "freemium")), // GET /orgs/{id} (the name the cache body carries)
        ok(json!({"state": "PENDING"})), // apply-filestore
        ok(json!({"state": "PENDING"})), // get
        ok(json!({"state": "READY"})),   // get
        ok(json!({})),                   // fs-cache apply
        Answer(204, None),               // cache apply
        error(403, "Only superuser can update plan"),
    ]);
    let patch = json!({"name": "New", "plan": "premium",
                       "cache": {"enabled": true, "podType": "medium"}});
    let err = c.patch_org(ORG, patch).await.unwrap_err();
    let cache_path = "POST /api/v1/services/fs-cache";
    assert_eq!(
        gate.lines(),
        [
            format!("PATCH /api/v1/orgs/{ORG}"),
            format!("GET /api/v1/orgs/{ORG}"),
            format!("{cache_path}?mode=apply-filestore"),
            format!("{cache_path}?mode=get"),
            format!("{cache_path}?mode=get"),
            format!("{cache_path}?mode=apply"),
            "POST /api/v1/services/cache?mode=apply".to_string(),
            format!("PATCH /api/v1/orgs/{ORG}/plan"),
        ]
    );
    let seen = gate.seen();
    assert_eq!(seen[0].json(), json!({"name": "New"}));
    assert_eq!(
        seen[2].json(),
        json!({"org": {"name": "New", "id": ORG}, "runner": {"podType": "medium"}})
    );
    assert_eq!(seen[7].json(), json!({"plan": "premium"}));
    assert_eq!(seen[7].content_type.as_deref(), Some("application/json"));
    assert!(matches!(err, VendorError::Forbidden(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("spec.settings.dataloop.plan") && msg.contains("superuser"),
        "{msg}"
    );
    assert_eq!(gate.unanswered(), 0, "the 403 is not retried");

    // Destroying: two calls, no waiting; then the org is read back (with its cache).
    gate.clear();
    gate.push([
        ok(org_json("New", "premium")),
        ok(json!({})),
        Answer(204, None),
        ok(org_json("New", "premium")),
        error(404, "no cache"),
    ]);
    let org = c
        .patch_org(
            ORG,
            json!({"cache": {"enabled": false, "podType": "small"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        gate.lines(),
        [
            format!("GET /api/v1/orgs/{ORG}"),
            format!("{cache_path}?mode=destroy"),
            "POST /api/v1/services/cache?mode=destroy".to_string(),
            format!("GET /api/v1/orgs/{ORG}"),
            format!("{cache_path}?mode=get"),
        ]
    );
    assert_eq!(org.raw["cache"]["ready"], false);
    // A plan that is not one is refused without a request.
    gate.clear();
    let err = c.patch_org(ORG, json!({"plan": "gold"})).await.unwrap_err();
    assert!(
        err.to_string().contains("spec.settings.dataloop.plan"),
        "{err}"
    );
    assert!(gate.seen().is_empty());
}

/// The person `email` in `org`, as a desired membership to observe (scopes unmanaged).
fn who(org: &str, email: &str) -> MemberDesired {
    MemberDesired {
        org: org.into(),
        email: email.into(),
        first_name: None,
        last_name: None,
        roles: BTreeSet::new(),
        scopes: None,
    }
}

#[tokio::test]
async fn members_are_invited_changed_and_removed_by_the_listed_id() {
    let (c, gate, _) = with_key().await;
    let m = c.members().unwrap();
    let members = json!([
        {"id": "ann@acme.example", "email": "ann@acme.example", "username": "ann@acme.example",
         "role": "owner", "org": "someone-elses-active-org", "createdAt": 1673461599365u64},
        {"id": "6cdfccfb-ab06-4ed2-a585-b3a6674c1dc8", "email": null, "username": null,
         "inviteEmail": "bob@acme.example", "status": "pending", "role": "member", "org": ORG},
    ]);
    let projects = json!([
        {"id": "sys", "name": "System", "systemProject": true, "org": {"id": ORG}},
        {"id": "p1", "name": "Cars", "org": {"id": ORG}},
    ]);
    let p1_members = json!([
        {"id": "bob@acme.example", "email": "bob@acme.example", "role": "annotator"},
        {"id": "bot.1@bot.dataloop.ai", "email": "bot.1@bot.dataloop.ai", "role": "owner", "type": "bot"},
    ]);
    gate.push([
        ok(members.clone()),
        ok(projects.clone()),
        ok(p1_members.clone()),
    ]);
    let bob = m
        .observe_member(&who(ORG, "Bob@Acme.example"))
        .await
        .unwrap();
    assert_eq!(
        gate.lines(),
        [
            format!("GET /api/v1/orgs/{ORG}/members"),
            format!("GET /api/v1/orgs/{ORG}/projects"),
            "GET /api/v1/projects/p1/members".to_string(),
        ],
        "the system project is never read"
    );
    assert_eq!(bob.presence, Presence::Invited);
    assert_eq!(
        bob.id.as_deref(),
        Some("6cdfccfb-ab06-4ed2-a585-b3a6674c1dc8")
    );
    assert_eq!(bob.roles, BTreeSet::from(["member".to_string()]));
    assert_eq!(bob.scopes, BTreeSet::from(["Cars:annotator".to_string()]));

    let desired = |email: &str, role: &str, scopes: &[&str]| MemberDesired {
        org: ORG.into(),
        email: email.into(),
        first_name: None,
        last_name: None,
        roles: BTreeSet::from([role.to_string()]),
        scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
    };
    gate.clear();
    gate.push([ok(json!([{"id": "x"}])), ok(json!([]))]);
    let want = desired("bob@acme.example", "admin", &["Cars:engineer"]);
    m.change_member(
        &want,
        &bob,
        &MemberChange::SetRoles {
            grant: ["admin".to_string()].into(),
            revoke: ["member".to_string()].into(),
        },
    )
    .await
    .unwrap();
    m.change_member(&want, &bob, &MemberChange::SetScopes)
        .await
        .unwrap();
    let seen = gate.seen();
    assert_eq!(
        gate.lines(),
        [
            format!("PATCH /api/v1/orgs/{ORG}/members"),
            "PATCH /api/v1/projects/p1/members/bob@acme.example".to_string(),
        ]
    );
    assert_eq!(
        seen[0].json(),
        json!({"role": "admin", "email": "bob@acme.example"})
    );
    assert_eq!(seen[1].json(), json!({"role": "engineer"}));

    // A scope naming no project of the org, or no role, is refused before any request.
    gate.clear();
    let err = m
        .change_member(
            &desired("bob@acme.example", "admin", &["Trucks:engineer"]),
            &bob,
            &MemberChange::SetScopes,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Trucks"), "{err}");
    let err = m
        .change_member(
            &desired("bob@acme.example", "admin", &["Cars"]),
            &bob,
            &MemberChange::SetScopes,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VendorError::Rejected(_)), "{err}");
    assert!(gate.seen().is_empty());

    // Someone new is invited with their role; a 409 (an earlier invitation whose answer was
    // lost) is success, the engine observes again anyway.
    gate.push([error(409, "User already invited")]);
    m.change_member(
        &desired("carl@acme.example", "worker", &[]),
        &orgops::vendors::MemberObserved::absent(),
        &MemberChange::Add,
    )
    .await
    .unwrap();
    let seen = gate.seen();
    assert_eq!(seen[0].line(), format!("POST /api/v1/orgs/{ORG}/members"));
    assert_eq!(
        seen[0].json(),
        json!({"emails": ["carl@acme.example"], "role": "worker"})
    );
    assert_eq!(seen.len(), 1, "an invitation is never re-sent blindly");

    // Removal: the project role, then the invitation by the id the list gave (gone already:
    // success).
    gate.clear();
    gate.push([Answer(204, None), error(404, "not found")]);
    m.remove_member(ORG, &bob).await.unwrap();
    assert_eq!(
        gate.lines(),
        [
            "DELETE /api/v1/projects/p1/members/bob@acme.example".to_string(),
            format!("DELETE /api/v1/orgs/{ORG}/members/6cdfccfb-ab06-4ed2-a585-b3a6674c1dc8"),
        ]
    );

    // Once accepted, the person is a member under their e-mail.
    gate.clear();
    let accepted =
        json!([{"id": "bob@acme.example", "email": "bob@acme.example", "role": "admin"}]);
    gate.push([ok(accepted), ok(projects), ok(json!([]))]);
    let bob = m
        .observe_member(&who(ORG, "bob@acme.example"))
        .await
        .unwrap();
    assert_eq!(bob.presence, Presence::Active);
    assert_eq!(bob.id.as_deref(), Some("bob@acme.example"));
    assert!(bob.scopes.is_empty());
    // Nobody: absent.
    gate.push([ok(members), ok(json!([]))]);
    let nobody = m
        .observe_member(&who(ORG, "zed@acme.example"))
        .await
        .unwrap();
    assert_eq!(nobody.presence, Presence::Absent);
}

#[tokio::test]
async fn projects_are_created_by_form_moved_into_the_org_and_given_their_groups() {
    let (c, gate, _) = with_key().await;
    gate.push([
        ok(json!([
            {"id": "sys", "name": "System", "systemProject": true},
            {"id": "p1", "name": "Cars", "org": {"id": ORG}, "contributors": [], "groups": []},
        ])),
        ok(json!([{"id": "g1", "name": "Labelers", "role": "annotator"}])),
    ]);
    let listed = c.list_objects(ORG, &PROJECTS).await.unwrap();
    assert_eq!(
        gate.lines(),
        [
            format!("GET /api/v1/orgs/{ORG}/projects"),
            "GET /api/v1/projects/p1/subgroups".to_string(),
        ]
    );
    assert_eq!(
        listed,
        [
            json!({"id": "sys", "name": "System", "systemProject": true}),
            json!({"id": "p1", "name": "Cars", "systemProject": false, "groupRoles": ["g1:annotator"]}),
        ]
    );

    // The target becomes the caller's active org first (where the gate puts new projects),
    // then the project is created; one that lands elsewhere all the same (another reconcile
    // changed the active org meanwhile) is moved; then its groups are given their roles.
    let me_in = |org: &str| ok(json!({"id": "owner@acme.example", "org": {"id": org}}));
    gate.clear();
    gate.push([
        me_in("active-org"),
        ok(json!({"id": "owner@acme.example", "org": ORG})),
        ok(json!({"id": "p9", "name": "Trucks", "org": {"id": "other-org", "name": "Other"}})),
        ok(json!({"id": "p9", "name": "Trucks", "org": {"id": ORG}})),
        ok(json!([])), // subgroups
        ok(json!([{"id": "g2", "role": "engineer"}])),
    ]);
    let made = c
        .create_object(
            ORG,
            &PROJECTS,
            json!({"name": "Trucks", "groupRoles": ["g2:engineer"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        made,
        json!({"id": "p9", "name": "Trucks", "systemProject": false, "groupRoles": ["g2:engineer"]})
    );
    let seen = gate.seen();
    assert_eq!(
        gate.lines(),
        [
            "GET /api/v1/users/me",
            "POST /api/v1/users/me",
            "POST /api/v1/projects",
            "PATCH /api/v1/projects/p9/org",
            "GET /api/v1/projects/p9/subgroups",
            "POST /api/v1/projects/p9/subgroups/g2",
        ]
    );
    assert_eq!(seen[1].json(), json!({"org": ORG}));
    assert_eq!(
        seen[2].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen[2].body, "name=Trucks");
    assert_eq!(
        seen[3].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen[3].body, format!("org_id={ORG}"));
    assert_eq!(seen[5].json(), json!({"role": "engineer"}));

    // Created in the target: neither the active org is set nor the project moved.
    gate.clear();
    gate.push([
        me_in(ORG),
        ok(json!({"id": "p11", "name": "Bikes", "org": ORG})),
    ]);
    c.create_object(ORG, &PROJECTS, json!({"name": "Bikes"}))
        .await
        .unwrap();
    assert_eq!(
        gate.lines(),
        ["GET /api/v1/users/me", "POST /api/v1/projects"]
    );

    // Cannot be moved: deleted again, not left elsewhere.
    gate.clear();
    gate.push([
        me_in(ORG),
        ok(json!({"id": "p10", "name": "Vans", "org": "active-org"})),
        error(403, "not an owner of the target org"),
        Answer(204, None),
    ]);
    let err = c
        .create_object(ORG, &PROJECTS, json!({"name": "Vans"}))
        .await
        .unwrap_err();
    assert!(matches!(err, VendorError::Forbidden(_)), "{err}");
    assert_eq!(
        gate.lines(),
        [
            "GET /api/v1/users/me",
            "POST /api/v1/projects",
            "PATCH /api/v1/projects/p10/org",
            "DELETE /api/v1/projects/p10",
        ]
    );

    // A create whose answer was lost is never sent twice.
    gate.clear();
    gate.push([me_in(ORG), error(502, "bad gateway")]);
    let err = c
        .create_object(ORG, &PROJECTS, json!({"name": "Buses"}))
        .await
        .unwrap_err();
    assert!(err.is_outcome_unknown(), "{err}");
    assert_eq!(
        gate.lines(),
        ["GET /api/v1/users/me", "POST /api/v1/projects"]
    );

    // The groups' roles converge: one changed, one removed, one added.
    gate.clear();
    gate.push([
        ok(json!([{"id": "g1", "role": "annotator"}, {"id": "g3", "role": "owner"}])),
        ok(json!([])),
        ok(json!([])),
        Answer(204, None),
        ok(json!({"id": "p1", "name": "Cars", "org": {"id": ORG}})),
        ok(json!([{"id": "g1", "role": "engineer"}, {"id": "g2", "role": "annotator"}])),
    ]);
    let updated = c
        .update_object(
            ORG,
            &PROJECTS,
            "p1",
            json!({"groupRoles": ["g1:engineer", "g2:annotator"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        gate.lines(),
        [
            "GET /api/v1/projects/p1/subgroups",
            "PATCH /api/v1/projects/p1/subgroups/g1",
            "POST /api/v1/projects/p1/subgroups/g2",
            "DELETE /api/v1/projects/p1/subgroups/g3",
            "GET /api/v1/projects/p1",
            "GET /api/v1/projects/p1/subgroups",
        ]
    );
    assert_eq!(
        updated["groupRoles"],
        json!(["g1:engineer", "g2:annotator"])
    );
}

#[tokio::test]
async fn ontologies_and_recipes_are_read_page_by_page_and_written_whole() {
    let (c, gate, _) = with_key().await;
    let page = |items: Value, next: bool| {
        ok(json!({"totalItemsCount": 3, "totalPagesCount": 2, "items": items, "hasNextPage": next}))
    };
    gate.push([
        ok(json!([{"id": "p1", "name": "Cars"}, {"id": "sys", "systemProject": true}])),
        page(
            json!([{"id": "o1", "title": "Vehicles", "roots": [{"value": {"tag": "car", "color": "#ff0000", "attributes": []}, "children": []}],
                     "metadata": {"system": {"projectIds": ["p1", "sys"]}}}]),
            true,
        ),
        page(
            json!([{"id": "o2", "title": "People", "roots": [], "attributes": null,
                     "metadata": {"system": {"projectIds": ["p1"]}}}]),
            false,
        ),
    ]);
    let ontologies = c.list_objects(ORG, &ONTOLOGIES).await.unwrap();
    assert_eq!(
        gate.lines(),
        [
            format!("GET /api/v1/orgs/{ORG}/projects"),
            "GET /api/v1/ontologies?projects=p1&pageOffset=0&pageSize=1000".to_string(),
            "GET /api/v1/ontologies?projects=p1&pageOffset=1&pageSize=1000".to_string(),
        ],
        "the system project's ontologies are not read"
    );
    assert_eq!(ontologies.len(), 2);
    assert_eq!(ontologies[0]["projectIds"], json!(["p1"]));
    assert_eq!(ontologies[1]["attributes"], json!([]));

    // An update reads the whole entity and PUTs it back, keeping links outside the org.
    gate.clear();
    gate.push([
        ok(json!([{"id": "p1", "name": "Cars"}, {"id": "p2", "name": "Trucks"}])),
        ok(
            json!({"id": "o1", "title": "Vehicles", "roots": [], "creator": "a",
                  "metadata": {"system": {"projectIds": ["p1", "elsewhere"]}}}),
        ),
        ok(json!({"id": "o1", "title": "Vehicles", "roots": [],
                  "metadata": {"system": {"projectIds": ["p2", "elsewhere"]}}})),
    ]);
    let o = c
        .update_object(ORG, &ONTOLOGIES, "o1", json!({"projectIds": ["p2"]}))
        .await
        .unwrap();
    assert_eq!(o["projectIds"], json!(["p2"]));
    let seen = gate.seen();
    assert_eq!(seen[2].line(), "PUT /api/v1/ontologies/o1?system=true");
    let put = seen[2].json();
    assert_eq!(
        put["metadata"]["system"]["projectIds"],
        json!(["p2", "elsewhere"])
    );
    assert_eq!(put["creator"], "a", "the whole entity goes back");

    // Recipes: the dtlpy create body.
    gate.clear();
    gate.push([ok(
        json!({"id": "r1", "title": "Default", "projectIds": ["p2"], "ontologyIds": ["o1"]}),
    )]);
    let r = c
        .create_object(
            ORG,
            &RECIPES,
            json!({"title": "Default", "projectIds": ["p2"], "ontologyIds": ["o1"]}),
        )
        .await
        .unwrap();
    assert_eq!(r["id"], "r1");
    assert_eq!(
        gate.seen()[0].json(),
        json!({"title": "Default", "projectIds": ["p2"], "ontologyIds": ["o1"],
               "uiSettings": {"allowObjectIdAutoAssign": true, "studioV2App": true}})
    );
    // A page without hasNextPage is not a Dataloop page.
    gate.clear();
    gate.push([ok(json!([{"id": "p1"}])), ok(json!({"items": []}))]);
    let err = c.list_objects(ORG, &RECIPES).await.unwrap_err();
    assert!(err.to_string().contains("hasNextPage"), "{err}");
}

#[tokio::test]
async fn drivers_are_written_nested_with_the_callers_email_and_read_flat() {
    let (c, gate, _) = with_key().await;
    gate.push([
        ok(json!([{"id": "p1", "name": "Cars"}])),
        ok(
            json!([{"id": "d1", "name": "raw", "type": "s3", "integrationId": "i1",
                   "integrationType": "s3", "bucketName": "b", "region": "eu-west-1",
                   "path": "", "allowExternalDelete": true, "creator": "a", "isSyncable": false}]),
        ),
    ]);
    let drivers = c.list_objects(ORG, &DRIVERS).await.unwrap();
    assert_eq!(gate.lines()[1], "GET /api/v1/drivers?projectId=p1");
    assert_eq!(drivers[0]["projectId"], "p1");

    gate.clear();
    gate.push([ok(
        json!({"id": "d9", "name": "raw", "type": "s3", "bucketName": "b",
                         "metadata": {"system": {"projectId": "p7"}}}),
    )]);
    let mut body = drivers[0].clone();
    body["projectId"] = json!("p7");
    body["integrationId"] = json!("i7");
    let made = c.create_object(ORG, &DRIVERS, body).await.unwrap();
    assert_eq!(made["projectId"], "p7");
    let sent = gate.seen()[0].json();
    assert_eq!(gate.lines(), ["POST /api/v1/drivers"]);
    assert_eq!(
        sent,
        json!({"integrationId": "i7", "integrationType": "s3", "name": "raw",
               "metadata": {"system": {"projectId": "p7"}}, "type": "s3",
               "payload": {"bucketName": "b", "region": "eu-west-1", "path": ""},
               "allowExternalDelete": true, "creator": "owner@acme.example"})
    );

    gate.clear();
    gate.push([
        ok(json!({})),
        ok(json!({"id": "d9", "name": "raw", "path": "/in"})),
    ]);
    c.update_object(ORG, &DRIVERS, "d9", json!({"path": "/in"}))
        .await
        .unwrap();
    assert_eq!(
        gate.lines(),
        ["PATCH /api/v1/drivers/d9", "GET /api/v1/drivers/d9"]
    );
    assert_eq!(gate.seen()[0].json(), json!({"payload": {"path": "/in"}}));
}

#[tokio::test]
async fn integrations_take_their_options_from_the_secret_and_never_echo_them() {
    let (c, gate, _) = with_key().await;
    let input = creds(&[
        ("key", "AKIAEXAMPLEKEY"),
        ("secret", "wJalrXUtnFEMI-secret"),
    ]);
    gate.push([ok(
        json!({"id": "i9", "name": "S3", "type": "s3", "org": ORG,
                         "metadata": [{"name": "status", "value": "ok"}]}),
    )]);
    let made = c
        .create_object_with_input(
            ORG,
            &INTEGRATIONS,
            json!({"name": "S3", "type": "s3", "metadata": {}}),
            &input,
        )
        .await
        .unwrap();
    assert_eq!(made["metadata"], json!({}));
    assert_eq!(
        gate.lines(),
        [format!("POST /api/v1/orgs/{ORG}/integrations")]
    );
    assert_eq!(
        gate.seen()[0].json(),
        json!({"type": "s3", "name": "S3",
               "options": {"key": "AKIAEXAMPLEKEY", "secret": "wJalrXUtnFEMI-secret"}})
    );
    assert!(!format!("{made}").contains("wJalr"));

    // A gate echoing the options in its error: blanked out.
    gate.push([error(
        400,
        "invalid credentials key=AKIAEXAMPLEKEY secret=wJalrXUtnFEMI-secret",
    )]);
    let err = c
        .create_object_with_input(
            ORG,
            &INTEGRATIONS,
            json!({"name": "S3", "type": "s3"}),
            &input,
        )
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, VendorError::Rejected(_)), "{text}");
    assert!(
        !text.contains("AKIAEXAMPLEKEY") && !text.contains("wJalr"),
        "{text}"
    );
    // Without a Secret there is no create.
    gate.clear();
    let err = c
        .create_object(ORG, &INTEGRATIONS, json!({"name": "S3", "type": "s3"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.template.secrets"), "{err}");
    assert!(gate.seen().is_empty());
}

#[tokio::test]
async fn dql_queries_are_repeatable_reads_paged_by_page() {
    let (c, gate, _) = with_key().await;
    gate.push([
        error(503, "unavailable"),
        ok(json!({"totalItemsCount": 2, "totalPagesCount": 2, "items": [{"id": "ds1"}], "hasNextPage": true})),
        ok(json!({"totalItemsCount": 2, "totalPagesCount": 2, "items": [{"id": "ds2"}], "hasNextPage": false})),
    ]);
    let datasets = c
        .api()
        .query_datasets(&["p1", "p2"], json!({}))
        .await
        .unwrap();
    assert_eq!(datasets, [json!({"id": "ds1"}), json!({"id": "ds2"})]);
    let seen = gate.seen();
    assert_eq!(seen.len(), 3, "the 503 on a query is retried like a GET");
    for s in &seen {
        assert_eq!(s.line(), "POST /api/v1/datasets/query");
    }
    assert_eq!(
        seen[0].json(),
        json!({"filter": {}, "page": 0, "pageSize": 1000, "resource": "datasets",
               "context": {"projects": ["p1", "p2"]}})
    );
    assert_eq!(seen[2].json()["page"], 1);
}

#[tokio::test]
async fn an_m2m_token_is_renewed_before_it_expires_and_no_request_fails_on_expiry() {
    let (base, gate) = serve().await;
    *gate.token_lifetime.lock().unwrap() = Some(3);
    let c = client(
        &base,
        &[("username", "bot@acme.example"), ("password", PASSWORD)],
    );
    c.verify_credentials().await.unwrap();
    c.find_orgs(None).await.unwrap();
    let seen = gate.seen();
    assert_eq!(
        gate.lines(),
        ["POST /token?default", "GET /api/v1/orgs"],
        "the login is at the gate's root; an M2M login needs no /users/me"
    );
    assert_eq!(
        seen[0].json(),
        json!({"username": "bot@acme.example", "password": PASSWORD, "type": "user_credentials"})
    );
    let first = seen[1].authorization.clone().unwrap();
    // Past half the token's life (the renewal margin of a short-lived token): renewed first.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    c.find_orgs(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    c.find_orgs(None).await.unwrap();
    let lines = gate.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("POST /token"))
            .count(),
        3,
        "{lines:?}"
    );
    let auths: Vec<String> = gate
        .seen()
        .iter()
        .filter(|s| s.path == "/api/v1/orgs")
        .map(|s| s.authorization.clone().unwrap())
        .collect();
    assert_eq!(auths.len(), 3);
    assert!(auths[1] != first && auths[2] != auths[1]);
    assert_eq!(
        gate.expired.load(Ordering::SeqCst),
        0,
        "no request ever carried an expired token"
    );

    // A token the gate stops accepting (revoked) is replaced once, and the request succeeds.
    gate.clear();
    gate.push([error(401, "invalid token")]);
    c.find_orgs(None).await.unwrap();
    assert_eq!(
        gate.lines(),
        [
            "GET /api/v1/orgs",
            "POST /token?default",
            "GET /api/v1/orgs"
        ]
    );

    // A refused login names the Secret and never the password, even when the gate echoes it.
    let (base, gate) = serve().await;
    gate.push([error(401, &format!("wrong password {PASSWORD}"))]);
    let c = client(
        &base,
        &[("username", "bot@acme.example"), ("password", PASSWORD)],
    );
    let err = c.verify_credentials().await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        matches!(&err, VendorError::InvalidCredentials { secret, .. } if secret == SECRET),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn an_expired_api_key_is_reported_naming_the_secret_before_any_request() {
    let (base, gate) = serve().await;
    let key = jwt(json!({"email": "owner@acme.example", "exp": now() - 10}));
    let c = client(&base, &[("apiKey", &key)]);
    let err = c.verify_credentials().await.unwrap_err();
    assert!(
        matches!(&err, VendorError::InvalidCredentials { secret, detail } if secret == SECRET && detail.contains("expired")),
        "{err}"
    );
    let err = c.find_orgs(None).await.unwrap_err();
    assert!(
        matches!(err, VendorError::InvalidCredentials { .. }),
        "{err}"
    );
    assert!(gate.seen().is_empty());
    assert!(!format!("{err:?}").contains(&key));

    // A key the gate rejects: CredentialsInvalid, not retried, no re-login.
    let (base, gate) = serve().await;
    gate.push([error(401, "Unauthorized")]);
    let c = client(&base, &[("apiKey", &api_key())]);
    let err = c.verify_credentials().await.unwrap_err();
    assert_eq!(err.category(), "CredentialsInvalid");
    assert_eq!(gate.lines(), ["GET /api/v1/users/me"]);
}

#[tokio::test]
async fn error_bodies_are_read_for_their_message() {
    let (c, gate, _) = with_key().await;
    gate.push([error(400, "Invalid role: boss")]);
    let err = c
        .members()
        .unwrap()
        .change_member(
            &MemberDesired {
                org: ORG.into(),
                email: "x@acme.example".into(),
                first_name: None,
                last_name: None,
                roles: ["admin".to_string()].into(),
                scopes: Some(BTreeSet::new()),
            },
            &orgops::vendors::MemberObserved::absent(),
            &MemberChange::Add,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VendorError::Rejected(_)), "{err}");
    assert!(err.to_string().contains("Invalid role: boss"), "{err}");
    // Not JSON at all (a proxy page): its text.
    gate.push([Answer(403, None)]);
    let err = c.list_objects(ORG, &RECIPES).await.unwrap_err();
    assert_eq!(err.category(), "PermissionDenied");
}
// ---- Against the Dataloop simulator ------------------------------------------------------

mod against_the_simulator {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use orgops::api::Vendor;
    use orgops::api::conditions::types;
    use orgops::engine::membership::reconcile_member;
    use orgops::engine::{DesiredOrg, Mode, TemplateSelector, TemplateSpec};
    use orgops::simulator::dataloop::seed::{
        ADMIN_EMAIL, ADMIN_PASSWORD, TARGET_ORG_ID, TARGET_ORG_NAME, TEMPLATE_ORG_ID,
    };
    use orgops::simulator::dataloop::{DataloopSimulator, Options};
    use orgops::simulator::kit::SimulatorHandle;
    use orgops::vendors::dataloop::{DataloopApi, DataloopClient};
    use orgops::vendors::{Credentials, Endpoints, HttpConfig, MemberDesired, Owner, VendorClient};
    use secrecy::SecretString;
    use serde_json::{Value, json};

    use super::support::{MemorySink, reconcile, reconcile_until_ready};

    async fn start(options: Options) -> DataloopSimulator {
        DataloopSimulator::start(
            0,
            Options {
                id_seed: Some(11),
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
            "tenants/s",
            values
                .iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
                .collect(),
        )
    }

    /// The M2M client of the seeded admin (owner of both orgs).
    fn m2m(sim: &DataloopSimulator) -> DataloopClient {
        let api = DataloopApi::new(
            Some(&sim.base_url),
            secret(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
            fast(),
            &Endpoints::default(),
        )
        .unwrap()
        .with_cache_timeout(Duration::from_secs(10));
        DataloopClient::from_api(api)
    }

    /// The Secrets of the template's six integrations (new credentials for the copies).
    fn integration_secrets(sink: &MemorySink) -> BTreeMap<String, String> {
        let secrets: [(&str, &[(&str, &str)]); 6] = [
            (
                "acme-s3",
                &[("key", "AKIATARGET000001"), ("secret", "target-s3-secret")],
            ),
            (
                "acme-aws-sts",
                &[
                    ("key", "AKIATARGET000002"),
                    ("secret", "target-sts-secret"),
                    ("roleArns", "arn:aws:iam::210987654321:role/dl"),
                ],
            ),
            ("acme-gcs", &[("content", "{\"type\":\"service_account\"}")]),
            (
                "acme-azure",
                &[
                    ("clientId", "c"),
                    ("secret", "target-azure-secret"),
                    ("tenantId", "t"),
                ],
            ),
            (
                "acme-labeling-api-key",
                &[("key", "K"), ("value", "target-kv-secret")],
            ),
            (
                "acme-registry",
                &[
                    ("name", "acme-registry"),
                    ("spec.password", "target-registry-secret"),
                    ("spec.username", "robot"),
                    ("spec.server", "registry.acme.example"),
                ],
            ),
        ];
        let mut named = BTreeMap::new();
        for (integration, values) in secrets {
            let secret_name = format!("{integration}-creds");
            sink.secrets
                .lock()
                .unwrap()
                .insert(secret_name.clone(), secret(values));
            named.insert(format!("integrations/{integration}"), secret_name);
        }
        named
    }

    fn desired(external_id: Option<&str>, settings: Value) -> DesiredOrg {
        DesiredOrg {
            owner: Owner {
                key: "tenants/target".into(),
                uid: None,
            },
            generation: Some(1),
            vendor: Vendor::Dataloop,
            display_name: TARGET_ORG_NAME.into(),
            external_id: external_id.map(str::to_string),
            template: Some(TemplateSpec {
                selector: TemplateSelector::Id(TEMPLATE_ORG_ID.into()),
                include: None,
                secrets: Default::default(),
                prune: false,
            }),
            settings,
            mode: Mode::Apply,
            sync_interval: Duration::from_secs(600),
        }
    }

    fn names(objects: &[Value], key: &str) -> Vec<String> {
        let mut out: Vec<String> = objects
            .iter()
            .filter_map(|o| o[key].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
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

    /// The seeded target org is adopted by name (no org is created), its plan and cache set,
    /// the template copied with every reference remapped and the integrations' secrets from
    /// the named Secrets; a second reconcile writes nothing.
    #[tokio::test]
    async fn the_target_is_adopted_set_up_like_the_template_and_then_left_alone() {
        let sim = start(Options {
            cache_pending_polls: 2,
            ..Options::default()
        })
        .await;
        let client = m2m(&sim);
        let sink = MemorySink::default();
        let mut want = desired(
            None,
            json!({"plan": "premium", "cache": {"podType": "medium"}}),
        );
        if let Some(t) = want.template.as_mut() {
            t.secrets = integration_secrets(&sink);
        }
        let orgs_before = sim.org_ids(TARGET_ORG_NAME).len();
        let report = reconcile_until_ready(&client, &want, &sink, 4).await;
        assert_eq!(report.external_id.as_deref(), Some(TARGET_ORG_ID));
        assert_eq!(sim.writes("orgs").map(|w| w.creates), Some(0));
        assert_eq!(sim.org_ids(TARGET_ORG_NAME).len(), orgs_before);
        // Usage is what the reconcile observed before setting the plan.
        assert!(report.usage.as_ref().unwrap()["account"]["id"].is_string());
        let org = client.get_org(TARGET_ORG_ID).await.unwrap().unwrap();
        assert_eq!(org.raw["plan"], "premium");
        assert_eq!(org.raw["cache"]["ready"], true);

        // Every kind, name for name (the system project stays the target's own).
        use orgops::vendors::dataloop::vendor::*;
        for (kind, key) in [
            (&GROUPS, "name"),
            (&INTEGRATIONS, "name"),
            (&PROJECTS, "name"),
            (&DRIVERS, "name"),
            (&ONTOLOGIES, "title"),
            (&RECIPES, "title"),
        ] {
            let from = client.list_objects(TEMPLATE_ORG_ID, kind).await.unwrap();
            let to = client.list_objects(TARGET_ORG_ID, kind).await.unwrap();
            assert_eq!(names(&from, key), names(&to, key), "{}", kind.name);
        }
        // References point into the target, never back into the template.
        let ids = |objects: Vec<Value>| -> std::collections::HashSet<String> {
            objects
                .iter()
                .filter_map(|o| o["id"].as_str().map(str::to_string))
                .collect()
        };
        let projects = ids(client.list_objects(TARGET_ORG_ID, &PROJECTS).await.unwrap());
        let integrations = ids(client
            .list_objects(TARGET_ORG_ID, &INTEGRATIONS)
            .await
            .unwrap());
        let ontologies = ids(client
            .list_objects(TARGET_ORG_ID, &ONTOLOGIES)
            .await
            .unwrap());
        let groups = ids(client.list_objects(TARGET_ORG_ID, &GROUPS).await.unwrap());
        for d in client.list_objects(TARGET_ORG_ID, &DRIVERS).await.unwrap() {
            assert!(projects.contains(d["projectId"].as_str().unwrap()), "{d}");
            assert!(
                integrations.contains(d["integrationId"].as_str().unwrap()),
                "{d}"
            );
        }
        for r in client.list_objects(TARGET_ORG_ID, &RECIPES).await.unwrap() {
            for o in r["ontologyIds"].as_array().unwrap() {
                assert!(ontologies.contains(o.as_str().unwrap()), "{r}");
            }
            assert!(!r["projectIds"].as_array().unwrap().is_empty(), "{r}");
        }
        let medical = client
            .list_objects(TARGET_ORG_ID, &PROJECTS)
            .await
            .unwrap()
            .into_iter()
            .find(|p| p["name"] == "Medical imaging")
            .unwrap();
        assert_eq!(medical["groupRoles"].as_array().unwrap().len(), 2);
        for gr in medical["groupRoles"].as_array().unwrap() {
            let g = gr.as_str().unwrap().rsplit_once(':').unwrap().0;
            assert!(groups.contains(g), "{gr}");
        }
        // The copies' secrets are the Secrets' values, and only the vendor holds them.
        let copies = client
            .list_objects(TARGET_ORG_ID, &INTEGRATIONS)
            .await
            .unwrap();
        let registry = copies
            .iter()
            .find(|i| i["name"] == "acme-registry")
            .unwrap();
        assert_eq!(
            sim.integration_options(registry["id"].as_str().unwrap()),
            Some(
                json!({"name": "acme-registry", "spec": {"password": "target-registry-secret",
                         "username": "robot", "server": "registry.acme.example"}})
            )
        );
        assert_eq!(
            registry["metadata"],
            json!({"provider": "custom", "authMethod": "basic"})
        );
        assert!(!format!("{copies:?}").contains("target-"), "{copies:?}");

        // Nothing to do the second time: no write at all.
        let writes = sim.total_writes();
        let again = reconcile(&client, &want, &sink).await;
        assert!(
            again.ready,
            "{} {}",
            again.ready_reason(),
            again.ready_message()
        );
        assert_eq!(
            sim.total_writes(),
            writes,
            "a settled copy was written again"
        );
        assert!(!again.settings_updated);
        assert_eq!(again.usage.as_ref().unwrap()["plan"], "premium");
        let stats = client.api().transport().stats().snapshot();
        assert!(
            stats.keys().all(|(_, status)| *status != 401),
            "a request failed on its token: {stats:?}"
        );
    }

    /// Under faults (server errors, throttling, resets, slow and lost responses) the copy
    /// still settles with one copy of everything, and nothing is added to the template.
    #[tokio::test]
    async fn faults_and_lost_responses_make_no_duplicates() {
        for seed in [1u64, 2, 3, 4, 5, 6] {
            let sim = start(Options::default()).await;
            let client = m2m(&sim);
            let sink = MemorySink::default();
            let mut want = desired(Some(TARGET_ORG_ID), json!({"plan": "premium"}));
            if let Some(t) = want.template.as_mut() {
                t.secrets = integration_secrets(&sink);
            }
            use orgops::vendors::dataloop::vendor::*;
            let mut before = Vec::new();
            for kind in CAPABILITIES.kinds {
                before.push(
                    client
                        .list_objects(TEMPLATE_ORG_ID, kind)
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
                let from = client.list_objects(TEMPLATE_ORG_ID, kind).await.unwrap();
                let to = client.list_objects(TARGET_ORG_ID, kind).await.unwrap();
                assert_eq!(
                    from.len(),
                    before[n],
                    "seed {seed}: the template's {} changed",
                    kind.name
                );
                let key = if kind.name == "ontologies" || kind.name == "recipes" {
                    "title"
                } else {
                    "name"
                };
                assert_eq!(
                    names(&from, key),
                    names(&to, key),
                    "seed {seed}: {}",
                    kind.name
                );
            }
        }
    }

    /// Without a superuser the plan cannot change: a PermissionDenied condition on the setting,
    /// while the copy still completes; adopting by id works the same as by name.
    #[tokio::test]
    async fn a_plan_the_credentials_cannot_set_is_a_condition_not_a_failed_copy() {
        let sim = start(Options {
            admin_superuser: false,
            ..Options::default()
        })
        .await;
        let client = m2m(&sim);
        let sink = MemorySink::default();
        let mut want = desired(Some(TARGET_ORG_ID), json!({"plan": "premium"}));
        if let Some(t) = want.template.as_mut() {
            t.include = Some(vec!["recipes".into()]);
        }
        let mut report = reconcile(&client, &want, &sink).await;
        for _ in 0..3 {
            if report.copy.as_ref().is_some_and(|c| c.failures.is_empty()) {
                break;
            }
            report = reconcile(&client, &want, &sink).await;
        }
        let settings = condition(&report, types::SETTINGS_SYNCED);
        assert!(!settings.status);
        assert_eq!(settings.reason, "PermissionDenied");
        assert!(
            settings.message.contains("spec.settings.dataloop.plan"),
            "{}",
            settings.message
        );
        let copied = condition(&report, types::TEMPLATE_COPIED);
        assert!(copied.status, "{copied:?}");
        // Recipes pulled in what they reference (ontologies, projects, groups).
        let to = client
            .list_objects(TARGET_ORG_ID, &orgops::vendors::dataloop::vendor::RECIPES)
            .await
            .unwrap();
        assert_eq!(to.len(), 4);
        assert_eq!(
            client.get_org(TARGET_ORG_ID).await.unwrap().unwrap().raw["plan"],
            "freemium"
        );
    }

    /// Invited with a role, Invited until accepted, then Ready; role and project roles change;
    /// removal deletes the member and their project roles.
    #[tokio::test]
    async fn a_member_is_invited_accepted_changed_scoped_and_removed() {
        let sim = start(Options::default()).await;
        sim.add_user("frank@orgops.example", "Frank", "New", None);
        let client = m2m(&sim);
        // A project to scope to, copied from the template.
        let sink = MemorySink::default();
        let mut want = desired(Some(TARGET_ORG_ID), Value::Null);
        if let Some(t) = want.template.as_mut() {
            t.include = Some(vec!["projects".into()]);
        }
        reconcile_until_ready(&client, &want, &sink, 3).await;

        let mut person = MemberDesired {
            org: TARGET_ORG_ID.into(),
            email: "Frank@orgops.example".into(),
            first_name: None,
            last_name: None,
            roles: ["member".to_string()].into(),
            scopes: Default::default(),
        };
        let r = reconcile_member(&client, &person, Mode::Apply).await;
        assert_eq!(r.ready_reason(), "Invited", "{}", r.ready_message());
        let invitation = r.external_id.clone().unwrap();
        assert_ne!(
            invitation, "frank@orgops.example",
            "an invitation has its own id"
        );
        // Again: nothing new is sent.
        let writes = sim.total_writes();
        let r = reconcile_member(&client, &person, Mode::Apply).await;
        assert_eq!(r.ready_reason(), "Invited");
        assert_eq!(sim.total_writes(), writes);

        sim.accept_invitation(TARGET_ORG_ID, "frank@orgops.example")
            .unwrap();
        person.roles = ["admin".to_string()].into();
        person.scopes = Some(
            ["Traffic cameras:annotator".to_string()]
                .into_iter()
                .collect(),
        );
        let r = reconcile_member(&client, &person, Mode::Apply).await;
        assert!(r.ready, "{} {}", r.ready_reason(), r.ready_message());
        assert_eq!(r.external_id.as_deref(), Some("frank@orgops.example"));
        let observed = client
            .members()
            .unwrap()
            .observe_member(&person)
            .await
            .unwrap();
        assert_eq!(observed.roles, ["admin".to_string()].into());
        assert_eq!(
            observed.scopes,
            ["Traffic cameras:annotator".to_string()].into()
        );
        let writes = sim.total_writes();
        assert!(reconcile_member(&client, &person, Mode::Apply).await.ready);
        assert_eq!(sim.total_writes(), writes);

        // A project the org does not have: said by name.
        person.scopes = Some(["Nope:owner".to_string()].into_iter().collect());
        let r = reconcile_member(&client, &person, Mode::Apply).await;
        assert!(
            !r.ready && r.ready_message().contains("Nope"),
            "{}",
            r.ready_message()
        );

        let members = client.members().unwrap();
        members
            .remove_member(TARGET_ORG_ID, &observed)
            .await
            .unwrap();
        let gone = members.observe_member(&person).await.unwrap();
        assert!(!gone.holds_access() && gone.scopes.is_empty(), "{gone:?}");
        // Removing again is success.
        members.remove_member(TARGET_ORG_ID, &gone).await.unwrap();
    }

    /// Tokens that live three seconds: the client logs in again before each expires, and no
    /// request is ever answered 401.
    #[tokio::test]
    async fn short_lived_tokens_are_renewed_before_they_expire() {
        let sim = start(Options {
            token_lifetime: Duration::from_secs(3),
            ..Options::default()
        })
        .await;
        let client = m2m(&sim);
        // Past the first token's expiry, whenever in its first second it was issued.
        for _ in 0..5 {
            assert!(client.get_org(TARGET_ORG_ID).await.unwrap().is_some());
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        let stats = client.api().transport().stats().snapshot();
        assert!(stats.keys().all(|(_, status)| *status != 401), "{stats:?}");
        let logins = stats
            .iter()
            .filter(|((m, s), _)| m == "POST" && *s == 200)
            .map(|(_, n)| *n)
            .sum::<u64>();
        assert!(
            logins >= 5 + 2,
            "the cache polls and at least two logins: {stats:?}"
        );

        // An API key the simulator issued works the same, and is never renewed.
        let key = DataloopClient::new(
            Some(&sim.base_url),
            secret(&[("apiKey", &sim.admin_api_key)]),
            fast(),
            &Endpoints::default(),
        )
        .unwrap();
        key.verify_credentials().await.unwrap();
        assert_eq!(
            key.describe_account().await.unwrap().details["user"],
            ADMIN_EMAIL
        );
    }
}
