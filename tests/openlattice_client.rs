//! The OpenLattice client on the wire, against a scripted loopback server that answers the way
//! the real server (`OrganizationsController`) does: what it sends (paths, bodies, content
//! types, the JWT) and how it reads the server's answers (500 for an unknown organization,
//! 400 for a taken name, 401 for both a bad JWT and a missing permission); then end to end
//! against the OpenLattice simulator (which the JS SDK drives unchanged).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use orgops::vendors::openlattice::models::{Grant, GrantType, OrganizationCreate};
use orgops::vendors::openlattice::{CreateOutcome, OpenLatticeApi, role_id};
use orgops::vendors::{Credentials, Endpoints, HttpConfig, HttpError, VendorError};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnb29nbGUtb2F1dGgyfDEyMyJ9.c2lnbmF0dXJlLXRlc3Q";

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// One scripted answer: status and body (JSON, or empty when `None`).
struct Answer(u16, Option<Value>);

#[derive(Default)]
struct Script {
    answers: Mutex<Vec<Answer>>,
    seen: Mutex<Vec<Seen>>,
}

impl Script {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn push(&self, answers: impl IntoIterator<Item = Answer>) {
        self.answers.lock().unwrap().extend(answers);
    }
}

/// Serves `script` (answers in order, then `200` with an empty body); returns the client.
async fn serve() -> (OpenLatticeApi, Arc<Script>) {
    let script = Arc::new(Script::default());
    let s = script.clone();
    let app = Router::new().fallback(any(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
                s.seen.lock().unwrap().push(Seen {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    authorization: header("authorization"),
                    content_type: header("content-type"),
                    body: String::from_utf8_lossy(&body).to_string(),
                });
                let next = {
                    let mut a = s.answers.lock().unwrap();
                    if a.is_empty() {
                        Answer(200, None)
                    } else {
                        a.remove(0)
                    }
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
    let creds = Credentials::new(
        "tenants/openlattice-creds",
        [("token".to_string(), SecretString::from(TOKEN.to_string()))].into(),
    );
    let config = HttpConfig {
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(5),
        rate_per_second: 1000,
        ..HttpConfig::default()
    };
    let api = OpenLatticeApi::new(
        Some(&format!("http://{addr}")),
        creds,
        config,
        &Endpoints::default(),
    )
    .unwrap();
    (api, script)
}

fn error(kind: &str, code: u16, message: &str) -> Answer {
    Answer(
        code,
        Some(json!({"errors": [{"error": {"type": kind, "code": code}, "message": message}]})),
    )
}

fn does_not_exist(id: Uuid) -> Answer {
    error(
        "illegalState",
        500,
        &format!("Organization [{id}] does not exist."),
    )
}

const BASE: &str = "/datastore/organizations";

fn org_json(id: Uuid, name: &str) -> Value {
    json!({"id": id, "principal": {"type": "ORGANIZATION", "id": name}, "title": "T",
        "emailDomains": [], "members": [], "roles": [], "apps": [], "connections": [], "grants": {}})
}

#[tokio::test]
async fn an_unknown_organization_is_absent_at_once_and_a_failure_is_retried() {
    let (api, script) = serve().await;
    let id = Uuid::new_v4();
    script.push([does_not_exist(id)]);
    assert_eq!(api.get_org(id).await.unwrap(), None);
    let seen = script.seen();
    assert_eq!(seen.len(), 1, "the 500 meaning 'absent' is not retried");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].uri, format!("{BASE}/{id}"));
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // Any other 500 is a server failure: retried.
    script.push([
        error("otherError", 500, "NullPointerException: boom"),
        Answer(200, Some(org_json(id, "acme"))),
    ]);
    let org = api.get_org(id).await.unwrap().unwrap();
    assert_eq!(org.principal.id, "acme");
    assert_eq!(script.seen().len(), 3);

    // Writes to an unknown organization are NotFound, at once.
    script.push([does_not_exist(id)]);
    let err = api.update_title(id, "x").await.unwrap_err();
    assert!(matches!(err, VendorError::NotFound(_)), "{err}");
    assert_eq!(script.seen().len(), 4);
    // Deleting one is success.
    script.push([does_not_exist(id)]);
    api.delete_org(id).await.unwrap();
    assert_eq!(script.seen()[4].method, "DELETE");
    assert_eq!(script.seen().len(), 5);
}

#[tokio::test]
async fn create_sends_the_js_body_and_a_taken_name_is_resolved_by_metadata() {
    let (api, script) = serve().await;
    let id = orgops::vendors::openlattice::organization_id("uid-1");
    let body = OrganizationCreate::new(id, "acme-prod", "Acme", "d", vec!["acme.com".into()]);

    script.push([Answer(200, Some(json!(id.to_string())))]);
    assert_eq!(
        api.create_org(&body).await.unwrap(),
        CreateOutcome::Created(id)
    );
    let seen = script.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str()),
        ("POST", BASE)
    );
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    let sent: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(sent["id"], json!(id));
    assert_eq!(
        sent["principal"],
        json!({"type": "ORGANIZATION", "id": "acme-prod"})
    );
    assert_eq!(sent["emailDomains"], json!(["acme.com"]));

    // The name is taken (by our own earlier attempt): found by name, with its id.
    let dup = "Unable to create securable principal for organization. This means the organization probably already exists.";
    script.push([
        error("illegalArgument", 400, dup),
        Answer(
            200,
            Some(json!([
                {"@class": "com.openlattice.organization.OrganizationPrincipal", "id": Uuid::new_v4(),
                 "principal": {"type": "ORGANIZATION", "id": "other"}, "title": "O", "aclKey": []},
                {"@class": "com.openlattice.organization.OrganizationPrincipal", "id": id,
                 "principal": {"type": "ORGANIZATION", "id": "acme-prod"}, "title": "Acme", "aclKey": [id]}
            ])),
        ),
    ]);
    assert_eq!(
        api.create_org(&body).await.unwrap(),
        CreateOutcome::Exists(id)
    );
    assert_eq!(script.seen()[2].uri, format!("{BASE}/metadata"));

    // A 400 for something else stays a rejection.
    script.push([
        error("illegalArgument", 400, "Title cannot be blank."),
        Answer(200, Some(json!([]))),
    ]);
    let err = api.create_org(&body).await.unwrap_err();
    assert!(
        matches!(&err, VendorError::Rejected(d) if d.contains("Title cannot be blank.")),
        "{err}"
    );

    // The id is reserved under another name: a rejection, not an unknown outcome.
    script.push([error(
        "illegalState",
        500,
        "Unable to create principal: id already in use",
    )]);
    let before = script.seen().len();
    let err = api.create_org(&body).await.unwrap_err();
    assert!(
        matches!(&err, VendorError::Rejected(d) if d.contains("taken under another name")),
        "{err}"
    );
    assert_eq!(script.seen().len(), before + 1);

    // A 5xx of another kind: the create may have happened.
    script.push([Answer(503, None)]);
    let err = api.create_org(&body).await.unwrap_err();
    assert!(err.is_outcome_unknown(), "{err}");
}

