//! The OpenLattice simulator over loopback HTTP: authentication, content types and methods as
//! the real server answers them, ErrorsDTO bodies, organization and role deduplication, the
//! side effects of creating an organization, members and grants, the [`SimulatorHandle`] every
//! cross-vendor test uses (for OpenLattice and Rossum), and hostile input.

use std::time::Duration;

use orgops::simulator::kit::{SimulatorHandle, WriteCounts};
use orgops::simulator::openlattice::{self, OpenLatticeSimulator, seed};
use orgops::simulator::rossum::{Admin, RossumSimulator, Seed};
use orgops::simulator::{FaultSpec, ServeOptions};
use proptest::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

const ALICE: &str = "google-oauth2|104729384756102938475";
const CAROL: &str = "samlp|orgops|carol";

async fn start() -> OpenLatticeSimulator {
    OpenLatticeSimulator::start(
        0,
        openlattice::Options {
            id_seed: Some(7),
            ..Default::default()
        },
    )
    .await
    .expect("simulator starts")
}

/// One answer: status, headers, body text and (when it parses) JSON.
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

    /// The ErrorsDTO's single error: (type, code, message).
    fn error(&self) -> (String, u64, String) {
        let v = self.json();
        let e = &v["errors"][0];
        assert_eq!(v["errors"].as_array().map(Vec::len), Some(1), "{v}");
        (
            e["error"]["type"].as_str().unwrap_or_default().to_string(),
            e["error"]["code"].as_u64().unwrap_or_default(),
            e["message"].as_str().unwrap_or_default().to_string(),
        )
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

/// A request body and its content type.
enum Body {
    None,
    Json(Value),
    Text(&'static str, String),
    Raw(Option<&'static str>, Vec<u8>),
}

impl Api {
    fn new(sim: &OpenLatticeSimulator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.api_url(),
        }
    }

    /// Calls below `/datastore/principals`.
    fn principals(sim: &OpenLatticeSimulator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.principals_url(),
        }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Body) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("content-type", "application/json")
                .body(v.to_string()),
            Body::Text(ct, s) => req.header("content-type", ct).body(s),
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

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), Body::None).await
    }
}

fn org_body(id: Option<&str>, name: &str, title: &str) -> Value {
    let mut v = json!({
        "apps": [], "connections": [], "description": "d", "emailDomains": ["x.example"],
        "grants": {}, "members": [], "metadataEntitySetIds": {},
        "principal": {"id": name, "type": "ORGANIZATION"}, "roles": [], "title": title,
    });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

fn role_body(org: &str, name: &str, title: &str) -> Value {
    json!({
        "@class": "com.openlattice.organization.roles.Role",
        "organizationId": org,
        "principal": {"type": "ROLE", "id": name},
        "title": title,
        "description": "role",
    })
}

const NEW_ORG: &str = "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

#[tokio::test]
async fn every_call_needs_a_bearer_jwt_and_the_answer_never_echoes_it() {
    let sim = start().await;
    let api = Api::new(&sim);
    let a = api.call(Method::GET, "", None, Body::None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error().0, "tokenError");

    for bad in ["not-a-jwt", "a.b.c", "secret-looking-value"] {
        let a = api.call(Method::GET, "", Some(bad), Body::None).await;
        assert_eq!(a.status, 401, "{bad}");
        assert!(!a.text.contains(bad), "{}", a.text);
    }
    // A JWT without a subject names nobody.
    let no_sub = orgops::simulator::kit::auth::unsigned_jwt(&json!({"iss": "x"}));
    assert_eq!(api.get("", &no_sub).await.status, 401);

    // Expiry is checked (the signature is not).
    let expired = sim.issue_token(seed::ADMIN_SUBJECT, Some(Duration::ZERO));
    let a = api.get("", &expired).await;
    assert_eq!((a.status, a.error().0.as_str()), (401, "tokenNeedsRefresh"));
    let fresh = sim.issue_token(seed::ADMIN_SUBJECT, Some(Duration::from_secs(3600)));
    assert_eq!(api.get("", &fresh).await.status, 200);

    // Authentication comes before routing, as with Spring Security.
    let a = api
        .call(Method::GET, "/nowhere/at/all", None, Body::None)
        .await;
    assert_eq!(a.status, 401);
    let a = api.get("/nowhere/at/all", &sim.admin_token).await;
    assert_eq!((a.status, a.text.as_str()), (404, ""));
}

#[tokio::test]
async fn collection_routes_match_with_and_without_a_trailing_slash() {
    let sim = start().await;
    let api = Api::new(&sim);
    let bare = api.get("", &sim.admin_token).await;
    let slash = api.get("/", &sim.admin_token).await;
    assert_eq!((bare.status, slash.status), (200, 200));
    assert_eq!(bare.json(), slash.json());
    assert_eq!(bare.json().as_array().map(Vec::len), Some(1));
    let role_members = format!("/{}/principals/members/", seed::TEMPLATE_ORG_ID);
    assert_eq!(api.get(&role_members, &sim.admin_token).await.status, 200);
    let created = api
        .call(
            Method::POST,
            "/",
            Some(&sim.admin_token),
            Body::Json(org_body(None, "slash-org", "Slash")),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
}

#[tokio::test]
async fn content_types_and_methods_are_the_servers() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let org = seed::TEMPLATE_ORG_ID;
    let title = format!("/{org}/title");

    // Title: text/plain only; a JSON string (what the generated Python client sends) is a 415.
    let a = api
        .call(Method::PUT, &title, Some(t), Body::Json(json!("New")))
        .await;
    assert_eq!(a.status, 415);
    assert_eq!(a.headers["accept"], "text/plain");
    let a = api
        .call(
            Method::PUT,
            &title,
            Some(t),
            Body::Raw(None, b"New".to_vec()),
        )
        .await;
    assert_eq!(a.status, 415, "no content type is no text/plain");
    assert_eq!(
        api.get(&format!("/{org}"), t).await.json()["title"],
        "Template org"
    );

    let a = api
        .call(
            Method::PUT,
            &title,
            Some(t),
            Body::Text("text/plain;charset=UTF-8", "\"Quoted\" title".into()),
        )
        .await;
    assert_eq!(
        (a.status, a.text.as_str()),
        (200, ""),
        "void answers are empty"
    );
    assert!(a.headers.get("content-type").is_none());
    assert_eq!(
        api.get(&format!("/{org}"), t).await.json()["title"],
        "\"Quoted\" title",
        "text bodies are stored as sent"
    );

    // Role description is PUT; the OpenAPI spec's POST is a 405 naming PUT.
    let role = sim.with_state(|st| st.admin_role_id(org)).unwrap();
    let desc = format!("/{org}/principals/roles/{role}/description");
    let a = api
        .call(
            Method::POST,
            &desc,
            Some(t),
            Body::Text("text/plain", "x".into()),
        )
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "PUT");

    // JSON endpoints want application/json.
    for (method, path) in [
        (Method::POST, String::new()),
        (Method::POST, "/roles".to_string()),
        (Method::POST, format!("/{org}/email-domains")),
        (Method::PUT, format!("/{org}/principals/roles/{role}/grant")),
    ] {
        let a = api
            .call(
                method.clone(),
                &path,
                Some(t),
                Body::Text("text/plain", "[]".into()),
            )
            .await;
        assert_eq!(a.status, 415, "{method} {path}");
        assert_eq!(a.headers["accept"], "application/json");
    }
    assert_eq!(
        sim.total_writes(),
        8,
        "every mutating request counts, refused or not"
    );
    assert_eq!(sim.writes("organizations").unwrap().updates, 1);

    // Wrong method on a known path: 405 listing the allowed ones.
    let a = api
        .call(Method::PATCH, &format!("/{org}"), Some(t), Body::None)
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "GET, DELETE");
}

