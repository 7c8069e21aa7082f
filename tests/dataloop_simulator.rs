//! The Dataloop simulator over loopback HTTP: authentication and token expiry (signed JWTs,
//! `POST /token` logins and refreshes), `{status, name, message}` error bodies, offset
//! pagination, write-only integration secrets, invitations and their acceptance, plans and
//! superusers, projects that move between orgs, the [`SimulatorHandle`] every cross-vendor
//! test uses, and hostile input.

use std::time::Duration;

use orgops::simulator::dataloop::{self, DataloopSimulator, seed};
use orgops::simulator::kit::{SimulatorHandle, WriteCounts, auth};
use orgops::simulator::{FaultSpec, ServeOptions};
use proptest::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

const T: &str = seed::TEMPLATE_ORG_ID;
const TARGET: &str = seed::TARGET_ORG_ID;

async fn start_with(options: dataloop::Options) -> DataloopSimulator {
    DataloopSimulator::start(
        0,
        dataloop::Options {
            id_seed: Some(11),
            ..options
        },
    )
    .await
    .expect("simulator starts")
}

async fn start() -> DataloopSimulator {
    start_with(dataloop::Options::default()).await
}

/// One answer: status, headers, body text.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Checks the gate's error shape and returns its message.
    fn error(&self, status: u16, name: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers["content-type"].to_str().unwrap(),
            "application/json"
        );
        let v = self.json();
        assert_eq!(v["status"], status, "{v}");
        assert_eq!(v["name"], name, "{v}");
        let message = v["message"].as_str().unwrap_or_default().to_string();
        assert!(!message.is_empty(), "{v}");
        message
    }
}

