//! The Rendered.ai simulator over loopback HTTP: the GraphQL envelope (always HTTP 200 with
//! `{data, errors}`), operation selection, validation and variable errors, introspection, the
//! three credential styles and idtoken expiry, cursor pagination, permissions, invitations and
//! their acceptance, the 3.3.4 legacy operations (limits and their enforcement, workspace
//! guests) and the switches that stop serving them, the [`SimulatorHandle`], faults and
//! hostile input.

use std::time::Duration;

use orgops::simulator::kit::{SimulatorHandle, WriteCounts};
use orgops::simulator::renderedai::{self, RenderedAiSimulator, Scope, seed};
use orgops::simulator::{FaultSpec, ServeOptions};
use proptest::prelude::*;
use serde_json::{Value, json};

const T: &str = seed::TEMPLATE_ORG_ID;
const TARGET: &str = seed::TARGET_ORG_ID;

async fn start_with(options: renderedai::Options) -> RenderedAiSimulator {
    RenderedAiSimulator::start(
        0,
        renderedai::Options {
            id_seed: Some(5),
            ..options
        },
    )
    .await
    .expect("simulator starts")
}

async fn start() -> RenderedAiSimulator {
    start_with(renderedai::Options::default()).await
}

/// Credentials a request carries.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Key(&'a str),
    Bearer(&'a str, Option<&'a str>),
    IdToken(&'a str, &'a str),
}