#[tokio::test]
async fn errors_are_errors_dtos_with_the_servers_statuses() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let unknown = "0f8fad5b-d9cb-469f-a165-70867728950e";

    let a = api.get(&format!("/{unknown}"), t).await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.json(),
        json!({"errors": [{"error": {"type": "illegalState", "code": 500},
                           "message": format!("Organization [{unknown}] does not exist.")}]})
    );
    for path in [
        format!("/{unknown}/principals/members"),
        format!("/{unknown}/principals/roles"),
        format!("/{unknown}/email-domains"),
    ] {
        assert_eq!(api.get(&path, t).await.status, 500, "{path}");
    }

    let a = api.get("/not-a-uuid", t).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error().0, "illegalArgument");

    // Missing permissions: 401 with a `forbidden` (code 403) body.
    let a = api
        .call(
            Method::DELETE,
            &format!("/{}", seed::TEMPLATE_ORG_ID),
            Some(&sim.user_token),
            Body::None,
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error().0, "forbidden");
    assert_eq!(a.error().1, 403);
    let stranger = sim.issue_token("auth0|stranger", None);
    let a = api
        .get(&format!("/{}", seed::TEMPLATE_ORG_ID), &stranger)
        .await;
    assert_eq!((a.status, a.error().0.as_str()), (401, "forbidden"));
    assert_eq!(
        api.get("", &stranger).await.json(),
        json!([]),
        "a stranger lists nothing"
    );

    // An unknown role is refused like an unreadable one (READ is checked first).
    let a = api
        .get(
            &format!("/{}/principals/roles/{unknown}", seed::TEMPLATE_ORG_ID),
            t,
        )
        .await;
    assert_eq!((a.status, a.error().0.as_str()), (401, "forbidden"));

    // Unreadable bodies are 400s that say where, not what.
    let a = api
        .call(
            Method::POST,
            "",
            Some(t),
            Body::Raw(
                Some("application/json"),
                b"{\"title\": \"secret-ish".to_vec(),
            ),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(!a.error().2.contains("secret-ish"), "{}", a.text);
}