/// A request body and its content type.
enum Body {
    None,
    Json(Value),
    Form(&'static [(&'static str, &'static str)]),
    Raw(Option<&'static str>, Vec<u8>),
}

struct Api {
    http: reqwest::Client,
    base: String,
    gate: String,
}

impl Api {
    fn new(sim: &DataloopSimulator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url.clone(),
            gate: sim.gate_url.clone(),
        }
    }

    async fn send(&self, method: Method, url: String, token: Option<&str>, body: Body) -> Answer {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("content-type", "application/json")
                .body(v.to_string()),
            Body::Form(pairs) => req.form(pairs),
            Body::Raw(ct, bytes) => match ct {
                Some(ct) => req.header("content-type", ct).body(bytes),
                None => req.body(bytes),
            },
        };
        let r = req.send().await.expect("the simulator answers");
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.expect("a body"),
        }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Body) -> Answer {
        self.send(method, format!("{}{path}", self.base), token, body)
            .await
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), Body::None).await
    }

    async fn json(&self, method: Method, path: &str, token: &str, body: Value) -> Answer {
        self.call(method, path, Some(token), Body::Json(body)).await
    }

    async fn login(&self, body: Value) -> Answer {
        self.send(
            Method::POST,
            format!("{}/token?default", self.gate),
            None,
            Body::Json(body),
        )
        .await
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn new_project(api: &Api, token: &str, name: &str) -> String {
    let a = api
        .call(
            Method::POST,
            "/projects",
            Some(token),
            Body::Json(json!({ "name": name })),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["id"].as_str().unwrap().to_string()
}

// ---- auth ------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_tokens_are_checked_signed_and_unexpired() {
    let sim = start().await;
    let api = Api::new(&sim);
    let me = api.get("/users/me", &sim.admin_token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["email"], seed::ADMIN_EMAIL);
    assert_eq!(me.json()["id"], seed::ADMIN_EMAIL);
    assert_eq!(
        api.get("/users/me", &sim.admin_api_key).await.json()["email"],
        seed::ADMIN_EMAIL
    );

    // Missing, malformed, forged, expired, of an unknown user: 401 JSON, never the token.
    let a = api.call(Method::GET, "/orgs", None, Body::None).await;
    a.error(401, "Unauthorized");
    let claims = auth::jwt_claims(&sim.admin_token).unwrap();
    let forged = auth::unsigned_jwt(&Value::Object(claims));
    let expired = sim.issue_token(seed::ADMIN_EMAIL, Duration::ZERO);
    let ghost = sim.issue_token("ghost@orgops.example", Duration::from_secs(600));
    for (token, message) in [
        ("not-a-jwt", "jwt malformed"),
        (forged.as_str(), "invalid signature"),
        (expired.as_str(), "jwt expired"),
        (ghost.as_str(), "invalid token"),
    ] {
        let a = api.get("/orgs", token).await;
        assert_eq!(a.error(401, "Unauthorized"), message);
        assert!(!a.text.contains(token));
    }
    // Any casing of the scheme and header name.
    let r = reqwest::Client::new()
        .get(format!("{}/orgs", api.base))
        .header("Authorization", format!("bearer {}", sim.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Unknown paths need a token first, as at the gate; with one they are a JSON 404.
    api.call(Method::GET, "/nope", None, Body::None)
        .await
        .error(401, "Unauthorized");
    api.get("/nope", &sim.admin_token)
        .await
        .error(404, "NotFound");
    let a = api
        .send(
            Method::GET,
            format!("{}/elsewhere", api.gate),
            None,
            Body::None,
        )
        .await;
    a.error(404, "NotFound");
}

#[tokio::test]
async fn token_logins_carry_email_and_exp_and_refresh() {
    let sim = start_with(dataloop::Options {
        token_lifetime: Duration::from_secs(90),
        ..Default::default()
    })
    .await;
    let api = Api::new(&sim);
    let a = api
        .login(
            json!({"username": "Admin@Orgops.example", "password": seed::ADMIN_PASSWORD,
                      "type": "user_credentials"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    let id_token = v["id_token"].as_str().unwrap();
    let claims = auth::jwt_claims(id_token).unwrap();
    assert_eq!(claims["email"], seed::ADMIN_EMAIL);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 90, "the configured lifetime");
    for k in ["sub", "iss", "aud", "name"] {
        assert!(claims.contains_key(k), "{k}");
    }
    assert_eq!(v["expires_in"], 90);
    assert_eq!(api.get("/users/me", id_token).await.status, 200);
    // The access token is not a gate bearer (dtlpy uses the id token).
    let access = v["access_token"].as_str().unwrap();
    assert_eq!(api.get("/users/me", access).await.status, 401);
    assert!(!a.text.contains(seed::ADMIN_PASSWORD));

    let refresh = v["refresh_token"].as_str().unwrap();
    let r = api
        .login(json!({"type": "refresh_token", "refresh_token": refresh}))
        .await;
    assert_eq!(r.status, 200);
    let renewed = r.json()["id_token"].as_str().unwrap().to_string();
    assert_ne!(renewed, id_token);
    assert_eq!(api.get("/users/me", &renewed).await.status, 200);
    // The refresh token stays usable (dtlpy keeps it).
    assert_eq!(
        api.login(json!({"type": "refresh_token", "refresh_token": refresh}))
            .await
            .status,
        200
    );

    for bad in [
        json!({"username": seed::ADMIN_EMAIL, "password": "wrong", "type": "user_credentials"}),
        json!({"username": "ghost@orgops.example", "password": "x", "type": "user_credentials"}),
        json!({"username": seed::ADMIN_EMAIL, "type": "user_credentials"}),
        json!({"type": "refresh_token", "refresh_token": "nope"}),
    ] {
        let a = api.login(bad).await;
        a.error(401, "Unauthorized");
        assert!(!a.text.contains("wrong"));
    }
    api.login(json!({"type": "password"}))
        .await
        .error(400, "BadRequest");
    // Logins are not writes.
    assert_eq!(sim.total_writes(), 0);
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime() {
    let sim = start_with(dataloop::Options {
        token_lifetime: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let api = Api::new(&sim);
    let t = sim.admin_token.clone();
    assert_eq!(api.get("/orgs", &t).await.status, 200);
    // Expiry is a time: let the one-second token pass its `exp`.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        api.get("/orgs", &t).await.error(401, "Unauthorized"),
        "jwt expired"
    );
    let a = api
        .login(
            json!({"username": seed::USER_EMAIL, "password": seed::USER_PASSWORD,
                      "type": "user_credentials"}),
        )
        .await;
    let fresh = a.json()["id_token"].as_str().unwrap().to_string();
    assert_eq!(api.get("/users/me", &fresh).await.status, 200);
}

// ---- errors ----------------------------------------------------------------------------

#[tokio::test]
async fn every_error_is_json_with_status_name_and_message() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (a, u) = (sim.admin_token.as_str(), sim.user_token.as_str());
    api.get("/orgs/6b1f0000-0000-4000-8000-000000000000", a)
        .await
        .error(404, "NotFound");
    api.get("/projects/6b1f0000-0000-4000-8000-000000000000", a)
        .await
        .error(404, "NotFound");
    api.json(
        Method::PATCH,
        &format!("/orgs/{T}/plan"),
        a,
        json!({"plan": "gold"}),
    )
    .await
    .error(400, "BadRequest");
    api.json(
        Method::PATCH,
        &format!("/orgs/{T}/plan"),
        u,
        json!({"plan": "freemium"}),
    )
    .await
    .error(403, "Forbidden");
    api.json(
        Method::POST,
        "/orgs",
        a,
        json!({"name": "new org", "account": "x"}),
    )
    .await
    .error(403, "Forbidden");
    api.call(
        Method::DELETE,
        &format!("/orgs/{TARGET}"),
        Some(a),
        Body::None,
    )
    .await
    .error(500, "InternalServerError");
    api.json(
        Method::POST,
        &format!("/orgs/{T}/members"),
        a,
        json!({"emails": [seed::USER_EMAIL], "role": "member"}),
    )
    .await
    .error(409, "Conflict");
    api.call(
        Method::POST,
        "/groups",
        Some(a),
        Body::Raw(Some("application/json"), b"{\"name\": ".to_vec()),
    )
    .await
    .error(400, "BadRequest");
    api.call(
        Method::POST,
        "/groups",
        Some(a),
        Body::Raw(Some("text/plain"), b"name".to_vec()),
    )
    .await
    .error(415, "UnsupportedMediaType");
    api.json(Method::POST, "/groups", a, json!({"orgId": T}))
        .await
        .error(400, "BadRequest");
    // The plan stayed.
    assert_eq!(
        api.get(&format!("/orgs/{T}"), a).await.json()["plan"],
        "premium"
    );
}

// ---- organizations, plans, members ------------------------------------------------------

#[tokio::test]
async fn orgs_show_their_members_account_and_plan_and_only_to_members() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (a, u) = (sim.admin_token.as_str(), sim.user_token.as_str());
    let orgs = api.get("/orgs", a).await.json();
    assert_eq!(ids(&orgs), vec![T, TARGET]);
    let t = &orgs[0];
    for k in [
        "id",
        "name",
        "plan",
        "account",
        "owner",
        "creator",
        "members",
        "groups",
        "integrations",
        "createdAt",
        "updatedAt",
    ] {
        assert!(t.get(k).is_some(), "{k} in {t}");
    }
    assert!(t.get("cache").is_none(), "internal state is not served");
    assert_eq!(t["account"]["org"], T);
    assert!(
        t["createdAt"].as_i64().unwrap() > 1_600_000_000_000,
        "epoch ms"
    );
    let members: Vec<&str> = t["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert!(members.contains(&seed::USER_EMAIL));
    assert!(
        !members.contains(&seed::INVITED_EMAIL),
        "accepted members only"
    );
    // The plain user sees the template only, and not the target.
    assert_eq!(ids(&api.get("/orgs", u).await.json()), vec![T]);
    api.get(&format!("/orgs/{TARGET}"), u)
        .await
        .error(403, "Forbidden");
    // Names stay unique.
    api.json(
        Method::PATCH,
        &format!("/orgs/{TARGET}"),
        a,
        json!({"name": seed::TEMPLATE_ORG_NAME}),
    )
    .await
    .error(409, "Conflict");
    let renamed = api
        .json(
            Method::PATCH,
            &format!("/orgs/{TARGET}"),
            a,
            json!({"name": "tenant-a"}),
        )
        .await;
    assert_eq!(renamed.json()["name"], "tenant-a");
    assert_eq!(sim.org_id("tenant-a").as_deref(), Some(TARGET));
    assert_eq!(
        sim.writes("orgs"),
        Some(WriteCounts {
            creates: 0,
            updates: 1,
            deletes: 0
        })
    );
}

#[tokio::test]
async fn plans_need_a_superuser() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let path = format!("/orgs/{TARGET}/plan");
    let r = api
        .json(Method::PATCH, &path, a, json!({"plan": "premium"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["plan"], "premium");
    sim.set_superuser(seed::ADMIN_EMAIL, false).unwrap();
    api.json(Method::PATCH, &path, a, json!({"plan": "freemium"}))
        .await
        .error(403, "Forbidden");
    assert_eq!(
        api.get(&format!("/orgs/{TARGET}"), a).await.json()["plan"],
        "premium"
    );
    // Still the owner: everything else goes on.
    assert_eq!(
        api.get(&format!("/orgs/{TARGET}/members"), a).await.status,
        200
    );
    assert_eq!(sim.writes("orgs").unwrap().updates, 1);
    assert_eq!(sim.total_writes(), 2, "both requests count, one write");
}

#[tokio::test]
async fn invitations_are_pending_until_accepted_then_members_by_email() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let members = format!("/orgs/{TARGET}/members");
    let added = api
        .json(
            Method::POST,
            &members,
            a,
            json!({"emails": ["New.Person@Example.com"], "role": "admin"}),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.text);
    let row = added.json()[0].clone();
    let invite_id = row["id"].as_str().unwrap().to_string();
    assert!(orgops::simulator::kit::ids::is_uuid(&invite_id));
    assert_eq!(row["status"], "pending");
    assert_eq!(row["inviteEmail"], "new.person@example.com");
    assert_eq!(row["org"], TARGET);

    let list = api.get(&members, a).await.json();
    let pending = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == invite_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(pending["email"], Value::Null);
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["role"], "admin");

    // A second add of the same address (any case) is a 409 and writes nothing.
    let before = sim.writes("members").unwrap();
    api.json(
        Method::POST,
        &members,
        a,
        json!({"emails": ["new.person@example.COM"], "role": "member"}),
    )
    .await
    .error(409, "Conflict");
    assert_eq!(sim.writes("members").unwrap(), before);

    // The role of an invitation changes by its address.
    let patched = api
        .json(
            Method::PATCH,
            &members,
            a,
            json!({"email": "new.person@example.com", "role": "worker"}),
        )
        .await;
    assert_eq!(patched.json()[0]["role"], "worker");

    // Accepted: an active member whose id is the e-mail.
    sim.accept_invitation(TARGET, "new.person@example.com")
        .unwrap();
    assert!(
        sim.accept_invitation(TARGET, "new.person@example.com")
            .is_err()
    );
    let list = api.get(&members, a).await.json();
    let active = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "new.person@example.com")
        .unwrap()
        .clone();
    assert_eq!(active["id"], "new.person@example.com");
    assert_eq!(active["status"], "active");
    assert_eq!(active["role"], "worker");
    assert!(!ids(&list).contains(&invite_id));
    let org = api.get(&format!("/orgs/{TARGET}"), a).await.json();
    assert!(ids(&org["members"]).contains(&"new.person@example.com".to_string()));

    // Removal by e-mail; an invitation by its id; unknown ids are 404s.
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("{members}/new.person@example.com"),
            Some(a),
            Body::None
        )
        .await
        .status,
        204
    );
    let again = api
        .json(
            Method::POST,
            &members,
            a,
            json!({"emails": ["x@example.com"], "role": "member"}),
        )
        .await
        .json();
    let x = again[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("{members}/{x}"),
            Some(a),
            Body::None
        )
        .await
        .status,
        204
    );
    api.call(
        Method::DELETE,
        &format!("{members}/{x}"),
        Some(a),
        Body::None,
    )
    .await
    .error(404, "NotFound");
    assert_eq!(
        ids(&api.get(&members, a).await.json()),
        vec![seed::ADMIN_EMAIL]
    );
    // The org's owner stays.
    api.call(
        Method::DELETE,
        &format!("{members}/{}", seed::ADMIN_EMAIL),
        Some(a),
        Body::None,
    )
    .await
    .error(400, "BadRequest");
    api.json(
        Method::PATCH,
        &members,
        a,
        json!({"email": seed::ADMIN_EMAIL, "role": "member"}),
    )
    .await
    .error(400, "BadRequest");
    for bad in [
        json!({"emails": [], "role": "member"}),
        json!({"emails": ["not-an-address"], "role": "member"}),
        json!({"emails": ["a@b.example"], "role": "boss"}),
        json!({"emails": "a@b.example", "role": "member"}),
    ] {
        api.json(Method::POST, &members, a, bad)
            .await
            .error(400, "BadRequest");
    }
}

#[tokio::test]
async fn org_roles_decide_who_reads_and_who_manages() {
    let sim = start().await;
    let api = Api::new(&sim);
    let bob = sim.issue_token("bob@orgops.example", Duration::from_secs(600));
    let dave = sim.issue_token("dave@orgops.example", Duration::from_secs(600));
    let user = sim.user_token.as_str();
    let members = format!("/orgs/{T}/members");
    // A member reads, a worker does not; neither manages.
    assert_eq!(api.get(&members, user).await.status, 200);
    api.get(&members, &dave).await.error(403, "Forbidden");
    assert_eq!(api.get(&format!("/orgs/{T}"), &dave).await.status, 200);
    api.json(
        Method::POST,
        &members,
        user,
        json!({"emails": ["z@example.com"], "role": "member"}),
    )
    .await
    .error(403, "Forbidden");
    // An admin manages, but hands out no owner role.
    let ok = api
        .json(
            Method::POST,
            &members,
            &bob,
            json!({"emails": ["z@example.com"], "role": "member"}),
        )
        .await;
    assert_eq!(ok.status, 200);
    api.json(
        Method::POST,
        &members,
        &bob,
        json!({"emails": ["y@example.com"], "role": "owner"}),
    )
    .await
    .error(403, "Forbidden");
    // Workers create no projects.
    let dave_me = json!({"org": T});
    assert_eq!(
        api.json(Method::POST, "/users/me", &dave, dave_me)
            .await
            .status,
        200
    );
    api.call(
        Method::POST,
        "/projects",
        Some(&dave),
        Body::Form(&[("name", "nope")]),
    )
    .await
    .error(403, "Forbidden");
}

#[tokio::test]
async fn cache_actions_reach_ready_and_polls_are_not_writes() {
    let sim = start_with(dataloop::Options {
        cache_pending_polls: 2,
        ..Default::default()
    })
    .await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let body = json!({"org": {"id": TARGET, "name": seed::TARGET_ORG_NAME},
                      "runner": {"podType": "high"}});
    let call = |mode: &'static str, service: &'static str| {
        let path = format!("/services/{service}?mode={mode}");
        let body = body.clone();
        let api = &api;
        async move { api.json(Method::POST, &path, a, body).await }
    };
    assert_eq!(call("get", "fs-cache").await.json()["state"], "NONE");
    assert_eq!(
        call("apply-filestore", "fs-cache").await.json()["state"],
        "PENDING"
    );
    let writes = sim.total_writes();
    // Two polls answer PENDING, as configured, then READY.
    assert_eq!(call("get", "fs-cache").await.json()["state"], "PENDING");
    assert_eq!(call("get", "fs-cache").await.json()["state"], "PENDING");
    assert_eq!(call("get", "fs-cache").await.json()["state"], "READY");
    assert_eq!(call("get", "fs-cache").await.json()["state"], "READY");
    assert_eq!(sim.total_writes(), writes, "polls are reads");
    assert_eq!(call("apply", "fs-cache").await.status, 200);
    assert_eq!(call("apply", "cache").await.status, 204);
    let org = &sim.objects("orgs", TARGET).unwrap()[0];
    assert_eq!(
        org["cache"],
        json!({"filestore": true, "volume": true, "cache": true, "podType": "high"})
    );
    assert_eq!(call("destroy", "fs-cache").await.json()["state"], "NONE");
    assert_eq!(call("destroy", "cache").await.status, 204);
    // dtlpy's enum modes as Python >= 3.11 formats them are no wire modes.
    call("CacheAction.APPLY-filestore", "fs-cache")
        .await
        .error(400, "BadRequest");
    let user = sim.user_token.as_str();
    api.json(
        Method::POST,
        "/services/fs-cache?mode=get",
        user,
        body.clone(),
    )
    .await
    .error(403, "Forbidden");
}

// ---- integrations ----------------------------------------------------------------------

#[tokio::test]
async fn integration_options_are_write_only() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let path = format!("/orgs/{TARGET}/integrations");
    const SECRET: &str = "s3cr3t-value-never-served";
    let created = api
        .json(
            Method::POST,
            &path,
            a,
            json!({"type": "s3", "name": "tenant-s3",
                   "options": {"key": "AKIATENANT", "secret": SECRET},
                   "metadata": {"provider": "aws", "authMethod": "keys"}}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let v = created.json();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["org"], TARGET);
    let meta: Vec<(&str, &str)> = v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        meta,
        vec![
            ("status", "active"),
            ("authMethod", "keys"),
            ("provider", "aws")
        ]
    );
    let patched = api
        .json(
            Method::PATCH,
            &format!("{path}?reloadServices=true"),
            a,
            json!({"integrationId": id, "name": "tenant-s3-renamed",
                   "credentials": {"type": "s3", "options": {"key": "AKIA2", "secret": "rotated-secret-xyz"}}}),
        )
        .await;
    assert_eq!(patched.json()["name"], "tenant-s3-renamed");
    let mut served = vec![created.text, patched.text];
    for p in [
        path.clone(),
        format!("{path}/{id}"),
        format!("/orgs/{TARGET}"),
    ] {
        let r = api.get(&p, a).await;
        assert_eq!(r.status, 200);
        served.push(r.text);
    }
    for text in &served {
        assert!(
            !text.contains(SECRET) && !text.contains("rotated-secret-xyz"),
            "{text}"
        );
        assert!(!text.contains("\"options\""), "{text}");
    }
    assert_eq!(
        sim.integration_options(&id),
        Some(json!({"key": "AKIA2", "secret": "rotated-secret-xyz"}))
    );
    api.json(
        Method::PATCH,
        &path,
        a,
        json!({"integrationId": id, "credentials": {"type": "gcs", "options": {"content": "x"}}}),
    )
    .await
    .error(400, "BadRequest");
    api.json(
        Method::POST,
        &path,
        a,
        json!({"type": "s3", "name": "no-options"}),
    )
    .await
    .error(400, "BadRequest");
    api.json(
        Method::POST,
        &path,
        a,
        json!({"type": "ftp", "name": "x", "options": {"k": "v"}}),
    )
    .await
    .error(400, "BadRequest");
    // Integrations of another org are not found through this one.
    let template_one = sim.objects("integrations", T).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.get(&format!("{path}/{template_one}"), a)
        .await
        .error(404, "NotFound");
    // Deleting answers the rest.
    let rest = api
        .call(Method::DELETE, &format!("{path}/{id}"), Some(a), Body::None)
        .await;
    assert_eq!(rest.status, 200);
    assert_eq!(rest.json(), json!([]));
    assert_eq!(sim.integration_options(&id), None);
}