#[tokio::test]
async fn titles_are_text_plain_and_user_ids_are_percent_encoded() {
    let (api, script) = serve().await;
    let org = Uuid::new_v4();
    let role = role_id(org, "Analysts");
    api.update_title(org, "Acme \"Prod\"").await.unwrap();
    api.update_description(org, "Line one\nline two")
        .await
        .unwrap();
    api.update_role_title(org, role, "Analysts 2")
        .await
        .unwrap();
    api.update_role_description(org, role, "Reads")
        .await
        .unwrap();
    api.add_member(org, "google-oauth2|123").await.unwrap();
    api.remove_member(org, "auth0|abc.def").await.unwrap();
    api.add_role_to_member(org, role, "google-oauth2|123")
        .await
        .unwrap();
    api.remove_role_from_member(org, role, "google-oauth2|123")
        .await
        .unwrap();
    api.set_email_domains(org, &["acme.com".into(), "acme.org".into()])
        .await
        .unwrap();
    api.update_role_grant(
        org,
        role,
        &Grant {
            grant_type: GrantType::EmailDomain,
            mappings: vec!["@acme.com".into()],
            attribute: String::new(),
        },
    )
    .await
    .unwrap();
    api.delete_role(org, role).await.unwrap();

    let seen: Vec<_> = script
        .seen()
        .into_iter()
        .map(|s| {
            (
                format!("{} {}", s.method, s.uri),
                s.content_type.unwrap_or_default(),
                s.body,
            )
        })
        .collect();
    let text = "text/plain; charset=utf-8".to_string();
    let json_ct = "application/json".to_string();
    let expected = vec![
        (
            format!("PUT {BASE}/{org}/title"),
            text.clone(),
            "Acme \"Prod\"".to_string(),
        ),
        (
            format!("PUT {BASE}/{org}/description"),
            text.clone(),
            "Line one\nline two".into(),
        ),
        (
            format!("PUT {BASE}/{org}/principals/roles/{role}/title"),
            text.clone(),
            "Analysts 2".into(),
        ),
        (
            format!("PUT {BASE}/{org}/principals/roles/{role}/description"),
            text,
            "Reads".into(),
        ),
        (
            format!("PUT {BASE}/{org}/principals/members/google-oauth2%7C123"),
            String::new(),
            String::new(),
        ),
        (
            format!("DELETE {BASE}/{org}/principals/members/auth0%7Cabc.def"),
            String::new(),
            String::new(),
        ),
        (
            format!("PUT {BASE}/{org}/principals/roles/{role}/members/google-oauth2%7C123"),
            String::new(),
            String::new(),
        ),
        (
            format!("DELETE {BASE}/{org}/principals/roles/{role}/members/google-oauth2%7C123"),
            String::new(),
            String::new(),
        ),
        (
            format!("PUT {BASE}/{org}/email-domains"),
            json_ct.clone(),
            r#"["acme.com","acme.org"]"#.into(),
        ),
        (
            format!("PUT {BASE}/{org}/principals/roles/{role}/grant"),
            json_ct,
            r#"{"attribute":"","grantType":"EmailDomain","mappings":["@acme.com"]}"#.into(),
        ),
        (
            format!("DELETE {BASE}/{org}/principals/roles/{role}"),
            String::new(),
            String::new(),
        ),
    ];
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn roles_are_created_with_their_class_and_a_deterministic_id_and_read_back() {
    let (api, script) = serve().await;
    let org = Uuid::new_v4();
    let id = role_id(org, "Analysts");
    script.push([Answer(200, Some(json!(id)))]);
    assert_eq!(
        api.create_role(org, "Analysts", Some("Reads"))
            .await
            .unwrap(),
        id
    );
    let seen = &script.seen()[0];
    assert_eq!(seen.uri, format!("{BASE}/roles"));
    let sent: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        sent,
        json!({"@class": "com.openlattice.organization.roles.Role", "aclKey": [org, id],
            "description": "Reads", "id": id, "organizationId": org,
            "principal": {"type": "ROLE", "id": format!("{org}|Analysts")}, "title": "Analysts"})
    );
    // Safe to repeat: a lost answer is resent, and the server answers with the same id.
    script.push([Answer(502, None), Answer(200, Some(json!(id)))]);
    assert_eq!(
        api.create_role(org, "Analysts", Some("Reads"))
            .await
            .unwrap(),
        id
    );
    assert_eq!(script.seen().len(), 3);

    script.push([Answer(200, Some(json!([{"@class": "com.openlattice.organization.roles.Role",
        "id": id, "organizationId": org, "principal": {"type": "ROLE", "id": format!("{org}|Analysts")},
        "title": "Analysts", "aclKey": [org, id]}])))]);
    let roles = api.roles(org).await.unwrap();
    assert_eq!(
        (roles[0].id, roles[0].title.as_str()),
        (Some(id), "Analysts")
    );
    assert_eq!(
        script.seen()[3].uri,
        format!("{BASE}/{org}/principals/roles")
    );

    // A role that does not exist: absent (the server's NPE is a 404).
    script.push([error("resourceNotFound", 404, "")]);
    assert_eq!(api.get_role(org, Uuid::new_v4()).await.unwrap(), None);
    // Deleting the admin role is refused.
    script.push([error(
        "illegalArgument",
        400,
        "Role cannot be deleted because it is the organization's admin role.",
    )]);
    let err = api.delete_role(org, id).await.unwrap_err();
    assert!(matches!(err, VendorError::Rejected(_)), "{err}");

    // The server checks permissions on [org, role] before it looks the role up: a role that is
    // gone is a 401 `forbidden`, which the role list tells apart from a real refusal.
    let forbidden = || error("forbidden", 401, "Object [..] is not accessible.");
    let listed = json!([{"@class": "com.openlattice.organization.roles.Role", "id": id,
        "organizationId": org, "principal": {"type": "ROLE", "id": format!("{org}|Analysts")},
        "title": "Analysts", "aclKey": [org, id]}]);
    script.push([forbidden(), Answer(200, Some(json!([])))]);
    api.delete_role(org, id).await.unwrap();
    script.push([forbidden(), Answer(200, Some(json!([])))]);
    assert_eq!(api.get_role(org, id).await.unwrap(), None);
    script.push([forbidden(), Answer(200, Some(listed.clone()))]);
    let err = api.delete_role(org, id).await.unwrap_err();
    assert!(matches!(err, VendorError::Forbidden(_)), "{err}");
    script.push([forbidden(), Answer(200, Some(listed))]);
    let err = api.get_role(org, id).await.unwrap_err();
    assert!(matches!(err, VendorError::Forbidden(_)), "{err}");
    let uris: Vec<_> = script
        .seen()
        .into_iter()
        .rev()
        .take(2)
        .map(|s| s.uri)
        .collect();
    assert_eq!(
        uris,
        [
            format!("{BASE}/{org}/principals/roles"),
            format!("{BASE}/{org}/principals/roles/{id}")
        ]
    );
}