#[tokio::test]
async fn creating_an_org_honours_the_id_and_sets_up_admin_role_and_creator() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let a = api
        .call(
            Method::POST,
            "",
            Some(t),
            Body::Json(org_body(Some(NEW_ORG), "tenant-a", "Tenant A")),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!(NEW_ORG), "a bare JSON string");
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(
        (
            sim.writes("organizations").unwrap(),
            sim.writes("roles").unwrap().creates,
            sim.writes("members").unwrap().creates,
            sim.writes("role_members").unwrap().creates,
        ),
        (
            WriteCounts {
                creates: 1,
                updates: 0,
                deletes: 0
            },
            1,
            1,
            1
        )
    );

    let org = api.get(&format!("/{NEW_ORG}"), t).await.json();
    assert_eq!(org["id"], NEW_ORG);
    assert_eq!(
        org["principal"],
        json!({"type": "ORGANIZATION", "id": "tenant-a"})
    );
    assert_eq!(org["emailDomains"], json!(["x.example"]));
    assert_eq!(
        org["members"],
        json!([{"type": "USER", "id": seed::ADMIN_SUBJECT}])
    );
    let admin_role = org["adminRoleAclKey"][1].as_str().unwrap().to_string();
    assert_eq!(org["adminRoleAclKey"][0], NEW_ORG);
    assert_eq!(
        org["roles"],
        json!([{
            "@class": "com.openlattice.organization.roles.Role",
            "id": admin_role,
            "organizationId": NEW_ORG,
            "principal": {"type": "ROLE", "id": format!("{NEW_ORG}|tenant-a - ADMIN")},
            "title": "tenant-a - ADMIN",
            "description": "Administrators of this organization",
            "aclKey": [NEW_ORG, admin_role],
        }])
    );
    assert_eq!(
        org["securablePrincipal"]["@class"],
        "com.openlattice.organization.OrganizationPrincipal"
    );
    let members = api
        .get(&format!("/{NEW_ORG}/principals/members"), t)
        .await
        .json();
    let roles: Vec<&str> = members[0]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["principal"]["type"] == "ROLE" && r["aclKey"][0] == NEW_ORG)
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(
        roles,
        vec![admin_role.as_str()],
        "the creator holds the admin role"
    );

    // The metadata listing carries the principal id used to find an org again.
    let meta = api.get("/metadata", t).await.json();
    assert!(
        meta.as_array()
            .unwrap()
            .iter()
            .any(|m| m["principal"]["id"] == "tenant-a" && m["id"] == NEW_ORG)
    );
}

#[tokio::test]
async fn org_creation_deduplicates_on_the_principal_id_and_checks_the_body() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let create = |body: Value| {
        let api = &api;
        async move { api.call(Method::POST, "", Some(t), Body::Json(body)).await }
    };
    assert_eq!(
        create(org_body(Some(NEW_ORG), "tenant-b", "B"))
            .await
            .status,
        200
    );

    // Same name, another id: 400, nothing created (a lost response is found again by id).
    let a = create(org_body(None, "tenant-b", "B again")).await;
    assert_eq!(a.status, 400);
    assert!(a.error().2.contains("probably already exists"));
    // Same id, another name: 500.
    let a = create(org_body(Some(NEW_ORG), "tenant-c", "C")).await;
    assert_eq!((a.status, a.error().0.as_str()), (500, "illegalState"));
    // The template's name is taken as well.
    assert_eq!(
        create(org_body(None, seed::TEMPLATE_ORG_NAME, "T"))
            .await
            .status,
        400
    );
    assert_eq!(sim.writes("organizations").unwrap().creates, 1);

    let mut python_shape = org_body(None, "tenant-d", "D");
    python_shape["emails"] = python_shape["emailDomains"].take();
    python_shape.as_object_mut().unwrap().remove("emailDomains");
    assert_eq!(create(python_shape).await.status, 400, "unknown key");
    let mut no_members = org_body(None, "tenant-d", "D");
    no_members.as_object_mut().unwrap().remove("members");
    assert_eq!(create(no_members).await.status, 400);
    let mut user_principal = org_body(None, "tenant-d", "D");
    user_principal["principal"]["type"] = json!("USER");
    assert_eq!(create(user_principal).await.status, 400);
    let mut connections = org_body(None, "tenant-d", "D");
    connections["connections"] = json!(["google-oauth2"]);
    let as_user = api
        .call(
            Method::POST,
            "",
            Some(&sim.user_token),
            Body::Json(connections.clone()),
        )
        .await;
    assert_eq!(as_user.status, 400, "only admins set auto-enrollments");
    assert_eq!(create(connections).await.status, 200);
    assert_eq!(sim.writes("organizations").unwrap().creates, 2);
}