/// POSTs a GraphQL body and checks the envelope: HTTP 200, JSON.
async fn post(sim: &RenderedAiSimulator, auth: Auth<'_>, body: &Value) -> Value {
    let mut req = reqwest::Client::new().post(&sim.graphql_url).json(body);
    req = match auth {
        Auth::None => req,
        Auth::Key(k) => req.header("apikey", k),
        Auth::Bearer(t, uid) => {
            let r = req.header("authorization", format!("Bearer {t}"));
            match uid {
                Some(u) => r.header("uid", u),
                None => r,
            }
        }
        Auth::IdToken(t, uid) => req.header("idtoken", t).header("uid", uid),
    };
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn gql(sim: &RenderedAiSimulator, auth: Auth<'_>, query: &str, variables: Value) -> Value {
    post(sim, auth, &json!({"query": query, "variables": variables})).await
}

async fn admin(sim: &RenderedAiSimulator, query: &str, variables: Value) -> Value {
    gql(sim, Auth::Key(seed::API_KEY), query, variables).await
}

/// The data of a call that must succeed.
fn data(v: &Value, field: &str) -> Value {
    assert!(v.get("errors").is_none(), "{v}");
    v["data"][field].clone()
}

/// The last error's message (what the SDK shows).
fn error(v: &Value) -> String {
    v["errors"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error in {v}"))
        .to_string()
}

async fn sign_in(sim: &RenderedAiSimulator, email: &str, password: &str) -> Value {
    gql(
        sim,
        Auth::None,
        "mutation signIn($email: String!, $password: String!) { signIn(email: $email, password: $password) { uid idtoken expires } }",
        json!({"email": email, "password": password}),
    )
    .await
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| x[key].as_str().unwrap().to_string())
        .collect()
}

const WORKSPACES_Q: &str = "query getWorkspaces($organizationId: String, $workspaceId: String, $limit: Int, $cursor: String, $filters: WorkspaceFilter) { getWorkspaces(organizationId: $organizationId, workspaceId: $workspaceId, limit: $limit, cursor: $cursor, filters: $filters) { workspaceId name organizationId organization tags } }";

#[tokio::test]
async fn envelope_operation_selection_and_validation() {
    let sim = start().await;
    // No operationName, no variables: the document's only operation.
    let v = post(&sim, Auth::None, &json!({"query": "{ __typename }"})).await;
    assert_eq!(v, json!({"data": {"__typename": "Query"}}));
    // operationName picks one of several; a mismatched name with one operation falls back.
    let two = "query a { getOrganizations { name } } query b { getCurrentUser { email } }";
    let v = post(
        &sim,
        Auth::Key(seed::API_KEY),
        &json!({"query": two, "operationName": "b"}),
    )
    .await;
    assert_eq!(data(&v, "getCurrentUser")["email"], seed::ADMIN_EMAIL);
    let v = post(
        &sim,
        Auth::None,
        &json!({"query": two, "operationName": "c"}),
    )
    .await;
    assert_eq!(error(&v), "Unknown operation named 'c'.");
    assert_eq!(v["data"], Value::Null);
    let v = post(&sim, Auth::None, &json!({"query": two})).await;
    assert!(error(&v).contains("Must provide operation name"));
    let v = post(
        &sim,
        Auth::Key(seed::API_KEY),
        &json!({"query": "query deleteGAN { getCurrentUser { email } }", "operationName": "deleteGANModel"}),
    )
    .await;
    assert_eq!(data(&v, "getCurrentUser")["email"], seed::ADMIN_EMAIL);

    // Unknown field, at the root and nested: validation, nothing runs.
    let v = admin(&sim, "{ getOrganizations { name bogus } }", json!({})).await;
    assert_eq!(
        error(&v),
        "Cannot query field \"bogus\" on type \"Organization\"."
    );
    assert_eq!(v["data"], Value::Null);
    let before = sim.total_writes();
    let v = admin(
        &sim,
        "mutation { editOrganization(organizationId: \"x\", name: \"y\") nope }",
        json!({}),
    )
    .await;
    assert_eq!(
        error(&v),
        "Cannot query field \"nope\" on type \"Mutation\"."
    );
    assert_eq!(
        sim.total_writes(),
        before,
        "an invalid document runs nothing"
    );

    // A null into a non-null variable (anatools' delete_volume).
    let v = admin(
        &sim,
        "mutation deleteVolume($volumeId: String!, $organizationId: String!) { deleteVolume(volumeId: $volumeId, organizationId: $organizationId) }",
        json!({"volumeId": "v", "organizationId": null}),
    )
    .await;
    assert_eq!(
        error(&v),
        "Variable '$organizationId' of non-null type 'String!' must not be null."
    );
    assert_eq!(sim.writes("volumes"), Some(WriteCounts::default()));

    // Not JSON, wrong shapes, other methods.
    let resp = reqwest::Client::new()
        .post(&sim.graphql_url)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(error(&v), "POST body sent invalid JSON.");
    let v = post(&sim, Auth::None, &json!({"query": 5})).await;
    assert!(error(&v).contains("non-empty `query`"));
    let resp = reqwest::get(&sim.graphql_url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[tokio::test]
async fn introspection_is_open_and_safe_for_the_sdk() {
    let sim = start().await;
    let q = r#"query { __type(name: "Member") { name kind fields { name description type { name kind ofType { name kind ofType { name kind } } } } } }"#;
    let v = post(&sim, Auth::None, &json!({"query": q})).await;
    let t = data(&v, "__type");
    assert_eq!(
        (t["name"].as_str(), t["kind"].as_str()),
        (Some("Member"), Some("OBJECT"))
    );
    assert_eq!(
        ids(&t["fields"], "name"),
        [
            "organizationId",
            "workspaceId",
            "userId",
            "email",
            "name",
            "role"
        ]
    );
    // Every type the SDK introspects exists, and no object is reached through a non-null or
    // a list of non-nulls (the SDK would select it without a sub-selection).
    for name in [
        "APIKey",
        "UserCredentials",
        "Organization",
        "Member",
        "Invitation",
        "Channel",
        "Volume",
        "GANModel",
        "AnnotationMap",
        "WorkspaceTemplate",
        "ServiceType",
        "Workspace",
        "Graph",
        "UploadGANResponse",
        "UploadAnnotationMapResponse",
        "UploadVolumeDataResponse",
        "VolumeData",
        "VolumeCredentials",
        "WorkspaceCredentials",
    ] {
        let v = post(
            &sim,
            Auth::None,
            &json!({"query": q.replace("Member", name)}),
        )
        .await;
        let t = data(&v, "__type");
        assert_eq!(t["kind"], "OBJECT", "{name}");
        for f in t["fields"].as_array().unwrap() {
            let ty = &f["type"];
            assert_ne!(ty["kind"], "NON_NULL", "{name}.{}", f["name"]);
            if ty["kind"] == "LIST" {
                assert_ne!(ty["ofType"]["kind"], "NON_NULL", "{name}.{}", f["name"]);
            }
        }
    }
    let v = post(
        &sim,
        Auth::None,
        &json!({"query": "{ __type(name: \"Nope\") { name } }"}),
    )
    .await;
    assert_eq!(data(&v, "__type"), Value::Null);
}

#[tokio::test]
async fn api_keys_sessions_and_bearer_tokens() {
    let sim = start_with(renderedai::Options {
        token_lifetime: Some(Duration::from_secs(3600)),
        ..Default::default()
    })
    .await;
    // Unauthenticated: Unauthorized, and the field is null.
    let v = gql(&sim, Auth::None, WORKSPACES_Q, json!({})).await;
    assert_eq!(v["errors"][0]["message"], "Unauthorized");
    assert_eq!(v["data"]["getWorkspaces"], Value::Null);
    let v = gql(&sim, Auth::Key("sk-secret-guess"), WORKSPACES_Q, json!({})).await;
    assert_eq!(error(&v), "Unauthorized");
    assert!(!v.to_string().contains("sk-secret-guess"));

    // API key context: the key's own, with the SDK's date format.
    let ctx = "query getAPIKeyContext($apiKey: String!) { getAPIKeyContext(apiKey: $apiKey) { name scope organizationId workspaceId createdAt expiresAt } }";
    let v = gql(
        &sim,
        Auth::Key(seed::ORG_API_KEY),
        ctx,
        json!({"apiKey": seed::ORG_API_KEY}),
    )
    .await;
    let c = data(&v, "getAPIKeyContext");
    assert_eq!(c["scope"], "organization");
    assert_eq!(c["organizationId"], T);
    assert_eq!(c["expiresAt"], seed::SCOPED_KEY_EXPIRY);
    assert!(
        jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%S%.fZ", c["createdAt"].as_str().unwrap())
            .is_ok()
    );
    let v = gql(
        &sim,
        Auth::Key(seed::API_KEY),
        ctx,
        json!({"apiKey": seed::API_KEY}),
    )
    .await;
    assert_eq!(data(&v, "getAPIKeyContext")["expiresAt"], Value::Null);

    // Password sign-in: uid + bearer (6.x), uid + idtoken (3.x), bearer alone.
    let wrong = sign_in(&sim, seed::ADMIN_EMAIL, "hunter2-wrong").await;
    assert_eq!(error(&wrong), "Invalid email or password.");
    assert!(!wrong.to_string().contains("hunter2-wrong"));
    let creds = data(
        &sign_in(&sim, seed::ADMIN_EMAIL, seed::ADMIN_PASSWORD).await,
        "signIn",
    );
    assert_eq!(creds["expires"], 3600);
    let (uid, token) = (
        creds["uid"].as_str().unwrap(),
        creds["idtoken"].as_str().unwrap(),
    );
    let me = "query GetCurrentUser { getCurrentUser { # a comment, as the SDK sends\n userId name email } }";
    for auth in [
        Auth::Bearer(token, Some(uid)),
        Auth::Bearer(token, None),
        Auth::IdToken(token, uid),
    ] {
        let v = gql(&sim, auth, me, json!({})).await;
        assert_eq!(data(&v, "getCurrentUser")["userId"], uid);
    }
    let v = gql(
        &sim,
        Auth::Bearer(token, Some("someone-else")),
        me,
        json!({}),
    )
    .await;
    assert_eq!(error(&v), "Unauthorized");

    // Keys made by a session: the plaintext once, metadata after; deleted keys stop working.
    let create = "mutation createAPIKey($name: String!, $scope: String, $organizationId: String, $workspaceId: String, $expiresAt: String) { createAPIKey(name: $name, scope: $scope, organizationId: $organizationId, workspaceId: $workspaceId, expiresAt: $expiresAt) }";
    let key = data(
        &gql(
            &sim,
            Auth::Bearer(token, Some(uid)),
            create,
            json!({"name": "ci", "scope": "organization", "organizationId": TARGET, "expiresAt": "2031-02-03T04:05:06Z"}),
        )
        .await,
        "createAPIKey",
    );
    let key = key.as_str().unwrap().to_string();
    let v = gql(
        &sim,
        Auth::Key(&key),
        "{ getAPIKeys { name scope organizationId expiresAt } }",
        json!({}),
    )
    .await;
    let listed = data(&v, "getAPIKeys");
    assert!(!listed.to_string().contains(&key));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "ci" && k["expiresAt"] == "2031-02-03T04:05:06.000Z")
    );
    let v = gql(
        &sim,
        Auth::Key(&key),
        "{ getOrganizations { organizationId } }",
        json!({}),
    )
    .await;
    assert_eq!(
        ids(&data(&v, "getOrganizations"), "organizationId"),
        [TARGET]
    );
    let dup = gql(
        &sim,
        Auth::Bearer(token, Some(uid)),
        create,
        json!({"name": "ci"}),
    )
    .await;
    assert!(error(&dup).contains("already exists"));
    let v = gql(
        &sim,
        Auth::Bearer(token, None),
        "mutation { deleteAPIKey(name: \"ci\") }",
        json!({}),
    )
    .await;
    assert_eq!(data(&v, "deleteAPIKey"), true);
    let v = gql(&sim, Auth::Key(&key), me, json!({})).await;
    assert_eq!(error(&v), "Unauthorized");

    // An expired key, issued by hand.
    let old = sim
        .issue_api_key(
            seed::ADMIN_EMAIL,
            "old",
            Scope::User,
            Some("2001-01-01T00:00:00.000Z"),
        )
        .unwrap();
    assert_eq!(
        error(&gql(&sim, Auth::Key(&old), me, json!({})).await),
        "Unauthorized"
    );

    // Sessions end.
    sim.expire_sessions();
    let v = gql(&sim, Auth::Bearer(token, Some(uid)), me, json!({})).await;
    assert_eq!(error(&v), "Unauthorized");
}

#[tokio::test]
async fn idtokens_expire_server_side() {
    let sim = start_with(renderedai::Options {
        token_lifetime: Some(Duration::ZERO),
        ..Default::default()
    })
    .await;
    let creds = data(
        &sign_in(&sim, seed::ADMIN_EMAIL, seed::ADMIN_PASSWORD).await,
        "signIn",
    );
    let v = gql(
        &sim,
        Auth::Bearer(creds["idtoken"].as_str().unwrap(), None),
        "{ getCurrentUser { email } }",
        json!({}),
    )
    .await;
    assert_eq!(error(&v), "Unauthorized");
}

#[tokio::test]
async fn cursor_pagination_is_exclusive_stable_and_limited() {
    let sim = start().await;
    let all = ids(
        &data(&admin(&sim, WORKSPACES_Q, json!({})).await, "getWorkspaces"),
        "workspaceId",
    );
    assert_eq!(all.len(), 3);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "ordered by id");
    let mut walked = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = data(
            &admin(&sim, WORKSPACES_Q, json!({"limit": 1, "cursor": cursor})).await,
            "getWorkspaces",
        );
        let page = ids(&page, "workspaceId");
        assert!(page.len() <= 1);
        let Some(last) = page.last() else { break };
        cursor = json!(last);
        walked.extend(page);
    }
    assert_eq!(walked, all);

    // At most 100 a page, whatever is asked.
    sim.with_state(|st| {
        let admin = st.users[seed::ADMIN_EMAIL].user_id.clone();
        let caller = renderedai::state::Caller {
            user_id: admin,
            email: seed::ADMIN_EMAIL.into(),
            scope: Scope::User,
            session: true,
        };
        st.put_org_limit(TARGET, "Managed Volumes", 1000, false);
        for i in 0..130 {
            let args = json!({"organizationId": TARGET, "name": format!("v{i}")});
            st.create_volume(&caller, args.as_object().unwrap())
                .unwrap();
        }
    });
    let q = "query($o: String, $l: Int, $c: String) { getVolumes(organizationId: $o, limit: $l, cursor: $c) { volumeId } }";
    let first = data(
        &admin(&sim, q, json!({"o": TARGET, "l": 1000})).await,
        "getVolumes",
    );
    assert_eq!(first.as_array().unwrap().len(), 100);
    let last = ids(&first, "volumeId").pop().unwrap();
    let rest = data(
        &admin(&sim, q, json!({"o": TARGET, "l": 100, "c": last})).await,
        "getVolumes",
    );
    assert_eq!(rest.as_array().unwrap().len(), 30);
    // Empty lists are lists.
    let ws = sim.objects("workspaces", TARGET).unwrap()[0]["workspaceId"].clone();
    let v = admin(
        &sim,
        "query($w: String) { getMembers(workspaceId: $w) { email } getInvitations(workspaceId: $w) { email } getGraphs(workspaceId: $w) { graphId } }",
        json!({"w": ws}),
    )
    .await;
    assert_eq!(
        v,
        json!({"data": {"getMembers": [], "getInvitations": [], "getGraphs": []}})
    );
}