#[tokio::test]
async fn members_are_read_with_their_roles_in_the_org() {
    let (api, script) = serve().await;
    let org = Uuid::new_v4();
    let analysts = role_id(org, "Analysts");
    script.push([Answer(
        200,
        Some(json!([{
            "principal": {"@class": "com.openlattice.authorization.SecurablePrincipal", "id": Uuid::new_v4(),
                "principal": {"type": "USER", "id": "google-oauth2|123"}, "title": "Ada", "aclKey": []},
            "profile": {"user_id": "google-oauth2|123", "email": "ada@example.com", "app_metadata": {}},
            "roles": [
                {"@class": "com.openlattice.organization.roles.Role", "id": analysts, "organizationId": org,
                 "principal": {"type": "ROLE", "id": format!("{org}|Analysts")}, "title": "Analysts",
                 "aclKey": [org, analysts]},
                {"@class": "com.openlattice.organization.OrganizationPrincipal", "id": org,
                 "principal": {"type": "ORGANIZATION", "id": "acme"}, "title": "Acme", "aclKey": [org]}
            ]
        }])),
    )]);
    let members = api.members(org).await.unwrap();
    assert_eq!(members[0].user_id(), "google-oauth2|123");
    let roles: Vec<_> = members[0].roles_in(org).map(|r| r.title.as_str()).collect();
    assert_eq!(roles, ["Analysts"]);
    assert_eq!(
        script.seen()[0].uri,
        format!("{BASE}/{org}/principals/members")
    );

    script.push([Answer(
        200,
        Some(json!([{"user_id": "google-oauth2|123", "email": "ada@example.com"}])),
    )]);
    let users = api.role_members(org, analysts).await.unwrap();
    assert_eq!(users[0].user_id.as_deref(), Some("google-oauth2|123"));
    assert_eq!(
        script.seen()[1].uri,
        format!("{BASE}/{org}/principals/roles/{analysts}/members")
    );

    script.push([Answer(200, Some(json!(["acme.com"])))]);
    assert_eq!(api.email_domains(org).await.unwrap(), ["acme.com"]);
}