#[tokio::test]
async fn roles_need_their_class_deduplicate_on_name_and_the_admin_role_stays() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let org = seed::TEMPLATE_ORG_ID;
    let post = |body: Value| {
        let api = &api;
        async move {
            api.call(Method::POST, "/roles", Some(t), Body::Json(body))
                .await
        }
    };

    let mut no_class = role_body(org, &format!("{org}|Auditor"), "Auditor");
    no_class.as_object_mut().unwrap().remove("@class");
    assert_eq!(post(no_class).await.status, 400);
    let mut user = role_body(org, &format!("{org}|Auditor"), "Auditor");
    user["principal"]["type"] = json!("USER");
    let a = post(user).await;
    assert_eq!(
        (a.status, a.error().2.as_str()),
        (400, "Role principal type must be ROLE")
    );

    let a = post(role_body(org, &format!("{org}|Auditor"), "Auditor")).await;
    assert_eq!(a.status, 200);
    let id = a.json().as_str().unwrap().to_string();
    let roles_before = api.get(&format!("/{org}/principals/roles"), t).await.json();
    assert_eq!(roles_before.as_array().unwrap().len(), 5);

    // Same role name again: nothing is created, and the request's (new) id is answered.
    let mut again = role_body(org, &format!("{org}|Auditor"), "Auditor 2");
    again["id"] = json!("0f8fad5b-d9cb-469f-a165-70867728950e");
    let a = post(again).await;
    assert_eq!(
        (a.status, a.json()),
        (200, json!("0f8fad5b-d9cb-469f-a165-70867728950e"))
    );
    assert_eq!(sim.writes("roles").unwrap().creates, 1);
    assert_eq!(
        api.get(&format!("/{org}/principals/roles"), t).await.json(),
        roles_before
    );
    let a = api
        .get(
            &format!("/{org}/principals/roles/0f8fad5b-d9cb-469f-a165-70867728950e"),
            t,
        )
        .await;
    assert_eq!(a.status, 401, "that id names no role");

    // Roles of an unknown org: 500; a non-owner: 401.
    let unknown = role_body("0f8fad5b-d9cb-469f-a165-70867728950f", "elsewhere|X", "X");
    assert_eq!(post(unknown).await.status, 500);
    let a = api
        .call(
            Method::POST,
            "/roles",
            Some(&sim.user_token),
            Body::Json(role_body(org, &format!("{org}|Mine"), "Mine")),
        )
        .await;
    assert_eq!(a.status, 401);

    // Grants are stored per type on the organization.
    let grant = format!("/{org}/principals/roles/{id}/grant");
    let put_grant = |g: Value| {
        let api = &api;
        let grant = grant.clone();
        async move { api.call(Method::PUT, &grant, Some(t), Body::Json(g)).await }
    };
    assert_eq!(
        put_grant(json!({"grantType": "Automatic", "mappings": []}))
            .await
            .status,
        200
    );
    assert_eq!(
        put_grant(json!({"grantType": "EmailDomain", "mappings": ["not-an-email"]}))
            .await
            .status,
        400
    );
    assert_eq!(
        put_grant(json!({"grantType": "Attributes", "mappings": ["x"]}))
            .await
            .status,
        400,
        "an Attributes grant needs its attribute"
    );
    assert_eq!(
        put_grant(json!({"grantType": "Sometimes", "mappings": []}))
            .await
            .status,
        400
    );
    let org_now = api.get(&format!("/{org}"), t).await.json();
    assert_eq!(
        org_now["grants"][&id],
        json!({"Automatic": {"grantType": "Automatic", "attribute": "", "mappings": []}})
    );

    // An Automatic grant gives the role to every new member.
    let carol = format!("/{org}/principals/members/{}", CAROL.replace('|', "%7C"));
    assert_eq!(
        api.call(Method::PUT, &carol, Some(t), Body::None)
            .await
            .status,
        200
    );
    let holders: Vec<Value> = api
        .get(&format!("/{org}/principals/roles/{id}/members"), t)
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].clone())
        .collect();
    assert_eq!(holders, vec![json!(CAROL)]);

    // The admin role cannot be deleted; another role can, with its grants to users.
    let admin = sim.with_state(|st| st.admin_role_id(org)).unwrap();
    let a = api
        .call(
            Method::DELETE,
            &format!("/{org}/principals/roles/{admin}"),
            Some(t),
            Body::None,
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.error().2.contains("admin role"));
    let a = api
        .call(
            Method::DELETE,
            &format!("/{org}/principals/roles/{id}"),
            Some(t),
            Body::None,
        )
        .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    assert!(sim.writes("role_members").unwrap().deletes >= 1);
}