#[tokio::test]
async fn callers_see_their_orgs_and_need_admin_to_administer() {
    let sim = start().await;
    let creds = data(
        &sign_in(&sim, seed::MEMBER_EMAIL, seed::MEMBER_PASSWORD).await,
        "signIn",
    );
    let member = Auth::Bearer(creds["idtoken"].as_str().unwrap(), None);
    let v = gql(
        &sim,
        member,
        "{ getOrganizations { organizationId role } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data(&v, "getOrganizations"),
        json!([{"organizationId": T, "role": "member"}])
    );
    let v = gql(
        &sim,
        member,
        "query($o: String) { getOrganizations(organizationId: $o) { name } }",
        json!({"o": TARGET}),
    )
    .await;
    assert_eq!(data(&v, "getOrganizations"), json!([]));
    let rename =
        "mutation($o: String!, $n: String!) { editOrganization(organizationId: $o, name: $n) }";
    let v = gql(&sim, member, rename, json!({"o": T, "n": "Mine"})).await;
    assert!(error(&v).starts_with("Permission denied"));
    let v = gql(&sim, member, rename, json!({"o": TARGET, "n": "Mine"})).await;
    assert_eq!(error(&v), "Organization not found.");
    let v = gql(
        &sim,
        member,
        "mutation { addMember(organizationId: \"7e3b1c2a-94d5-4f0e-b8a6-2d9c41e0f5a7\", email: \"x@example.com\") }",
        json!({}),
    )
    .await;
    assert!(error(&v).starts_with("Permission denied"));
    let v = gql(
        &sim,
        member,
        WORKSPACES_Q,
        json!({"organizationId": TARGET}),
    )
    .await;
    assert_eq!(data(&v, "getWorkspaces"), json!([]));
    assert_eq!(sim.writes("organizations"), Some(WriteCounts::default()));
    assert_eq!(sim.writes("members"), Some(WriteCounts::default()));

    let v = admin(&sim, rename, json!({"o": TARGET, "n": "Adopted"})).await;
    assert_eq!(data(&v, "editOrganization"), true);
    assert_eq!(sim.org_id("Adopted").as_deref(), Some(TARGET));
    assert_eq!(sim.writes("organizations").unwrap().updates, 1);
}