// ---- projects, drivers, ontologies, recipes, datasets -------------------------------------

#[tokio::test]
async fn projects_land_in_the_active_org_and_move_with_their_drivers() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let p = api
        .call(
            Method::POST,
            "/projects",
            Some(a),
            Body::Form(&[("name", "Tenant project")]),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let p = p.json();
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["org"], json!({"id": T, "name": seed::TEMPLATE_ORG_NAME}));
    assert_eq!(p["systemProject"], false);
    assert_eq!(p["contributors"], json!([seed::ADMIN_EMAIL]));
    assert_eq!(p["role"], "owner");

    // A driver on an integration of the project's org, its payload flat, its credentials
    // dropped.
    let s3 = sim
        .objects("integrations", T)
        .unwrap()
        .into_iter()
        .find(|i| i["type"] == "s3")
        .unwrap();
    let d = api
        .json(
            Method::POST,
            "/drivers",
            a,
            json!({"integrationId": s3["id"], "integrationType": "s3", "name": "d1",
                   "metadata": {"system": {"projectId": pid}}, "type": "s3",
                   "payload": {"bucketName": "b", "region": "r", "storageClass": "", "path": "",
                               "authentication": {"secret": "payload-secret"}},
                   "allowExternalDelete": true, "creator": "someone@else.example"}),
        )
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert!(!d.text.contains("payload-secret"));
    let d = d.json();
    assert_eq!(
        (
            &d["bucketName"],
            &d["region"],
            &d["creator"],
            &d["projectId"]
        ),
        (
            &json!("b"),
            &json!("r"),
            &json!(seed::ADMIN_EMAIL),
            &json!(pid)
        )
    );
    assert!(d.get("payload").is_none());

    // Moving needs the new org's management too, then takes contributors and drivers along.
    let user = sim.user_token.as_str();
    api.call(
        Method::PATCH,
        &format!("/projects/{pid}/org"),
        Some(user),
        Body::Form(&[("org_id", TARGET)]),
    )
    .await
    .error(403, "Forbidden");
    let moved = api
        .call(
            Method::PATCH,
            &format!("/projects/{pid}/org"),
            Some(a),
            Body::Form(&[("org_id", TARGET)]),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.json()["org"]["id"], TARGET);
    assert_eq!(
        ids(&Value::Array(sim.objects("drivers", TARGET).unwrap())),
        vec![d["id"].as_str().unwrap()]
    );
    let moved_members: Vec<Value> = sim
        .objects("project_members", TARGET)
        .unwrap()
        .into_iter()
        .filter(|m| m["projectId"] == pid.as_str())
        .collect();
    assert_eq!(moved_members.len(), 1);
    let target_projects = api.get(&format!("/orgs/{TARGET}/projects"), a).await.json();
    assert!(ids(&target_projects).contains(&pid));
    let by_name = api.get("/projects/Tenant%20project/name", a).await;
    assert_eq!(ids(&by_name.json()), vec![pid.clone()]);
    api.get("/projects/No%20such/name", a)
        .await
        .error(404, "NotFound");

    // A driver must use an integration of its project's org.
    api.json(
        Method::POST,
        "/drivers",
        a,
        json!({"integrationId": s3["id"], "name": "d2", "type": "s3",
               "metadata": {"system": {"projectId": pid}}, "payload": {"bucketName": "b"}}),
    )
    .await
    .error(400, "BadRequest");

    // The system project neither moves nor goes.
    let system = sim
        .objects("projects", T)
        .unwrap()
        .into_iter()
        .find(|p| p["systemProject"] == true)
        .unwrap();
    let sid = system["id"].as_str().unwrap();
    api.call(
        Method::DELETE,
        &format!("/projects/{sid}"),
        Some(a),
        Body::None,
    )
    .await
    .error(400, "BadRequest");
    // Deleting a project takes its drivers.
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/projects/{pid}"),
            Some(a),
            Body::None
        )
        .await
        .status,
        204
    );
    assert!(sim.objects("drivers", TARGET).unwrap().is_empty());
    assert_eq!(
        sim.writes("projects"),
        Some(WriteCounts {
            creates: 1,
            updates: 1,
            deletes: 1
        }),
        "create, move, delete"
    );
    assert_eq!(
        sim.writes("drivers"),
        Some(WriteCounts {
            creates: 1,
            updates: 0,
            deletes: 0
        }),
        "moved and deleted with their project, by the gate"
    );
    assert_eq!(sim.writes("project_members"), Some(WriteCounts::default()));
}