#[tokio::test]
async fn members_and_role_members_are_idempotent_and_decode_user_ids() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let org = seed::TEMPLATE_ORG_ID;
    let carol = format!("/{org}/principals/members/{}", CAROL.replace('|', "%7C"));
    let before = sim.total_writes();
    for _ in 0..2 {
        let a = api.call(Method::PUT, &carol, Some(t), Body::None).await;
        assert_eq!((a.status, a.text.as_str()), (200, ""));
    }
    assert_eq!(sim.total_writes(), before + 2, "both requests count");
    assert_eq!(
        sim.writes("members").unwrap().creates,
        1,
        "one member created"
    );

    let analyst = sim
        .objects("roles", org)
        .unwrap()
        .into_iter()
        .find(|r| r["title"] == "Analyst")
        .and_then(|r| r["id"].as_str().map(str::to_string))
        .unwrap();
    // Unencoded `|` works too.
    let grant = format!("/{org}/principals/roles/{analyst}/members/{CAROL}");
    for _ in 0..2 {
        assert_eq!(
            api.call(Method::PUT, &grant, Some(t), Body::None)
                .await
                .status,
            200
        );
    }
    assert_eq!(sim.writes("role_members").unwrap().creates, 1);
    let users: Vec<String> = api
        .get(&format!("/{org}/principals/roles/{analyst}/members/"), t)
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["user_id"].as_str().map(str::to_string))
        .collect();
    assert!(users.contains(&CAROL.to_string()) && users.contains(&ALICE.to_string()));

    // Removing the member takes their roles in the org with them; removing twice is fine.
    for _ in 0..2 {
        assert_eq!(
            api.call(Method::DELETE, &carol, Some(t), Body::None)
                .await
                .status,
            200
        );
    }
    let members = api
        .get(&format!("/{org}/principals/members"), t)
        .await
        .json();
    assert!(
        !members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["profile"]["user_id"] == CAROL)
    );
    assert!(
        !sim.objects("role_members", org)
            .unwrap()
            .iter()
            .any(|rm| rm["principal"]["id"] == CAROL)
    );

    // A user the server never saw: 500 on add (the server's Auth0 map lookup), and a role
    // grant to them is a 404.
    let ghost = format!("/{org}/principals/members/auth0%7Cghost");
    assert_eq!(
        api.call(Method::PUT, &ghost, Some(t), Body::None)
            .await
            .status,
        500
    );
    let a = api
        .call(
            Method::PUT,
            &format!("/{org}/principals/roles/{analyst}/members/auth0%7Cghost"),
            Some(t),
            Body::None,
        )
        .await;
    assert_eq!(a.status, 404);

    // A member may remove themselves without owning the org.
    let self_remove = format!(
        "/{org}/principals/members/{}",
        seed::USER_SUBJECT.replace('|', "%7C")
    );
    let a = api
        .call(
            Method::DELETE,
            &self_remove,
            Some(&sim.user_token),
            Body::None,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        api.get(&format!("/{org}"), &sim.user_token).await.status,
        401,
        "no longer a member, no longer a reader"
    );
}

#[tokio::test]
async fn email_domains_are_sets_changed_by_admins_only() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let org = seed::TEMPLATE_ORG_ID;
    let path = format!("/{org}/email-domains");
    let domains = |v: Value| {
        let mut d: Vec<String> = serde_json::from_value(v).unwrap();
        d.sort();
        d
    };
    assert_eq!(
        domains(api.get(&path, t).await.json()),
        vec!["orgops.example", "tenants.orgops.example"]
    );
    let send = |m: Method, p: String, b: Body, tok: &str| {
        let api = &api;
        let tok = tok.to_string();
        async move { api.call(m, &p, Some(&tok), b).await.status }
    };
    assert_eq!(
        send(
            Method::PUT,
            path.clone(),
            Body::Json(json!(["a.example", "a.example"])),
            t
        )
        .await,
        200
    );
    assert_eq!(domains(api.get(&path, t).await.json()), vec!["a.example"]);
    assert_eq!(
        send(
            Method::POST,
            path.clone(),
            Body::Json(json!(["b.example"])),
            t
        )
        .await,
        200
    );
    assert_eq!(
        send(Method::PUT, format!("{path}/c.example"), Body::None, t).await,
        200
    );
    // DELETE carries its JSON body.
    assert_eq!(
        send(
            Method::DELETE,
            path.clone(),
            Body::Json(json!(["a.example"])),
            t
        )
        .await,
        200
    );
    assert_eq!(
        send(Method::DELETE, format!("{path}/b.example"), Body::None, t).await,
        200
    );
    assert_eq!(domains(api.get(&path, t).await.json()), vec!["c.example"]);
    assert_eq!(
        send(Method::POST, path.clone(), Body::Json(json!({"a": 1})), t).await,
        400
    );

    // Non-admins: 401; the owner-only GET is 401 for a plain member too.
    let u = sim.user_token.clone();
    assert_eq!(
        send(
            Method::POST,
            path.clone(),
            Body::Json(json!(["x.example"])),
            &u
        )
        .await,
        401
    );
    assert_eq!(
        send(Method::PUT, format!("{path}/x.example"), Body::None, &u).await,
        401
    );
    assert_eq!(api.get(&path, &u).await.status, 401);
    assert_eq!(domains(api.get(&path, t).await.json()), vec!["c.example"]);
}