#[tokio::test]
async fn invitations_are_accepted_by_hand() {
    let sim = start().await;
    let add = "mutation addMember($organizationId: String!, $email: String!, $role: String) { addMember(organizationId: $organizationId, email: $email, role: $role) }";
    let v = admin(
        &sim,
        add,
        json!({"organizationId": TARGET, "email": "Carol@Example.com", "role": "admin"}),
    )
    .await;
    assert_eq!(data(&v, "addMember"), true);
    let lists = "query($o: String) { getMembers(organizationId: $o) { email role } getInvitations(organizationId: $o) { email role organizationId } }";
    let v = admin(&sim, lists, json!({"o": TARGET})).await;
    assert_eq!(
        data(&v, "getInvitations"),
        json!([{"email": "carol@example.com", "role": "admin", "organizationId": TARGET}])
    );
    let again = admin(
        &sim,
        add,
        json!({"organizationId": TARGET, "email": "carol@example.com"}),
    )
    .await;
    assert!(error(&again).contains("already been sent"));
    assert_eq!(sim.writes("invitations").unwrap().creates, 1);
    let writes = sim.total_writes();
    sim.accept_invitation(TARGET, "carol@example.com").unwrap();
    assert_eq!(sim.total_writes(), writes, "accepting is no API write");
    let v = admin(&sim, lists, json!({"o": TARGET})).await;
    assert_eq!(data(&v, "getInvitations"), json!([]));
    let members = data(&v, "getMembers");
    assert!(
        members
            .as_array()
            .unwrap()
            .contains(&json!({"email": "carol@example.com", "role": "admin"}))
    );
    assert!(sim.accept_invitation(TARGET, "carol@example.com").is_err());

    // An existing account becomes a member at once; a role outside admin|member is refused.
    sim.add_user("dan@example.com", "Dan", None);
    let v = admin(
        &sim,
        add,
        json!({"organizationId": TARGET, "email": "dan@example.com", "role": "owner"}),
    )
    .await;
    assert_eq!(error(&v), "The role must be admin or member.");
    let v = admin(
        &sim,
        add,
        json!({"organizationId": TARGET, "email": "dan@example.com", "role": null}),
    )
    .await;
    assert_eq!(data(&v, "addMember"), true);
    sim.join_org(TARGET, "erin@example.com", "member").unwrap();
    let v = admin(&sim, lists, json!({"o": TARGET})).await;
    let roles: Vec<(String, String)> = data(&v, "getMembers")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(roles.contains(&("dan@example.com".into(), "member".into())));
    assert!(roles.contains(&("erin@example.com".into(), "member".into())));
    // removeMember takes the invitation first, then the membership.
    let remove =
        "mutation($o: String!, $e: String!) { removeMember(organizationId: $o, email: $e) }";
    let v = admin(&sim, remove, json!({"o": TARGET, "e": "dan@example.com"})).await;
    assert_eq!(data(&v, "removeMember"), true);
    let v = admin(&sim, remove, json!({"o": TARGET, "e": "dan@example.com"})).await;
    assert!(error(&v).contains("No member or invitation"));
}