#[tokio::test]
async fn project_members_and_groups() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let pid = new_project(&api, a, "Members").await;
    let path = format!("/projects/{pid}/members/carol@orgops.example");
    let added = api
        .json(Method::POST, &path, a, json!({"role": "annotationManager"}))
        .await;
    let rows = added.json();
    let carol = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "carol@orgops.example")
        .unwrap();
    assert_eq!(carol["role"], "annotationManager");
    assert_eq!(carol["membershipType"], "member");
    assert_eq!(carol["membershipEntityId"], pid.as_str());
    api.json(Method::POST, &path, a, json!({"role": "annotator"}))
        .await
        .error(409, "Conflict");
    api.json(Method::PATCH, &path, a, json!({"role": "developer"}))
        .await
        .error(400, "BadRequest");
    let patched = api
        .json(Method::PATCH, &path, a, json!({"role": "engineer"}))
        .await;
    assert_eq!(patched.status, 200);
    // An engineer writes the project's objects but manages no members.
    let carol_token = sim.issue_token("carol@orgops.example", Duration::from_secs(600));
    api.json(
        Method::POST,
        &format!("/projects/{pid}/members/alice@orgops.example"),
        &carol_token,
        json!({"role": "annotator"}),
    )
    .await
    .error(403, "Forbidden");
    let o = api
        .json(
            Method::POST,
            "/ontologies",
            &carol_token,
            json!({"projectIds": [pid], "roots": [], "title": "by carol"}),
        )
        .await;
    assert_eq!(o.status, 200, "{}", o.text);
    let left = api
        .call(Method::DELETE, &path, Some(a), Body::None)
        .await
        .json();
    assert_eq!(
        left.as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec![seed::ADMIN_EMAIL]
    );
    api.call(Method::DELETE, &path, Some(a), Body::None)
        .await
        .error(404, "NotFound");

    // Groups: created in the org, given a role in the project.
    let g = api
        .json(
            Method::POST,
            "/groups",
            a,
            json!({"name": "Copied group", "orgId": T}),
        )
        .await
        .json();
    let gid = g["id"].as_str().unwrap();
    assert_eq!(g["projects"], json!([]));
    let add = api
        .json(
            Method::POST,
            &format!("/groups/{gid}/members"),
            a,
            json!({"user_id": "alice@orgops.example"}),
        )
        .await;
    assert_eq!(add.status, 200);
    api.json(
        Method::POST,
        &format!("/groups/{gid}/members"),
        a,
        json!({"user_id": seed::INVITED_EMAIL}),
    )
    .await
    .error(400, "BadRequest");
    let sub = format!("/projects/{pid}/subgroups/{gid}");
    let set = api
        .json(Method::POST, &sub, a, json!({"role": "annotator"}))
        .await;
    assert_eq!(set.json()[0]["role"], "annotator");
    api.json(Method::POST, &sub, a, json!({"role": "annotator"}))
        .await
        .error(409, "Conflict");
    assert_eq!(
        api.get(&format!("/groups/{gid}"), a).await.json()["projects"],
        json!([pid])
    );
    // Deleting the group takes its project roles.
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/groups/{gid}"),
            Some(a),
            Body::None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        api.get(&format!("/projects/{pid}/subgroups"), a)
            .await
            .json(),
        json!([])
    );
}