#[tokio::test]
async fn the_handle_counts_reads_and_hand_edits_openlattice_objects() {
    let sim = start().await;
    let api = Api::new(&sim);
    let handle: &dyn SimulatorHandle = &sim;
    assert_eq!(handle.vendor(), "openlattice");
    assert_eq!(handle.base_url(), sim.base_url);
    assert_eq!(handle.total_writes(), 0, "seeding counts nothing");
    let org = handle.org_id("Template org").expect("found by title");
    assert_eq!(org, seed::TEMPLATE_ORG_ID);
    assert_eq!(
        handle.org_id(seed::TEMPLATE_ORG_NAME).as_deref(),
        Some(org.as_str())
    );
    assert_eq!(handle.org_id("nope"), None);
    assert_eq!(
        handle.kinds(),
        vec!["organizations", "roles", "members", "role_members"]
    );
    let roles = handle.objects("roles", &org).unwrap();
    assert_eq!(roles.len(), 4);
    assert!(handle.objects("queues", &org).is_err());
    assert_eq!(handle.writes("queues"), None);

    // Drift by hand: a renamed role and a deleted member, both visible through the API, no
    // write counted.
    let analyst = roles.iter().find(|r| r["title"] == "Analyst").unwrap();
    let analyst_id = analyst["id"].as_str().unwrap();
    handle
        .patch_object("roles", analyst_id, &json!({"title": "Drifted"}))
        .unwrap();
    let got = api
        .get(
            &format!("/{org}/principals/roles/{analyst_id}"),
            &sim.admin_token,
        )
        .await
        .json();
    assert_eq!(got["title"], "Drifted");
    let member = format!("{org}/{ALICE}");
    handle.delete_object("members", &member).unwrap();
    assert!(matches!(
        handle.delete_object("members", &member),
        Err(orgops::simulator::kit::HandError::NotFound { .. })
    ));
    assert!(
        handle
            .patch_object("roles", analyst_id, &json!(["x"]))
            .is_err()
    );
    let members = api
        .get(&format!("/{org}/principals/members"), &sim.admin_token)
        .await
        .json();
    assert_eq!(members.as_array().unwrap().len(), 3);
    assert_eq!(handle.total_writes(), 0);
    assert_eq!(handle.writes("roles"), Some(WriteCounts::default()));

    // Faults are the transport's.
    handle.set_faults(FaultSpec::parse("5xx=1").unwrap());
    assert_eq!(api.get("", &sim.admin_token).await.status, 503);
    handle.set_faults(FaultSpec::none());
    assert_eq!(api.get("", &sim.admin_token).await.status, 200);
    assert!(
        handle
            .stats()
            .faults
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test]
async fn the_handle_works_for_rossum_too() {
    let seed = Seed::template().unwrap();
    let admin = Admin {
        username: "admin@orgops.example".into(),
        password: "pw".into(),
        create_key: "ck".into(),
    };
    let sim = RossumSimulator::start(0, &seed, &[admin], ServeOptions::default())
        .await
        .unwrap();
    let handle: Box<dyn SimulatorHandle> = Box::new(sim);
    assert_eq!(handle.vendor(), "rossum");
    let org = handle.org_id("Template org").expect("template org");
    let queues = handle.objects("queues", &org).unwrap();
    assert!(!queues.is_empty());
    let id = queues[0]["id"].to_string();
    handle
        .patch_object("queues", &id, &json!({"name": "Drifted queue"}))
        .unwrap();
    let after = handle.objects("queues", &org).unwrap();
    assert!(after.iter().any(|q| q["name"] == "Drifted queue"));
    assert!(handle.objects("roles", &org).is_err());
    assert!(handle.objects("queues", "not-a-number").is_err());
    // Hand edits are not API writes; Rossum counts per kind, and knows its kinds.
    assert_eq!(handle.writes("queues"), Some(WriteCounts::default()));
    assert_eq!(handle.writes("roles"), None);
    assert_eq!(handle.total_writes(), 0);
    handle.delete_object("queues", &id).unwrap();
    assert_eq!(
        handle.objects("queues", &org).unwrap().len(),
        queues.len() - 1
    );
}

#[tokio::test]
async fn deleting_an_org_removes_everything_in_it() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let org = seed::TEMPLATE_ORG_ID;
    let a = api
        .call(Method::DELETE, &format!("/{org}"), Some(t), Body::None)
        .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    for kind in ["organizations", "roles", "members", "role_members"] {
        assert!(sim.objects(kind, org).unwrap().is_empty(), "{kind}");
    }
    assert_eq!(api.get(&format!("/{org}"), t).await.status, 500);
    assert_eq!(
        api.call(Method::DELETE, &format!("/{org}"), Some(t), Body::None)
            .await
            .status,
        500,
        "a second delete finds no org"
    );
    // The name is free again.
    let a = api
        .call(
            Method::POST,
            "",
            Some(t),
            Body::Json(org_body(Some(org), seed::TEMPLATE_ORG_NAME, "Again")),
        )
        .await;
    assert_eq!(a.status, 200);
}

// ---- principals: looking people up -------------------------------------------------------