#[tokio::test]
async fn legacy_limits_guests_and_their_switches() {
    let sim = start().await;
    let get = "query getOrganizationLimits($organizationId: String!, $setting: String) { getOrganizationLimits(organizationId: $organizationId, setting: $setting) { organizationId setting limit usage } }";
    let v = admin(
        &sim,
        get,
        json!({"organizationId": TARGET, "setting": "Workspaces"}),
    )
    .await;
    assert_eq!(
        data(&v, "getOrganizationLimits"),
        json!([{"organizationId": TARGET, "setting": "Workspaces", "limit": "5", "usage": 1.0}])
    );
    let set = "mutation setOrganizationLimits($organizationId: String!, $setting: String!, $limit: Int!) { setOrganizationLimits(organizationId: $organizationId, setting: $setting, limit: $limit) }";
    let v = admin(
        &sim,
        set,
        json!({"organizationId": TARGET, "setting": "Workspaces", "limit": 1}),
    )
    .await;
    assert_eq!(data(&v, "setOrganizationLimits"), true);
    let create = "mutation createWorkspace($organizationId: String!, $name: String!, $channelIds: [String]!, $volumeIds: [String]!, $code: String!) { createWorkspace(organizationId: $organizationId, name: $name, channelIds: $channelIds, volumeIds: $volumeIds, code: $code) }";
    let args = json!({"organizationId": TARGET, "name": "More", "channelIds": [], "volumeIds": [], "code": ""});
    let v = admin(&sim, create, args.clone()).await;
    assert_eq!(
        error(&v),
        "The Workspaces limit has been reached by this organization"
    );
    assert_eq!(sim.writes("workspaces").unwrap().creates, 0);

    // Limits switched off: unknown fields, like a server without them; still enforced.
    sim.set_limits_served(false);
    let v = admin(&sim, get, json!({"organizationId": TARGET})).await;
    assert_eq!(
        error(&v),
        "Cannot query field \"getOrganizationLimits\" on type \"Query\"."
    );
    let v = admin(
        &sim,
        "{ __type(name: \"Query\") { fields { name } } }",
        json!({}),
    )
    .await;
    assert!(!ids(&data(&v, "__type")["fields"], "name").contains(&"getOrganizationLimits".into()));
    let v = admin(&sim, create, args.clone()).await;
    assert!(error(&v).contains("limit has been reached"));
    sim.set_limits_served(true);
    let v = admin(
        &sim,
        set,
        json!({"organizationId": TARGET, "setting": "Workspaces", "limit": 9}),
    )
    .await;
    assert_eq!(data(&v, "setOrganizationLimits"), true);
    let ws = data(&admin(&sim, create, args).await, "createWorkspace");
    let ws = ws.as_str().unwrap().to_string();

    // Workspace guests (3.3.4): addMember/getMembers/removeMember with workspaceId.
    let add = "mutation addMember($organizationId: String, $workspaceId: String, $email: String!, $role: String) { addMember(organizationId: $organizationId, workspaceId: $workspaceId, email: $email, role: $role) }";
    let v = admin(
        &sim,
        add,
        json!({"workspaceId": ws, "email": seed::MEMBER_EMAIL, "role": null}),
    )
    .await;
    assert_eq!(data(&v, "addMember"), true);
    let v = admin(
        &sim,
        add,
        json!({"workspaceId": ws, "email": "stranger@example.com"}),
    )
    .await;
    assert_eq!(data(&v, "addMember"), true);
    let list = "query($w: String) { getMembers(organizationId: null, workspaceId: $w) { organizationId workspaceId email role } getInvitations(workspaceId: $w) { invitationId email workspaceId } }";
    let v = admin(&sim, list, json!({"w": ws})).await;
    assert_eq!(
        data(&v, "getMembers"),
        json!([{"organizationId": null, "workspaceId": ws, "email": seed::MEMBER_EMAIL, "role": "guest"}])
    );
    let inv = data(&v, "getInvitations")[0]["invitationId"].clone();
    // The guest sees that workspace (and only it) of an org they do not belong to.
    let creds = data(
        &sign_in(&sim, seed::MEMBER_EMAIL, seed::MEMBER_PASSWORD).await,
        "signIn",
    );
    let member = Auth::Bearer(creds["idtoken"].as_str().unwrap(), None);
    let v = gql(
        &sim,
        member,
        WORKSPACES_Q,
        json!({"organizationId": TARGET}),
    )
    .await;
    assert_eq!(
        ids(&data(&v, "getWorkspaces"), "workspaceId"),
        [ws.as_str()]
    );
    let remove = "mutation removeMember($organizationId: String, $workspaceId: String, $email: String!, $invitationId: String) { removeMember(organizationId: $organizationId, workspaceId: $workspaceId, email: $email, invitationId: $invitationId) }";
    let v = admin(
        &sim,
        remove,
        json!({"workspaceId": ws, "email": "stranger@example.com", "invitationId": inv}),
    )
    .await;
    assert_eq!(data(&v, "removeMember"), true);
    let v = admin(
        &sim,
        remove,
        json!({"workspaceId": ws, "email": seed::MEMBER_EMAIL}),
    )
    .await;
    assert_eq!(data(&v, "removeMember"), true);
    let v = admin(&sim, list, json!({"w": ws})).await;
    assert_eq!(v, json!({"data": {"getMembers": [], "getInvitations": []}}));

    // Guests switched off: workspaceId is an unknown argument.
    sim.set_workspace_guests_served(false);
    let v = admin(
        &sim,
        add,
        json!({"workspaceId": ws, "email": seed::MEMBER_EMAIL}),
    )
    .await;
    assert_eq!(
        error(&v),
        "Unknown argument \"workspaceId\" on field \"Mutation.addMember\"."
    );
}