#[tokio::test]
async fn a_bad_jwt_names_the_secret_and_a_missing_permission_is_forbidden() {
    let (api, script) = serve().await;
    let org = Uuid::new_v4();
    script.push([error("tokenError", 401, "JWT signature does not match")]);
    let err = api.verify().await.unwrap_err();
    let VendorError::InvalidCredentials { secret, detail } = &err else {
        panic!("{err}");
    };
    assert_eq!(secret, "tenants/openlattice-creds");
    assert!(detail.contains("JWT signature does not match"), "{detail}");
    assert_eq!(err.category(), "CredentialsInvalid");
    assert!(!format!("{err} {err:?}").contains(TOKEN));
    assert_eq!(script.seen()[0].uri, format!("{BASE}/metadata"));

    // Without a body at all, as an authentication filter may answer.
    script.push([Answer(401, None)]);
    let err = api.list_orgs().await.unwrap_err();
    assert!(
        matches!(err, VendorError::InvalidCredentials { .. }),
        "{err}"
    );
    assert_eq!(script.seen()[1].uri, BASE);

    script.push([error(
        "forbidden",
        401,
        &format!("Insufficient permissions to update organization {org}"),
    )]);
    let err = api.set_email_domains(org, &[]).await.unwrap_err();
    assert!(matches!(err, VendorError::Forbidden(_)), "{err}");
    assert!(err.to_string().contains("tenants/openlattice-creds"));
    assert_eq!(script.seen().len(), 3, "not retried");

    // A void answer with a JSON string where a list is expected is a decode error, not a panic.
    script.push([Answer(200, Some(json!("not a list")))]);
    let err = api.roles(org).await.unwrap_err();
    assert!(
        matches!(err, VendorError::Http(HttpError::Decode { .. })),
        "{err}"
    );
}

const PRINCIPALS: &str = "/datastore/principals";