/// The subjects (keys) of a `{ "<userId>": <Auth0 user> }` answer, sorted.
fn subjects(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not a map: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_search_by_email_answers_a_map_of_users_to_any_caller() {
    let sim = start().await;
    let api = Api::principals(&sim);
    let search = |email: &str| json!({ "email": email });
    let user = sim.user_token.as_str();

    let a = api
        .call(
            Method::POST,
            "/users/search",
            None,
            Body::Json(search("alice@orgops.example")),
        )
        .await;
    assert_eq!((a.status, a.error().0.as_str()), (401, "tokenError"));

    // A plain user (not an admin, not an owner) is answered: the server asks for nothing more.
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(user),
            Body::Json(search("Alice@ORGOPS.example")),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(subjects(&v), [ALICE]);
    let alice = &v[ALICE];
    assert_eq!(alice["user_id"], ALICE);
    assert_eq!(alice["email"], "alice@orgops.example");
    assert_eq!(alice["given_name"], "Alice");
    assert_eq!(alice["family_name"], "Analyst");

    // Nobody: an empty map, not an error.
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(user),
            Body::Json(search("nobody@orgops.example")),
        )
        .await;
    assert_eq!((a.status, a.json()), (200, json!({})));
    // Only whole addresses match without a wildcard.
    let a = api
        .call(
            Method::POST,
            "/users/search/",
            Some(user),
            Body::Json(search("alice@orgops")),
        )
        .await;
    assert_eq!((a.status, a.json()), (200, json!({})));

    // The SDK's own example: a wildcard lists everyone of a domain.
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(user),
            Body::Json(search("*@orgops.example")),
        )
        .await;
    let mut all: Vec<String> = seed::USERS.iter().map(|u| u.0.to_string()).collect();
    all.sort();
    assert_eq!(subjects(&a.json()), all);

    // By name, too.
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(user),
            Body::Json(json!({"name": "carol*"})),
        )
        .await;
    assert_eq!(subjects(&a.json()), [CAROL]);

    // Someone added by hand (an Auth0 account in no organization) is found; a caller is too,
    // under the e-mail of their JWT.
    sim.add_user("auth0|dave", "dave@elsewhere.example", "Dave", "Newcomer");
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(user),
            Body::Json(search("DAVE@elsewhere.example")),
        )
        .await;
    assert_eq!(subjects(&a.json()), ["auth0|dave"]);
    let erin = openlattice::token_for("auth0|erin", Some("erin@elsewhere.example"), None);
    assert_eq!(api.get("/users/auth0%7Cerin", &erin).await.status, 200);
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(user),
            Body::Json(search("*@elsewhere.example")),
        )
        .await;
    assert_eq!(subjects(&a.json()), ["auth0|dave", "auth0|erin"]);

    assert_eq!(sim.total_writes(), 0, "searching is a read");
}

#[tokio::test]
async fn search_bodies_content_types_and_methods_are_the_servers() {
    let sim = start().await;
    let api = Api::principals(&sim);
    let t = sim.user_token.as_str();
    for (body, says) in [
        (json!({}), "one of \"email\", \"name\" is required"),
        (
            json!({"email": "a@b.c", "name": "A"}),
            "only one of \"email\", \"name\" are allowed",
        ),
        (json!({"email": " "}), "email cannot be blank"),
        (json!({"name": ""}), "name cannot be blank"),
        (json!({"email": {"$ne": null}}), "String"),
        (json!({"mail": "a@b.c"}), "Unrecognized field"),
        (json!("a@b.c"), "Auth0UserSearchFields"),
    ] {
        let a = api
            .call(
                Method::POST,
                "/users/search",
                Some(t),
                Body::Json(body.clone()),
            )
            .await;
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        let (kind, code, message) = a.error();
        assert_eq!((kind.as_str(), code), ("illegalArgument", 400));
        assert!(message.contains(says), "{body}: {message}");
    }
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(t),
            Body::Raw(Some("application/json"), Vec::new()),
        )
        .await;
    assert_eq!(a.status, 400, "a body is required");
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(t),
            Body::Text("text/plain", "{\"email\":\"a@b.c\"}".into()),
        )
        .await;
    assert_eq!((a.status, a.text.as_str()), (415, ""));
    // GET /users/search is getUser("search"); PUT matches no method of either pattern.
    let a = api.get("/users/search", t).await;
    assert_eq!(a.status, 500);
    assert!(a.error().2.contains("Key search is missing"), "{}", a.text);
    let a = api
        .call(Method::PUT, "/users/search", Some(t), Body::None)
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "POST, GET");
    assert_eq!(api.get("/nowhere", t).await.status, 404);
    assert_eq!(sim.total_writes(), 0);
}

#[tokio::test]
async fn users_are_read_by_id_one_or_many_and_an_unknown_one_is_a_500() {
    let sim = start().await;
    let api = Api::principals(&sim);
    let t = sim.user_token.as_str();
    // `|` percent-encoded (as the Rust client sends it) or raw (as the JS SDK does).
    for path in [
        "/users/google-oauth2%7C104729384756102938475",
        "/users/google-oauth2|104729384756102938475",
    ] {
        let a = api.get(path, t).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        let v = a.json();
        assert_eq!(v["user_id"], ALICE);
        assert_eq!(v["email"], "alice@orgops.example");
        assert_eq!(v["identities"][0]["provider"], "google-oauth2");
    }
    let a = api.get("/users/samlp%7Corgops%7Ccarol", t).await;
    assert_eq!(a.json()["user_id"], CAROL);

    let a = api.get("/users/auth0%7Cnobody", t).await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.error(),
        (
            "otherError".to_string(),
            500,
            "NoSuchElementException: Key auth0|nobody is missing in the map.".to_string()
        )
    );
    let long = "x".repeat(20_000);
    let a = api.get(&format!("/users/{long}"), t).await;
    assert_eq!(a.status, 500);
    assert!(a.text.len() < 1000, "a huge id is not echoed");

    let a = api.get("/users", t).await;
    let mut all: Vec<String> = seed::USERS.iter().map(|u| u.0.to_string()).collect();
    all.sort();
    assert_eq!(subjects(&a.json()), all);
    assert_eq!(api.get("/users/", t).await.json(), a.json());

    let a = api
        .call(
            Method::POST,
            "/users",
            Some(t),
            Body::Json(json!([ALICE, "auth0|nobody", CAROL, ALICE])),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut want = vec![ALICE.to_string(), CAROL.to_string()];
    want.sort();
    assert_eq!(subjects(&a.json()), want);
    let a = api
        .call(
            Method::POST,
            "/users",
            Some(t),
            Body::Json(json!({"ids": []})),
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(sim.total_writes(), 0);
}

#[tokio::test]
async fn hostile_searches_are_answered_quickly_and_harmlessly() {
    let sim = start().await;
    let api = Api::principals(&sim);
    let t = sim.user_token.as_str();
    // Many stars against every user, and a huge value: answered, not echoed, still serving.
    let stars = "*a".repeat(200_000);
    let started = std::time::Instant::now();
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(t),
            Body::Json(json!({ "email": stars })),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(started.elapsed() < Duration::from_secs(20));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(t),
            Body::Raw(Some("application/json"), deep.into_bytes()),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.text.len() < 1000);
    let a = api
        .call(
            Method::POST,
            "/users/search",
            Some(t),
            Body::Json(json!({ "email": "alice@orgops.example" })),
        )
        .await;
    assert_eq!(subjects(&a.json()), [ALICE]);
}