#[tokio::test]
async fn copy_surface_and_the_handle() {
    let sim = start().await;
    assert_eq!(sim.vendor(), "renderedai");
    assert_eq!(sim.org_id(seed::TEMPLATE_ORG_NAME).as_deref(), Some(T));
    assert_eq!(
        sim.org_id(seed::CONTENT_ORG_NAME).as_deref(),
        Some(seed::CONTENT_ORG_ID)
    );
    let ws = sim.objects("workspaces", T).unwrap();
    assert_eq!(ws.len(), 2);
    let ws1 = ws
        .iter()
        .find(|w| w["name"] == "Vehicle detection")
        .unwrap();
    let ws1_id = ws1["workspaceId"].as_str().unwrap();
    // Shared channels come from the content org, referenced by the template's workspaces.
    let v = admin(
        &sim,
        "query($w: String, $o: String) { ws: getChannels(workspaceId: $w) { name organization } target: getChannels(organizationId: $o) { name } }",
        json!({"w": ws1_id, "o": TARGET}),
    )
    .await;
    assert_eq!(
        data(&v, "ws"),
        json!([{"name": "example", "organization": "Rendered.ai"}])
    );
    assert_eq!(ids(&data(&v, "target"), "name"), ["example", "toybox"]);
    // Graph JSON holds "<volumeId>:/path" values of the workspace's volumes.
    let v = admin(
        &sim,
        "query($w: String!) { getGraphs(workspaceId: $w) { graphId name } v: getVolumes(workspaceId: $w) { volumeId } }",
        json!({"w": ws1_id}),
    )
    .await;
    let graph_id = data(&v, "getGraphs")[0]["graphId"].clone();
    let volumes = ids(&data(&v, "v"), "volumeId");
    let v = admin(
        &sim,
        "mutation downloadGraph($workspaceId: String!, $graphId: String!) { downloadGraph(workspaceId: $workspaceId, graphId: $graphId) }",
        json!({"workspaceId": ws1_id, "graphId": graph_id}),
    )
    .await;
    let graph = data(&v, "downloadGraph");
    let graph: Value = serde_json::from_str(graph.as_str().unwrap()).unwrap();
    for vol in &volumes {
        assert!(graph.to_string().contains(&format!("{vol}:/")), "{graph}");
    }
    let rules = admin(
        &sim,
        "query($o: String, $w: String) { o: getOrganizationRules(organizationId: $o) w: getWorkspaceRules(workspaceId: $w) }",
        json!({"o": T, "w": ws1_id}),
    )
    .await;
    assert_eq!(data(&rules, "o"), seed::TEMPLATE_RULES);
    assert_eq!(data(&rules, "w"), seed::WORKSPACE_RULES);
    let v = admin(
        &sim,
        "query($o: String) { getGANModels(organizationId: $o) { name } getAnnotationMaps(organizationId: $o) { name } getServices(organizationId: $o) { name } }",
        json!({"o": T}),
    )
    .await;
    assert_eq!(data(&v, "getGANModels"), json!([{"name": "Day to dusk"}]));
    assert_eq!(data(&v, "getServices"), json!([{"name": "Caption writer"}]));

    // Queries write nothing; a mutation is one write request whatever its outcome.
    assert_eq!(sim.total_writes(), 0);
    let edit = "mutation($w: String!, $n: String) { editWorkspace(workspaceId: $w, name: $n, description: null) }";
    let v = admin(&sim, edit, json!({"w": ws1_id, "n": "Renamed"})).await;
    assert_eq!(data(&v, "editWorkspace"), true);
    assert_eq!(sim.total_writes(), 1);
    assert_eq!(sim.writes("workspaces").unwrap().updates, 1);
    let after = &sim.objects("workspaces", T).unwrap();
    let w = after.iter().find(|w| w["workspaceId"] == ws1_id).unwrap();
    assert_eq!(
        (w["name"].as_str(), w["description"] == ws1["description"]),
        (Some("Renamed"), true)
    );

    // Hand edits count nothing and show through the API.
    sim.patch_object("workspaces", ws1_id, &json!({"name": "By hand"}))
        .unwrap();
    let v = admin(&sim, WORKSPACES_Q, json!({"workspaceId": ws1_id})).await;
    assert_eq!(data(&v, "getWorkspaces")[0]["name"], "By hand");
    sim.delete_object("workspaces", ws1_id).unwrap();
    let v = admin(&sim, WORKSPACES_Q, json!({"workspaceId": ws1_id})).await;
    assert_eq!(data(&v, "getWorkspaces"), json!([]));
    assert_eq!(sim.total_writes(), 1);
    assert!(sim.objects("nope", T).is_err());
    assert!(sim.kinds().contains(&"organization_limits"));
}