#[tokio::test]
async fn a_search_by_email_posts_the_address_and_keeps_only_exact_matches() {
    let (api, script) = serve().await;
    // What Auth0 may answer: the address in another case, a longer one, one without an
    // e-mail, and (keyed only) a user whose profile lacks its id.
    script.push([Answer(
        200,
        Some(json!({
            "google-oauth2|123": {"user_id": "google-oauth2|123", "email": "ADA@Example.com",
                "name": "Ada Lovelace", "app_metadata": {"roles": ["AuthenticatedUser"]}},
            "auth0|999": {"user_id": "auth0|999", "email": "ada@example.com.evil.example"},
            "samlp|x|y": {"user_id": "samlp|x|y"},
            "auth0|111": {"email": "ada@example.com"}
        })),
    )]);
    let users = api.find_users_by_email("Ada@example.com").await.unwrap();
    let ids: Vec<_> = users
        .iter()
        .map(|u| u.user_id.as_deref().unwrap())
        .collect();
    assert_eq!(ids, ["auth0|111", "google-oauth2|123"]);
    assert_eq!(users[1].name.as_deref(), Some("Ada Lovelace"));
    let seen = script.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, format!("{PRINCIPALS}/users/search"));
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&seen[0].body).unwrap(),
        json!({"email": "Ada@example.com"})
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // Nobody has it: the server answers an empty map.
    script.push([Answer(200, Some(json!({})))]);
    assert!(
        api.find_users_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_empty()
    );

    // A read: a server failure is retried although it is a POST.
    script.push([
        error("otherError", 500, "Auth0Exception: rate limited"),
        Answer(
            200,
            Some(json!({"auth0|1": {"user_id": "auth0|1", "email": "x@example.com"}})),
        ),
    ]);
    assert_eq!(
        api.find_users_by_email("x@example.com")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(script.seen().len(), 4);

    // Search syntax never reaches the server.
    for bad in [
        "*@example.com",
        "a@example.com OR email:*",
        "\"a@b.c\"",
        "nobody",
    ] {
        let err = api.find_users_by_email(bad).await.unwrap_err();
        assert!(matches!(err, VendorError::Rejected(_)), "{bad}: {err}");
    }
    assert_eq!(script.seen().len(), 4);

    // Not a map of users: a decode error, not a panic.
    script.push([Answer(200, Some(json!(["auth0|1"])))]);
    let err = api.find_users_by_email("x@example.com").await.unwrap_err();
    assert!(
        matches!(err, VendorError::Http(HttpError::Decode { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn a_user_is_read_by_encoded_id_and_an_unknown_one_is_absent_at_once() {
    let (api, script) = serve().await;
    script.push([Answer(
        200,
        Some(
            json!({"user_id": "google-oauth2|123", "email": "ada@example.com",
            "given_name": "Ada", "family_name": "Lovelace", "identities": []}),
        ),
    )]);
    let user = api.get_user("google-oauth2|123").await.unwrap().unwrap();
    assert_eq!(user.email.as_deref(), Some("ada@example.com"));
    assert_eq!(user.family_name.as_deref(), Some("Lovelace"));
    let seen = script.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].uri,
        format!("{PRINCIPALS}/users/google-oauth2%7C123")
    );

    // The server's answer for a user it does not know: absent, not retried.
    script.push([error(
        "otherError",
        500,
        "NoSuchElementException: Key auth0|nobody is missing in the map.",
    )]);
    assert_eq!(api.get_user("auth0|nobody").await.unwrap(), None);
    assert_eq!(script.seen().len(), 2);

    // Any other 500 is a server failure: retried.
    script.push([
        error("otherError", 500, "HazelcastException: boom"),
        Answer(200, Some(json!({"user_id": "auth0|x"}))),
    ]);
    let user = api.get_user("auth0|x").await.unwrap().unwrap();
    assert_eq!(user.user_id.as_deref(), Some("auth0|x"));
    assert_eq!(script.seen().len(), 4);

    for bad in ["", ".", ".."] {
        let err = api.get_user(bad).await.unwrap_err();
        assert!(matches!(err, VendorError::Rejected(_)), "{bad:?}: {err}");
    }
}

// ---- Against the OpenLattice simulator ----------------------------------------------------

mod against_the_simulator {
    use super::*;
    use orgops::simulator::openlattice::seed::{TEMPLATE_ORG_ID, TEMPLATE_ORG_NAME};
    use orgops::simulator::openlattice::{OpenLatticeSimulator, Options};
    use orgops::vendors::openlattice::organization_id;

    const ALICE: &str = "google-oauth2|104729384756102938475";
    const CAROL: &str = "samlp|orgops|carol";

    async fn sim() -> OpenLatticeSimulator {
        OpenLatticeSimulator::start(0, Options::default())
            .await
            .unwrap()
    }

    fn client(sim: &OpenLatticeSimulator, token: &str) -> OpenLatticeApi {
        let creds = Credentials::new(
            "tenants/openlattice-creds",
            [("token".to_string(), SecretString::from(token.to_string()))].into(),
        );
        let config = HttpConfig {
            backoff_base: Duration::from_millis(2),
            backoff_max: Duration::from_millis(5),
            rate_per_second: 1000,
            ..HttpConfig::default()
        };
        OpenLatticeApi::new(Some(&sim.base_url), creds, config, &Endpoints::default()).unwrap()
    }

    #[tokio::test]
    async fn an_organization_is_created_once_kept_in_sync_and_deleted() {
        let sim = sim().await;
        let api = client(&sim, &sim.admin_token);
        api.verify().await.unwrap();
        let id = organization_id("uid-acme");
        let body = OrganizationCreate::new(id, "acme-prod", "Acme", "First", vec![]);
        assert_eq!(
            api.create_org(&body).await.unwrap(),
            CreateOutcome::Created(id)
        );
        // Again (a lost answer, a second reconcile): found by name, nothing new.
        assert_eq!(
            api.create_org(&body).await.unwrap(),
            CreateOutcome::Exists(id)
        );
        let names: Vec<_> = api
            .list_org_principals()
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.principal.id == "acme-prod")
            .map(|p| p.id)
            .collect();
        assert_eq!(names, [id]);
        // Someone else's name: exists, under another id.
        let taken =
            OrganizationCreate::new(organization_id("uid-2"), TEMPLATE_ORG_NAME, "T", "", vec![]);
        assert_eq!(
            api.create_org(&taken).await.unwrap(),
            CreateOutcome::Exists(TEMPLATE_ORG_ID.parse().unwrap())
        );

        api.update_title(id, "Acme \"Production\" – Zürich")
            .await
            .unwrap();
        api.update_description(id, "Line one\nline two")
            .await
            .unwrap();
        api.set_email_domains(id, &["acme.com".into(), "acme.org".into()])
            .await
            .unwrap();
        let org = api.get_org(id).await.unwrap().unwrap();
        assert_eq!(org.title, "Acme \"Production\" – Zürich");
        assert_eq!(org.description.as_deref(), Some("Line one\nline two"));
        let mut domains = api.email_domains(id).await.unwrap();
        domains.sort();
        assert_eq!(domains, ["acme.com", "acme.org"]);
        assert!(api.list_orgs().await.unwrap().iter().any(|o| o.id == id));

        api.delete_org(id).await.unwrap();
        assert_eq!(api.get_org(id).await.unwrap(), None);
        let before = api.transport().stats().total();
        api.delete_org(id).await.unwrap();
        assert_eq!(api.get_org(id).await.unwrap(), None);
        assert_eq!(
            api.transport().stats().total(),
            before + 2,
            "an unknown org is read at once, not retried"
        );
        let err = api.update_title(id, "x").await.unwrap_err();
        assert!(matches!(err, VendorError::NotFound(_)), "{err}");
    }

    #[tokio::test]
    async fn roles_grants_and_members_round_trip() {
        let sim = sim().await;
        let api = client(&sim, &sim.admin_token);
        let org = organization_id("uid-roles");
        api.create_org(&OrganizationCreate::new(
            org,
            "roles-org",
            "Roles",
            "",
            vec![],
        ))
        .await
        .unwrap();

        let analyst = api
            .create_role(org, "Analyst", Some("Reads"))
            .await
            .unwrap();
        assert_eq!(analyst, role_id(org, "Analyst"));
        // Repeating it creates nothing.
        assert_eq!(
            api.create_role(org, "Analyst", Some("Reads"))
                .await
                .unwrap(),
            analyst
        );
        let roles = api.roles(org).await.unwrap();
        let full = api.get_org(org).await.unwrap().unwrap();
        let mine: Vec<_> = roles.iter().filter(|r| !full.is_admin_role(r)).collect();
        assert_eq!(mine.len(), 1, "{roles:?}");
        assert_eq!(mine[0].principal.id, format!("{org}|Analyst"));
        assert_eq!(roles.len(), 2, "the admin role besides it");

        api.update_role_title(org, analyst, "Analysts")
            .await
            .unwrap();
        api.update_role_description(org, analyst, "Reads everything")
            .await
            .unwrap();
        let grant = Grant {
            grant_type: GrantType::EmailDomain,
            mappings: vec!["@acme.com".into()],
            attribute: String::new(),
        };
        api.update_role_grant(org, analyst, &grant).await.unwrap();
        let role = api.get_role(org, analyst).await.unwrap().unwrap();
        assert_eq!(role.title, "Analysts");
        assert_eq!(role.description.as_deref(), Some("Reads everything"));
        let full = api.get_org(org).await.unwrap().unwrap();
        assert_eq!(full.grants[&analyst][&GrantType::EmailDomain], grant);

        for user in [ALICE, CAROL] {
            api.add_member(org, user).await.unwrap();
            api.add_member(org, user).await.unwrap();
        }
        api.add_role_to_member(org, analyst, CAROL).await.unwrap();
        let members = api.members(org).await.unwrap();
        let carol = members.iter().find(|m| m.user_id() == CAROL).unwrap();
        let titles: Vec<_> = carol.roles_in(org).map(|r| r.title.as_str()).collect();
        assert_eq!(titles, ["Analysts"]);
        let holders: Vec<_> = api
            .role_members(org, analyst)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|u| u.user_id)
            .collect();
        assert_eq!(holders, [CAROL]);

        api.remove_role_from_member(org, analyst, CAROL)
            .await
            .unwrap();
        assert!(api.role_members(org, analyst).await.unwrap().is_empty());
        api.remove_member(org, ALICE).await.unwrap();
        api.remove_member(org, ALICE).await.unwrap();
        let ids: Vec<_> = api
            .members(org)
            .await
            .unwrap()
            .iter()
            .map(|m| m.user_id().to_string())
            .collect();
        assert!(ids.contains(&CAROL.to_string()) && !ids.contains(&ALICE.to_string()));

        // The admin role cannot go; the other one can, twice.
        let admin = roles.iter().find(|r| full.is_admin_role(r)).unwrap();
        let err = api.delete_role(org, admin.id.unwrap()).await.unwrap_err();
        assert!(matches!(err, VendorError::Rejected(_)), "{err}");
        api.delete_role(org, analyst).await.unwrap();
        api.delete_role(org, analyst).await.unwrap();
        assert_eq!(api.get_role(org, analyst).await.unwrap(), None);
        assert_eq!(api.roles(org).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_create_whose_answer_is_lost_is_found_again_by_its_id() {
        use orgops::simulator::{FaultSpec, kit::SimulatorHandle};
        let sim = sim().await;
        let api = client(&sim, &sim.admin_token);
        let id = organization_id("uid-lost");
        let body = OrganizationCreate::new(id, "lost-org", "Lost", "", vec![]);
        sim.set_faults(FaultSpec::parse("drop=1").unwrap());
        let err = api.create_org(&body).await.unwrap_err();
        assert!(err.is_outcome_unknown(), "{err}");
        sim.set_faults(FaultSpec::none());
        assert_eq!(
            api.get_org(id).await.unwrap().unwrap().principal.id,
            "lost-org"
        );
        assert_eq!(
            api.create_org(&body).await.unwrap(),
            CreateOutcome::Exists(id)
        );

        // Under resets and 5xx, reads and idempotent writes get through by retrying.
        sim.set_faults(FaultSpec::parse("5xx=0.1,reset=0.1,seed=7").unwrap());
        for n in 0..10 {
            api.update_description(id, &format!("rev {n}"))
                .await
                .unwrap();
            api.add_member(id, ALICE).await.unwrap();
            assert!(api.get_org(id).await.unwrap().is_some());
        }
        sim.set_faults(FaultSpec::none());
        let org = api.get_org(id).await.unwrap().unwrap();
        assert_eq!(org.description.as_deref(), Some("rev 9"));
        assert!(
            api.transport().stats().total() > 33,
            "faults were injected and retried"
        );
    }

    #[tokio::test]
    async fn people_are_found_by_email_and_id_by_any_user_and_can_then_join() {
        use orgops::simulator::kit::SimulatorHandle;
        let sim = sim().await;
        // A plain user (no admin, no owner) may look people up.
        let user = client(&sim, &sim.user_token);
        let found = user
            .find_users_by_email("ALICE@orgops.example")
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].user_id.as_deref(), Some(ALICE));
        assert_eq!(found[0].given_name.as_deref(), Some("Alice"));
        assert!(
            user.find_users_by_email("nobody@orgops.example")
                .await
                .unwrap()
                .is_empty()
        );
        let carol = user.get_user(CAROL).await.unwrap().unwrap();
        assert_eq!(carol.email.as_deref(), Some("carol@orgops.example"));
        assert_eq!(user.get_user("auth0|nobody").await.unwrap(), None);

        // Someone with an Auth0 account who belongs to no organization yet.
        let dave = "auth0|65f0c0ffee";
        assert_eq!(user.get_user(dave).await.unwrap(), None);
        sim.add_user(dave, "Dave@Elsewhere.example", "Dave", "Newcomer");
        let found = user
            .find_users_by_email("dave@elsewhere.example")
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].user_id.as_deref(), Some(dave));
        assert_eq!(found[0].email.as_deref(), Some("Dave@Elsewhere.example"));

        // Looking people up writes nothing; adding the one found does.
        assert_eq!(sim.total_writes(), 0);
        let admin = client(&sim, &sim.admin_token);
        let org: Uuid = TEMPLATE_ORG_ID.parse().unwrap();
        admin.add_member(org, dave).await.unwrap();
        assert!(
            admin
                .members(org)
                .await
                .unwrap()
                .iter()
                .any(|m| m.user_id() == dave)
        );
        assert_eq!(sim.total_writes(), 1);
    }

    #[tokio::test]
    async fn bad_and_expired_jwts_name_the_secret_and_a_plain_user_is_forbidden() {
        let sim = sim().await;
        let err = client(&sim, "not-a-jwt-at-all").verify().await.unwrap_err();
        assert!(
            matches!(&err, VendorError::InvalidCredentials { secret, .. } if secret == "tenants/openlattice-creds"),
            "{err}"
        );
        assert!(!err.to_string().contains("not-a-jwt-at-all"));

        let expired = sim.issue_token(ALICE, Some(Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let err = client(&sim, &expired).verify().await.unwrap_err();
        let VendorError::InvalidCredentials { detail, .. } = &err else {
            panic!("{err}");
        };
        assert!(detail.contains("the JWT expired at"), "{detail}");

        let user = client(&sim, &sim.user_token);
        let template: Uuid = TEMPLATE_ORG_ID.parse().unwrap();
        let err = user.update_title(template, "mine now").await.unwrap_err();
        assert!(matches!(err, VendorError::Forbidden(_)), "{err}");
        let err = user.set_email_domains(template, &[]).await.unwrap_err();
        assert!(matches!(err, VendorError::Forbidden(_)), "{err}");
        let admin = client(&sim, &sim.admin_token);
        assert_eq!(
            admin.get_org(template).await.unwrap().unwrap().title,
            "Template org"
        );
    }
}

// ---- The VendorClient's copy of roles, against the simulator -----------------------------

mod role_copies {
    use super::*;
    use orgops::simulator::kit::SimulatorHandle;
    use orgops::simulator::openlattice::seed::TEMPLATE_ORG_ID;
    use orgops::simulator::openlattice::{OpenLatticeSimulator, Options};
    use orgops::vendors::VendorClient;
    use orgops::vendors::openlattice::OpenLatticeClient;
    use orgops::vendors::openlattice::vendor::ROLES;

    /// A grant of a type the template's role lacks, added to a copy by hand, cannot be removed
    /// through OpenLattice's API (it only sets one grant per type): updating the copy says so,
    /// and does not send the grants that already match again and again.
    #[tokio::test]
    async fn a_grant_type_the_template_lacks_is_reported_not_rewritten_forever() {
        let sim = OpenLatticeSimulator::start(0, Options::default())
            .await
            .unwrap();
        let creds = Credentials::new(
            "tenants/openlattice-creds",
            [(
                "token".to_string(),
                SecretString::from(sim.admin_token.clone()),
            )]
            .into(),
        );
        let client = OpenLatticeClient::new(
            Some(&sim.base_url),
            creds,
            HttpConfig::default(),
            &Endpoints::default(),
        )
        .unwrap();
        let template = client.list_objects(TEMPLATE_ORG_ID, &ROLES).await.unwrap();
        let reviewer = template.iter().find(|r| r["title"] == "Reviewer").unwrap();
        let copy = client
            .create_object(
                TEMPLATE_ORG_ID,
                &ROLES,
                json!({"title": "Copy of Reviewer"}),
            )
            .await
            .unwrap();
        let id = copy["id"].as_str().unwrap().to_string();
        // By hand: an Automatic grant and other e-mail domains.
        sim.patch_object(
            "organizations",
            TEMPLATE_ORG_ID,
            &json!({"grants": {&id: {
                "Automatic": {"grantType": "Automatic", "mappings": [], "attribute": ""},
                "EmailDomain": {"grantType": "EmailDomain", "mappings": ["@x.example"], "attribute": ""},
            }}}),
        )
        .unwrap();

        let patch = json!({"grants": reviewer["grants"]});
        let writes = sim.total_writes();
        let err = client
            .update_object(TEMPLATE_ORG_ID, &ROLES, &id, patch.clone())
            .await
            .unwrap_err();
        let VendorError::Unsupported { what, .. } = &err else {
            panic!("{err}");
        };
        assert!(
            what.contains("Automatic") && what.contains("Copy of Reviewer"),
            "{what}"
        );
        // What can be put right was: the e-mail domains, in one write.
        assert_eq!(sim.total_writes(), writes + 1);
        let now = client.list_objects(TEMPLATE_ORG_ID, &ROLES).await.unwrap();
        let role = now.iter().find(|r| r["id"] == json!(id)).unwrap();
        assert_eq!(
            role["grants"]["EmailDomain"],
            reviewer["grants"]["EmailDomain"]
        );

        // Again: the same answer, and nothing is written.
        let writes = sim.total_writes();
        let err = client
            .update_object(TEMPLATE_ORG_ID, &ROLES, &id, patch)
            .await
            .unwrap_err();
        assert!(matches!(err, VendorError::Unsupported { .. }), "{err}");
        assert_eq!(
            sim.total_writes(),
            writes,
            "a grant that matches was sent again"
        );

        // Without the extra type, the update goes through.
        sim.patch_object(
            "organizations",
            TEMPLATE_ORG_ID,
            &json!({"grants": {&id: {"Automatic": null}}}),
        )
        .unwrap();
        let desc = json!({"description": "Reviews", "grants": reviewer["grants"]});
        let updated = client
            .update_object(TEMPLATE_ORG_ID, &ROLES, &id, desc)
            .await
            .unwrap();
        assert_eq!(updated["description"], "Reviews");
        assert_eq!(updated["grants"], reviewer["grants"]);
    }
}