// ---- hostile input ----------------------------------------------------------------------

#[tokio::test]
async fn huge_deep_and_garbage_bodies_are_refused_without_harm() {
    let sim = start().await;
    let api = Api::new(&sim);
    let t = sim.admin_token.as_str();
    let org = seed::TEMPLATE_ORG_ID;
    let huge = vec![b'['; 3 * 1024 * 1024];
    let a = api
        .call(
            Method::POST,
            "",
            Some(t),
            Body::Raw(Some("application/json"), huge),
        )
        .await;
    assert!((400..500).contains(&a.status), "{}", a.status);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let a = api
        .call(
            Method::POST,
            "/roles",
            Some(t),
            Body::Raw(Some("application/json"), deep.into_bytes()),
        )
        .await;
    assert_eq!(a.status, 400);
    let a = api
        .call(
            Method::PUT,
            &format!("/{org}/title"),
            Some(t),
            Body::Raw(Some("text/plain"), vec![0xff, 0xfe, 0x00]),
        )
        .await;
    assert_eq!(a.status, 400);
    let a = api
        .call(
            Method::PUT,
            &format!("/{org}/title"),
            Some(t),
            Body::Raw(Some("text/plain"), Vec::new()),
        )
        .await;
    assert_eq!(a.status, 400, "a body is required");
    // As long as a URI may be (the http crate's limit is 64 KiB).
    let long_user = "x".repeat(60_000);
    let a = api
        .call(
            Method::PUT,
            &format!("/{org}/principals/members/{long_user}"),
            Some(t),
            Body::None,
        )
        .await;
    assert_eq!(a.status, 500, "an unknown user");
    assert!(a.text.len() < 1000, "the answer does not echo a huge id");
    assert_eq!(
        api.get(&format!("/{org}/principals/members/%zz"), t)
            .await
            .status,
        404
    );
    // Still serving, state intact.
    assert_eq!(
        api.get(&format!("/{org}"), t).await.json()["title"],
        "Template org"
    );
}

fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
        Just(json!("ORGANIZATION")),
        Just(json!("ROLE")),
        Just(json!("com.openlattice.organization.roles.Role")),
        Just(json!(seed::TEMPLATE_ORG_ID)),
        Just(json!("Manual")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("principal".to_string()),
                    Just("type".to_string()),
                    Just("title".to_string()),
                    Just("members".to_string()),
                    Just("roles".to_string()),
                    Just("apps".to_string()),
                    Just("organizationId".to_string()),
                    Just("@class".to_string()),
                    Just("grantType".to_string()),
                    Just("mappings".to_string()),
                    "[a-z@]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random JSON to every JSON endpoint: an answer always comes, never echoes the token,
    /// and the server keeps serving.
    #[test]
    fn random_json_never_breaks_the_simulator(body in hostile_json(), which in 0usize..5) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sim = start().await;
            let api = Api::new(&sim);
            let t = sim.admin_token.as_str();
            let org = seed::TEMPLATE_ORG_ID;
            let role = sim.with_state(|st| st.admin_role_id(org)).unwrap();
            let (method, path) = [
                (Method::POST, String::new()),
                (Method::POST, "/roles".to_string()),
                (Method::PUT, format!("/{org}/principals/roles/{role}/grant")),
                (Method::PUT, format!("/{org}/email-domains")),
                (Method::DELETE, format!("/{org}/connections")),
            ][which].clone();
            let a = api.call(method, &path, Some(t), Body::Json(body)).await;
            prop_assert!([200, 400, 401, 500].contains(&a.status), "{} {}", a.status, a.text);
            prop_assert!(!a.text.contains(t));
            prop_assert_eq!(api.get(&format!("/{org}"), t).await.status, 200);
            Ok(())
        })?;
    }
}