#[tokio::test]
async fn faults_come_from_the_kit() {
    let sim = start_with(renderedai::Options {
        serve: ServeOptions {
            faults: FaultSpec::parse("5xx=1").unwrap(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let resp = reqwest::Client::new()
        .post(&sim.graphql_url)
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    sim.set_faults(FaultSpec::none());
    let v = post(&sim, Auth::None, &json!({"query": "{ __typename }"})).await;
    assert_eq!(data(&v, "__typename"), "Query");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any document and any variables: HTTP 200, a JSON body with errors or data, never a
    /// panic, never the password echoed.
    #[test]
    fn hostile_documents_get_a_graphql_answer(
        doc in "[{}()\\[\\]a-zA-Z_$:!@\" ,.0-9#\n]{0,200}",
        depth in 0usize..400,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sim = start().await;
            for query in [doc.clone(), format!("{}{}", "{ a ".repeat(depth), "}".repeat(depth))] {
                let v = post(
                    &sim,
                    Auth::Key(seed::API_KEY),
                    &json!({"query": query, "variables": {"password": "pw-SECRET-42"}}),
                )
                .await;
                assert!(v.get("errors").is_some() || v.get("data").is_some(), "{v}");
                assert!(!v.to_string().contains("pw-SECRET-42"));
            }
        });
    }
}

#[tokio::test]
async fn volumes_are_edited_in_place() {
    let sim = start().await;
    let volumes = sim.objects("volumes", T).unwrap();
    let textures = volumes.iter().find(|v| v["name"] == "Textures").unwrap();
    let id = textures["volumeId"].as_str().unwrap();
    let edit = "mutation editVolume($volumeId: String!, $name: String, $description: String, $permission: String, $tags: [String]) { editVolume(volumeId: $volumeId, name: $name, description: $description, permission: $permission, tags: $tags) }";
    // As anatools 6.1.2 sends it: every variable, null meaning unchanged; tags replace.
    let v = admin(
        &sim,
        edit,
        json!({"volumeId": id, "name": null, "description": "Brick and wood.", "permission": "view", "tags": ["t"]}),
    )
    .await;
    assert_eq!(data(&v, "editVolume"), true);
    let after = sim.objects("volumes", T).unwrap();
    let now = after.iter().find(|v| v["volumeId"] == id).unwrap();
    assert_eq!(
        (
            &now["name"],
            &now["description"],
            &now["permission"],
            &now["tags"]
        ),
        (
            &json!("Textures"),
            &json!("Brick and wood."),
            &json!("view"),
            &json!(["t"])
        )
    );
    assert_eq!(sim.writes("volumes").unwrap().updates, 1);
    // Bad values and volumes the caller's orgs do not own change nothing.
    let all = json!({"name": null, "description": null, "permission": null, "tags": null});
    let with = |extra: Value| {
        let mut vars = all.clone();
        vars.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        vars
    };
    for (vars, message) in [
        (
            with(json!({"volumeId": id, "permission": "all"})),
            "The permission must be read, write or view.",
        ),
        (
            with(json!({"volumeId": id, "name": " "})),
            "The name cannot be empty.",
        ),
        (
            with(json!({"volumeId": "no-such-volume"})),
            "Volume not found.",
        ),
    ] {
        assert_eq!(error(&admin(&sim, edit, vars).await), message);
    }
    let member = sign_in(&sim, seed::MEMBER_EMAIL, seed::MEMBER_PASSWORD).await;
    let (token, uid) = (
        member["data"]["signIn"]["idtoken"]
            .as_str()
            .unwrap()
            .to_string(),
        member["data"]["signIn"]["uid"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let target_volume = admin(
        &sim,
        "mutation($o: String!) { createVolume(organizationId: $o, name: \"Target only\") }",
        json!({"o": TARGET}),
    )
    .await;
    let target_volume = data(&target_volume, "createVolume");
    let v = gql(
        &sim,
        Auth::Bearer(&token, Some(&uid)),
        edit,
        with(json!({"volumeId": target_volume, "name": "Taken"})),
    )
    .await;
    assert_eq!(
        error(&v),
        "Volume not found.",
        "not a member of the target org"
    );
    assert_eq!(sim.writes("volumes").unwrap().updates, 1);
}

const VOLUME_DATA_Q: &str = "query getVolumeData($volumeId: String!, $keys: [String], $dir: String, $recursive: Boolean, $limit: Int, $cursor: String, $filters: VolumeDataFilter) { getVolumeData(volumeId: $volumeId, keys: $keys, dir: $dir, recursive: $recursive, limit: $limit, cursor: $cursor, filters: $filters) { key size hash url updatedAt } }";
const UPLOAD_Q: &str = "mutation uploadVolumeData($volumeId: String!, $key: String!, $size: Float!) { uploadVolumeData(volumeId: $volumeId, key: $key, size: $size) { uploadId key partSize urls } }";
const FINALIZE_Q: &str = "mutation uploadVolumeDataFinalizer($uploadId: String!, $key: String!, $parts: [MultipartInput!]) { uploadVolumeDataFinalizer(uploadId: $uploadId, key: $key, parts: $parts) }";
const DELETE_DATA_Q: &str = "mutation deleteVolumeData($volumeId: String!, $keys: [String]!) { deleteVolumeData(volumeId: $volumeId, keys: $keys) }";

/// The template volume named `name`.
fn volume_named(sim: &RenderedAiSimulator, name: &str) -> String {
    sim.objects("volumes", T)
        .unwrap()
        .into_iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["volumeId"].as_str().map(str::to_string))
        .unwrap()
}

async fn list_files(sim: &RenderedAiSimulator, volume: &str, vars: Value) -> Value {
    let mut v = json!({"volumeId": volume, "keys": [], "dir": "", "recursive": true, "limit": 100, "cursor": null, "filters": {}});
    for (k, x) in vars.as_object().unwrap() {
        v[k] = x.clone();
    }
    data(&admin(sim, VOLUME_DATA_Q, v).await, "getVolumeData")
}

/// Seeded files listed (recursively or one level, under a directory, by key, paged by key)
/// with MD5 hashes and signed, expiring download URLs that carry no credential and serve the
/// bytes; a tampered URL is refused.
#[tokio::test]
async fn volume_files_are_listed_and_downloaded_from_signed_urls() {
    let sim = start().await;
    let vol = volume_named(&sim, "Backgrounds");
    let all = list_files(&sim, &vol, json!({})).await;
    assert_eq!(
        ids(&all, "key"),
        [
            "README.txt",
            "backgrounds/sky/clear.jpg",
            "backgrounds/street/day.png",
            "backgrounds/street/night.png"
        ]
    );
    let top = list_files(&sim, &vol, json!({"recursive": false})).await;
    assert_eq!(ids(&top, "key"), ["README.txt", "backgrounds/"]);
    assert!(top[1]["size"] == 0.0 && top[1]["url"].is_null(), "{top}");
    let street = list_files(&sim, &vol, json!({"dir": "backgrounds/street"})).await;
    assert_eq!(ids(&street, "key"), ["day.png", "night.png"]);
    let one = list_files(&sim, &vol, json!({"keys": ["backgrounds/sky/clear.jpg"]})).await;
    assert_eq!(ids(&one, "key"), ["backgrounds/sky/clear.jpg"]);
    let page = list_files(&sim, &vol, json!({"limit": 2, "cursor": "README.txt"})).await;
    assert_eq!(
        ids(&page, "key"),
        ["backgrounds/sky/clear.jpg", "backgrounds/street/day.png"]
    );

    let http = reqwest::Client::new();
    for f in all.as_array().unwrap() {
        let key = f["key"].as_str().unwrap();
        let size = f["size"].as_f64().unwrap() as usize;
        let url = f["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/files/", sim.base_url)),
            "{url}"
        );
        assert!(!url.contains(seed::API_KEY), "no credential in a URL");
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(bytes.to_vec(), seed::file_bytes(key, size), "{key}");
        assert_eq!(
            f["hash"].as_str().unwrap(),
            renderedai::state::md5_hex(&bytes),
            "hash = MD5 hex of the content"
        );
        // One character changed: refused.
        let mut tampered = url.to_string();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let resp = http.get(&tampered).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403);
    }
    // A volume of an org the caller is not in is not listed.
    sim.add_user("outsider@x.io", "Out", Some("pw-outsider"));
    let key = sim
        .issue_api_key("outsider@x.io", "k", Scope::User, None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let v = gql(
        &sim,
        Auth::Key(&key),
        VOLUME_DATA_Q,
        json!({"volumeId": vol, "recursive": true}),
    )
    .await;
    assert_eq!(error(&v), "Volume not found.");
}

/// Multipart upload: one URL per part, parts PUT in any order answered with ETags, the
/// finalizer assembling them in order (checking every ETag and the size), the file listed with
/// its MD5; a finalizer repeated, a wrong ETag, a missing part, an oversized file or part and a
/// bad key are refused; deleteVolumeData deletes keys and directories.
#[tokio::test]
async fn volume_files_are_uploaded_in_parts_and_deleted() {
    let sim = start().await;
    let vol = volume_named(&sim, "Textures");
    let http = reqwest::Client::new();
    let content: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let ticket = data(
        &admin(
            &sim,
            UPLOAD_Q,
            json!({"volumeId": vol, "key": "wood/oak.png", "size": 150000.0}),
        )
        .await,
        "uploadVolumeData",
    );
    let part = ticket["partSize"].as_u64().unwrap() as usize;
    let urls: Vec<String> = ticket["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), content.len().div_ceil(part));
    assert!(urls.len() > 1);
    let mut parts = Vec::new();
    for (i, url) in urls.iter().enumerate().rev() {
        let chunk = content[i * part..((i + 1) * part).min(content.len())].to_vec();
        let resp = http.put(url).body(chunk).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        assert!(etag.starts_with('"'), "{etag}");
        parts.push(json!({"partNumber": i + 1, "eTag": etag}));
    }
    // A part larger than the part size is refused.
    let resp = http
        .put(&urls[0])
        .body(vec![0u8; part + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let upload_id = ticket["uploadId"].clone();
    // A wrong ETag, then a missing part: refused, the upload still open.
    let mut wrong = parts.clone();
    wrong[0]["eTag"] = json!("\"0123\"");
    let v = admin(
        &sim,
        FINALIZE_Q,
        json!({"uploadId": upload_id, "key": "wood/oak.png", "parts": wrong}),
    )
    .await;
    assert!(error(&v).contains("eTag"), "{v}");
    let v = admin(
        &sim,
        FINALIZE_Q,
        json!({"uploadId": upload_id, "key": "wood/oak.png", "parts": &parts[1..]}),
    )
    .await;
    assert!(error(&v).contains("cover"), "{v}");
    let before = sim.writes("volume_data").unwrap();
    let v = admin(
        &sim,
        FINALIZE_Q,
        json!({"uploadId": upload_id, "key": "wood/oak.png", "parts": parts}),
    )
    .await;
    assert_eq!(data(&v, "uploadVolumeDataFinalizer"), true);
    assert_eq!(
        sim.writes("volume_data").unwrap().creates,
        before.creates + 1
    );
    assert_eq!(sim.volume_file(&vol, "wood/oak.png").unwrap(), content);
    let listed = list_files(&sim, &vol, json!({})).await;
    assert_eq!(listed[0]["key"], "wood/oak.png");
    assert_eq!(listed[0]["size"], 150000.0);
    assert_eq!(listed[0]["hash"], renderedai::state::md5_hex(&content));
    // The same finalizer again (a client repeating blindly): the upload is gone.
    let v = admin(
        &sim,
        FINALIZE_Q,
        json!({"uploadId": upload_id, "key": "wood/oak.png", "parts": parts}),
    )
    .await;
    assert_eq!(error(&v), "Upload not found.");
    assert_eq!(
        sim.writes("volume_data").unwrap().creates,
        before.creates + 1
    );

    // Bounds and keys.
    for (key, size) in [
        ("big.bin", (renderedai::state::MAX_FILE_BYTES + 1) as f64),
        ("../escape", 1.0),
        ("/abs", 1.0),
        ("dir/", 1.0),
        ("half", 1.5),
    ] {
        let v = admin(
            &sim,
            UPLOAD_Q,
            json!({"volumeId": vol, "key": key, "size": size}),
        )
        .await;
        assert!(v.get("errors").is_some(), "{key}: {v}");
    }

    // An empty file is one empty part.
    let t = data(
        &admin(
            &sim,
            UPLOAD_Q,
            json!({"volumeId": vol, "key": "wood/empty", "size": 0.0}),
        )
        .await,
        "uploadVolumeData",
    );
    let url = t["urls"][0].as_str().unwrap();
    let etag = http.put(url).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let v = admin(&sim, FINALIZE_Q, json!({"uploadId": t["uploadId"], "key": "wood/empty", "parts": [{"partNumber": 1, "eTag": etag}]})).await;
    assert_eq!(data(&v, "uploadVolumeDataFinalizer"), true);

    // Deleting a directory and a key that does not exist.
    let v = admin(
        &sim,
        DELETE_DATA_Q,
        json!({"volumeId": vol, "keys": ["wood/", "nothing"]}),
    )
    .await;
    assert_eq!(data(&v, "deleteVolumeData"), true);
    assert_eq!(list_files(&sim, &vol, json!({})).await, json!([]));
    assert_eq!(
        sim.writes("volume_data").unwrap().deletes,
        before.deletes + 2
    );
}