#[tokio::test]
async fn ontologies_and_recipes_page_by_offset() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let pid = new_project(&api, a, "Paging").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let o = api
            .json(
                Method::POST,
                "/ontologies",
                a,
                json!({"projectIds": [pid], "title": format!("o{i}"), "attributes": [],
                       "roots": [{"value": {"tag": "A", "color": "#000000"},
                                  "children": [{"value": {"tag": "A.B"}, "children": []}]}]}),
            )
            .await;
        assert_eq!(o.status, 200, "{}", o.text);
        let o = o.json();
        assert_eq!(o["metadata"]["system"]["projectIds"], json!([pid]));
        made.push(o["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    for page in 0..4 {
        let r = api
            .get(
                &format!("/ontologies?pageOffset={page}&pageSize=2&projects={pid}"),
                a,
            )
            .await
            .json();
        assert_eq!(r["totalItemsCount"], 5);
        assert_eq!(r["totalPagesCount"], 3);
        assert_eq!(r["hasNextPage"], page < 2, "page {page}");
        seen.extend(ids(&r["items"]));
    }
    assert_eq!(seen, made);
    let two = api
        .get(&format!("/ontologies?ids={},{}", made[1], made[3]), a)
        .await
        .json();
    assert_eq!(ids(&two["items"]), vec![made[1].clone(), made[3].clone()]);
    api.get("/ontologies?pageSize=0", a)
        .await
        .error(400, "BadRequest");
    api.get("/ontologies?pageOffset=-1", a)
        .await
        .error(400, "BadRequest");

    // Recipes: dtlpy's query has a literal `&&`.
    for (i, ontology) in made.iter().take(3).enumerate() {
        let r = api
            .json(
                Method::POST,
                "/recipes",
                a,
                json!({"title": format!("r{i}"), "projectIds": [pid], "ontologyIds": [ontology],
                       "uiSettings": {"allowObjectIdAutoAssign": true, "studioV2App": true}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let page = api
        .get(
            &format!("/recipes?projects={pid}&&pageOffset=1&pageSize=2"),
            a,
        )
        .await
        .json();
    assert_eq!(page["totalItemsCount"], 3);
    assert_eq!(page["hasNextPage"], false);
    assert_eq!(page["items"][0]["title"], "r2");
    api.json(
        Method::POST,
        "/recipes",
        a,
        json!({"title": "bad", "projectIds": [pid], "ontologyIds": ["nope"]}),
    )
    .await
    .error(400, "BadRequest");
    api.json(
        Method::POST,
        "/recipes",
        a,
        json!({"title": "bad", "projectIds": []}),
    )
    .await
    .error(400, "BadRequest");
    // Another org's user sees none of it.
    let dave = sim.issue_token("dave@orgops.example", Duration::from_secs(600));
    let none = api
        .get(&format!("/ontologies?projects={pid}"), &dave)
        .await
        .json();
    assert_eq!(none["totalItemsCount"], 0);
    api.get(&format!("/ontologies/{}", made[0]), &dave)
        .await
        .error(403, "Forbidden");
}

#[tokio::test]
async fn datasets_are_queried_in_pages() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let pid = new_project(&api, a, "Datasets").await;
    let mut made = Vec::new();
    for i in 0..3 {
        let d = api
            .json(
                Method::POST,
                "/datasets",
                a,
                json!({"name": format!("ds{i}"), "projects": [pid], "createDefaultRecipe": i == 0}),
            )
            .await;
        assert_eq!(d.status, 200, "{}", d.text);
        made.push(d.json());
    }
    assert_eq!(
        made[0]["metadata"]["system"]["recipes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(made[1]["metadata"]["system"]["recipes"], json!([]));
    // The default recipe and its ontology are the gate's doing: one client write each time.
    assert_eq!(sim.writes("datasets").unwrap().creates, 3);
    assert_eq!(sim.writes("recipes"), Some(WriteCounts::default()));
    assert_eq!(sim.writes("ontologies"), Some(WriteCounts::default()));
    assert_eq!(
        sim.objects("recipes", T).unwrap().len(),
        5,
        "four seeded, one default"
    );
    let query = |page: usize| {
        json!({"filter": {"$and": [{"hidden": {"$ne": true}}]}, "page": page, "pageSize": 2,
               "resource": "datasets", "context": {"projects": [pid]}})
    };
    let writes = sim.total_writes();
    let first = api
        .json(Method::POST, "/datasets/query", a, query(0))
        .await
        .json();
    assert_eq!(first["totalItemsCount"], 3);
    assert_eq!(first["hasNextPage"], true);
    let second = api
        .json(Method::POST, "/datasets/query", a, query(1))
        .await
        .json();
    assert_eq!(second["hasNextPage"], false);
    assert_eq!(ids(&second["items"]), vec![made[2]["id"].as_str().unwrap()]);
    assert_eq!(sim.total_writes(), writes, "queries are reads");
    let by_name = api
        .json(
            Method::POST,
            "/datasets/query",
            a,
            json!({"filter": {"$and": [{"name": "ds1"}]}, "page": 0, "pageSize": 1000,
                   "context": {"projects": [pid]}}),
        )
        .await
        .json();
    assert_eq!(
        ids(&by_name["items"]),
        vec![made[1]["id"].as_str().unwrap()]
    );
}

// ---- the handle --------------------------------------------------------------------------

#[tokio::test]
async fn the_handle_counts_reads_and_edits_behind_the_api() {
    let sim = start().await;
    assert_eq!(sim.vendor(), "dataloop");
    assert!(sim.base_url().ends_with("/api/v1"));
    assert_eq!(sim.org_ids(seed::TEMPLATE_ORG_NAME), vec![T]);
    for kind in [
        "projects",
        "groups",
        "integrations",
        "drivers",
        "ontologies",
        "recipes",
        "members",
    ] {
        assert!(sim.kinds().contains(&kind), "{kind}");
        assert!(!sim.objects(kind, T).unwrap().is_empty(), "{kind}");
        assert_eq!(sim.writes(kind), Some(WriteCounts::default()));
    }
    assert!(sim.objects("nope", T).is_err());
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    for path in [
        format!("/orgs/{T}"),
        format!("/orgs/{T}/members"),
        format!("/orgs/{T}/groups"),
        format!("/orgs/{T}/integrations"),
        format!("/orgs/{T}/projects"),
        "/projects".to_string(),
        "/ontologies".to_string(),
        "/recipes".to_string(),
        "/drivers".to_string(),
    ] {
        assert_eq!(api.get(&path, a).await.status, 200, "{path}");
    }
    assert_eq!(sim.total_writes(), 0, "reads write nothing");

    // Hand edits are seen by the API and count nothing.
    let g = sim.objects("groups", T).unwrap()[0].clone();
    let gid = g["id"].as_str().unwrap();
    sim.patch_object("groups", gid, &json!({"name": "Renamed by hand"}))
        .unwrap();
    assert_eq!(
        api.get(&format!("/groups/{gid}"), a).await.json()["name"],
        "Renamed by hand"
    );
    sim.delete_object("groups", gid).unwrap();
    api.get(&format!("/groups/{gid}"), a)
        .await
        .error(404, "NotFound");
    assert_eq!(sim.total_writes(), 0);
    assert!(sim.delete_object("groups", gid).is_err());

    // Injected faults reach dtlpy's retry list.
    sim.set_faults(FaultSpec::parse("5xx=1").unwrap());
    assert_eq!(api.get("/orgs", a).await.status, 503);
    sim.set_faults(FaultSpec::none());
    assert_eq!(api.get("/orgs", a).await.status, 200);
}

// ---- hostile input -------------------------------------------------------------------------

#[tokio::test]
async fn huge_garbage_and_odd_requests_are_4xx_and_the_server_keeps_serving() {
    let sim = start_with(dataloop::Options {
        serve: ServeOptions::default(),
        ..Default::default()
    })
    .await;
    let api = Api::new(&sim);
    let a = sim.admin_token.as_str();
    let huge = vec![b'{'; dataloop::MAX_BODY + 1];
    api.call(
        Method::POST,
        "/groups",
        Some(a),
        Body::Raw(Some("application/json"), huge),
    )
    .await
    .error(413, "PayloadTooLarge");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = api
        .call(
            Method::POST,
            "/ontologies",
            Some(a),
            Body::Raw(Some("application/json"), deep.into_bytes()),
        )
        .await;
    r.error(400, "BadRequest");
    assert!(r.text.len() < 500);
    for garbage in [
        vec![0xff, 0xfe, 0x00, 0x01],
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\"string\"".to_vec(),
        b"12".to_vec(),
    ] {
        for path in [
            "/groups".to_string(),
            format!("/orgs/{T}/members"),
            format!("/orgs/{T}/integrations"),
            "/projects".to_string(),
            "/drivers".to_string(),
            "/ontologies".to_string(),
            "/recipes".to_string(),
            "/datasets".to_string(),
            "/datasets/query".to_string(),
            "/apiKeys".to_string(),
        ] {
            let r = api
                .call(
                    Method::POST,
                    &path,
                    Some(a),
                    Body::Raw(Some("application/json"), garbage.clone()),
                )
                .await;
            assert!(
                (400..500).contains(&r.status),
                "{path}: {} {}",
                r.status,
                r.text
            );
            assert_eq!(r.json()["status"], r.status);
        }
    }
    // A form whose bytes are not UTF-8 still parses (lossily) and is judged on its fields.
    let r = api
        .call(
            Method::POST,
            "/projects",
            Some(a),
            Body::Raw(
                Some("application/x-www-form-urlencoded"),
                b"name=%ff%fe".to_vec(),
            ),
        )
        .await;
    assert!(r.status == 200 || r.status == 400, "{}", r.text);
    // Odd paths.
    for path in [
        "/orgs/%",
        "/orgs/%ff",
        "/orgs//members",
        "/orgs/..%2F..",
        "/%00",
    ] {
        let r = api.get(path, a).await;
        assert!((400..500).contains(&r.status), "{path}: {}", r.status);
    }
    // A huge bearer token: 401, not echoed.
    let long = "x".repeat(8000);
    let r = api.get("/orgs", &long).await;
    assert_eq!(r.status, 401);
    assert!(!r.text.contains(&long));
    assert_eq!(api.get("/orgs", a).await.status, 200);
}

fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
        Just(json!(T)),
        Just(json!(seed::USER_EMAIL)),
        Just(json!("owner")),
        Just(json!("s3")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("orgId".to_string()),
                    Just("emails".to_string()),
                    Just("role".to_string()),
                    Just("email".to_string()),
                    Just("type".to_string()),
                    Just("options".to_string()),
                    Just("metadata".to_string()),
                    Just("projectIds".to_string()),
                    Just("ontologyIds".to_string()),
                    Just("roots".to_string()),
                    Just("payload".to_string()),
                    Just("integrationId".to_string()),
                    Just("plan".to_string()),
                    Just("labelsNode".to_string()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random JSON to the write routes: an answer always comes (a success or a JSON 4xx),
    /// never echoes the token, and the server keeps serving.
    #[test]
    fn random_json_never_breaks_the_simulator(body in hostile_json(), which in 0usize..12) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sim = start().await;
            let api = Api::new(&sim);
            let t = sim.admin_token.as_str();
            let onto = sim.objects("ontologies", T).unwrap()[0]["id"].as_str().unwrap().to_string();
            let recipe = sim.objects("recipes", T).unwrap()[0]["id"].as_str().unwrap().to_string();
            let (method, path) = [
                (Method::POST, format!("/orgs/{T}/members")),
                (Method::PATCH, format!("/orgs/{T}/members")),
                (Method::PATCH, format!("/orgs/{T}/plan")),
                (Method::POST, format!("/orgs/{T}/integrations")),
                (Method::PATCH, format!("/orgs/{T}/integrations")),
                (Method::POST, "/groups".to_string()),
                (Method::POST, "/drivers".to_string()),
                (Method::POST, "/ontologies".to_string()),
                (Method::PUT, format!("/ontologies/{onto}?system=true")),
                (Method::PATCH, format!("/ontologies/{onto}/labels")),
                (Method::PATCH, format!("/recipes/{recipe}?system=true")),
                (Method::POST, "/services/fs-cache?mode=apply-filestore".to_string()),
            ][which].clone();
            let a = api.json(method, &path, t, body).await;
            prop_assert!(a.status == 200 || (400..500).contains(&a.status), "{} {}", a.status, a.text);
            if a.status != 200 {
                prop_assert_eq!(&a.json()["status"], &json!(a.status));
            }
            prop_assert!(!a.text.contains(t));
            prop_assert_eq!(api.get(&format!("/orgs/{T}"), t).await.status, 200);
            Ok(())
        })?;
    }
}
