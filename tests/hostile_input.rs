//! Property tests over everything orgops reads that someone else wrote: manifests (every kind
//! `orgops apply` reads, with huge numbers, deep nesting, odd unicode, wrong types and broken
//! YAML) and vendor responses (random JSON through the Rossum and OpenLattice models, error
//! bodies of every format, page splitting, id parsing and reference decoding). Nothing panics; a refused manifest never quotes a Secret's
//! value. 256 cases per property by default; `PROPTEST_CASES=N` for more.

mod support;

use std::path::Path;

use orgops::cli::manifests::load_str;
use orgops::vendors::rossum::client::{id_from_url, owner_marker, split_page};
use orgops::vendors::rossum::models;
use proptest::prelude::*;
use serde_json::Value;

// ---- manifests --------------------------------------------------------------------------

/// Values that break parsers: huge and non-finite numbers, durations past any bound, YAML's
/// special words and syntax, odd unicode, long and deeply nested values. Single-line unless
/// `multiline`.
fn hostile_scalar(multiline: bool) -> BoxedStrategy<String> {
    let one_line = prop_oneof![
        Just("99999999999999999999".to_string()),
        Just("-99999999999999999999999999999999999999".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e400".to_string()),
        Just("-.inf".to_string()),
        Just(".nan".to_string()),
        Just("0x7fffffffffffffffff".to_string()),
        Just("0o7777777777777777777777777".to_string()),
        Just("99999999999999999999h".to_string()),
        Just("0s".to_string()),
        Just("24h0.000000001s".to_string()),
        "[0-9]{1,6}(\\.[0-9]{1,30})?(ms|s|m|h|d|us){1,6}",
        "-?[0-9]{1,60}(\\.[0-9]{0,40})?(e[+-]?[0-9]{1,4})?",
        Just("~".to_string()),
        Just("null".to_string()),
        Just("yes".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[a, [b, {c: d}]]".to_string()),
        Just("*undefined".to_string()),
        Just("&anchor value".to_string()),
        Just("!!binary AAAA".to_string()),
        Just("!!int not-a-number".to_string()),
        Just("!custom tag".to_string()),
        Just("\"\\uD800 lone surrogate\"".to_string()),
        Just("\"\\u0000 nul\"".to_string()),
        Just("'\u{202e}right-to-left'".to_string()),
        Just("\u{feff}bom".to_string()),
        Just("e\u{301}\u{301}\u{301}".to_string()),
        Just("🦀🦀".to_string()),
        Just("ǅ".to_string()),
        Just("İ".to_string()),
        "[a-z0-9.-]{0,300}",
        "[A-Za-z_./ ]{1,40}",
        "\\PC{0,40}",
        (1usize..200).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        (1usize..120).prop_map(|d| format!("{}x{}", "{a: ".repeat(d), "}".repeat(d))),
    ];
    if multiline {
        prop_oneof![
            4 => one_line,
            1 => Just("|\n      block\n      text".to_string()),
            1 => Just(">-\n      folded".to_string()),
            1 => Just("\n      - a\n      - b".to_string()),
            1 => Just("\n      deep:\n        deeper: [1, 2]".to_string()),
        ]
        .boxed()
    } else {
        one_line.boxed()
    }
}

/// A sane value (3 in 4) or a hostile one.
fn value(sane: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(sane).prop_map(str::to_string),
        1 => hostile_scalar(true),
    ]
    .boxed()
}

/// A random alphanumeric Secret value that no error message could contain by chance.
fn secret_token() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9]{18,24}", "[1-9][0-9]{17,20}"]
}

/// YAML-significant decoration around a Secret value, on its own line (no newline: the value
/// cannot leave the Secret's line and become, say, another document's kind).
fn decoration() -> impl Strategy<Value = String> {
    prop::collection::vec(
        proptest::sample::select(
            &[
                "", "\"", "'", "{", "}", "[", "]", ": ", ", ", "#", "&", "*", "!", "!!", "|", ">",
                "%", "@", "`", "\t", " ", "- ", "? ", "\\", "\u{0}", "\u{7f}", "\u{202e}", "é",
                "0x", ".", "e999", "~",
            ][..],
        ),
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

#[derive(Debug, Clone)]
struct Manifest {
    text: String,
    token: String,
}

fn manifest() -> impl Strategy<Value = Manifest> {
    let secret = (
        secret_token(),
        decoration(),
        decoration(),
        proptest::sample::select(&["stringData", "data"][..]),
        value(&["creds", "rossum-admin"]),
    );
    let connection = (
        value(&["rossum", "dataloop", "rossum"]),
        value(&["https://elis.rossum.ai/api/v1", "http://127.0.0.1:1/api/v1"]),
        value(&["10", "1", "10000", "0"]),
        value(&["creds"]),
    );
    let organization = (
        value(&["de", "nordics", "x.y"]),
        value(&["German department", "Nordics"]),
        value(&["10m", "1h30m", "30s", "24h"]),
        value(&["Template org", "T"]),
        value(&["[queues, schemas]", "[]"]),
        value(&["{theme: dark}", "null"]),
        value(&["false", "true"]),
    );
    let membership = (
        value(&["george@example.com", "a@b.c"]),
        value(&["admin", "viewer"]),
        value(&["[Inbox, Invoices]", "[]"]),
    );
    let cluster = (value(&["[tenants]", "[a, b]", "[]"]), value(&["ops"]));
    (
        secret,
        connection,
        organization,
        membership,
        cluster,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(s, c, o, m, cl, order)| {
            let (token, before, after, field, secret_name) = s;
            // Under `data` the token is not even base64.
            let value = format!("{before}{token}{after}");
            let secret = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret_name}\n  namespace: tenants\n{field}:\n  username: admin@example.com\n  password: {value}\n"
            );
            let connection = format!(
                "apiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata:\n  name: rossum\n  namespace: tenants\nspec:\n  vendor: {}\n  endpoint: {}\n  rateLimit: {}\n  credentialsSecretRef:\n    name: {}\n",
                c.0, c.1, c.2, c.3
            );
            let organization = format!(
                "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata:\n  name: {}\n  namespace: tenants\nspec:\n  vendor: rossum\n  displayName: {}\n  syncInterval: {}\n  connectionRef:\n    name: rossum\n  template:\n    displayName: {}\n    include: {}\n  settings:\n    rossum:\n      uiSettings: {}\n  suspend: {}\n",
                o.0, o.1, o.2, o.3, o.4, o.5, o.6
            );
            let membership = format!(
                "apiVersion: orgops.io/v1alpha1\nkind: OrgMembership\nmetadata:\n  name: george\n  namespace: tenants\nspec:\n  organizationRef:\n    name: de\n  user:\n    email: {}\n  role: {}\n  queues: {}\n",
                m.0, m.1, m.2
            );
            let cluster = format!(
                "apiVersion: orgops.io/v1alpha1\nkind: ClusterVendorConnection\nmetadata:\n  name: group\nspec:\n  vendor: rossum\n  allowedNamespaces: {}\n  credentialsSecretRef:\n    name: creds\n    namespace: {}\n",
                cl.0, cl.1
            );
            let mut docs = vec![connection, organization, membership, cluster];
            docs.insert(order.index(docs.len() + 1), secret);
            Manifest {
                text: docs.join("---\n"),
                token,
            }
        })
}

/// Every 6-character piece of `token`: a refused manifest's error shows none of them.
fn pieces(token: &str) -> Vec<&str> {
    (0..=token.len().saturating_sub(6))
        .map(|i| &token[i..i + 6])
        .collect()
}

/// Edits that break YAML anywhere: delete, insert YAML syntax, repeat or drop a line.
#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, &'static str),
    RepeatLine(prop::sample::Index),
    DropLine(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1usize..20).prop_map(|(i, n)| Edit::Delete(i, n)),
        (
            any::<prop::sample::Index>(),
            proptest::sample::select(
                &[
                    ":",
                    "{",
                    "}",
                    "[",
                    "]",
                    "\"",
                    "'",
                    "\t",
                    "\n",
                    "\n---\n",
                    "- ",
                    "&a ",
                    "*a",
                    "!!str ",
                    "|",
                    "# ",
                    "%YAML 1.2\n",
                    "\u{0}",
                    "\u{85}",
                    "\u{2028}",
                    "🦀",
                    "99999999999999999999",
                    "\n  ",
                    "\nkind: Secret\n",
                ][..]
            )
        )
            .prop_map(|(i, s)| Edit::Insert(i, s)),
        any::<prop::sample::Index>().prop_map(Edit::RepeatLine),
        any::<prop::sample::Index>().prop_map(Edit::DropLine),
    ]
}

fn apply_edit(text: &str, edit: &Edit) -> String {
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match edit {
        Edit::Delete(at, n) => {
            let start = boundaries[at.index(boundaries.len())];
            let end = boundaries
                .iter()
                .copied()
                .find(|&b| b >= start + n)
                .unwrap_or(text.len());
            format!("{}{}", &text[..start], &text[end..])
        }
        Edit::Insert(at, s) => {
            let at = boundaries[at.index(boundaries.len())];
            format!("{}{s}{}", &text[..at], &text[at..])
        }
        Edit::RepeatLine(at) if !lines.is_empty() => {
            let i = at.index(lines.len());
            let mut out = lines.clone();
            out.insert(i, lines[i]);
            out.concat()
        }
        Edit::DropLine(at) if !lines.is_empty() => {
            let mut out = lines.clone();
            out.remove(at.index(lines.len()));
            out.concat()
        }
        _ => text.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// Hostile values in every field of every kind: never a panic, and a refused manifest's
    /// error shows nothing of the Secret's value.
    #[test]
    fn manifests_with_hostile_values_never_panic_nor_echo_a_secret(m in manifest()) {
        if let Err(e) = load_str(Path::new("m.yaml"), &m.text) {
            let shown = e.to_string();
            for piece in pieces(&m.token) {
                prop_assert!(
                    !shown.contains(piece),
                    "the error shows the Secret's value ({piece}):\n{shown}\n--- input ---\n{}",
                    m.text
                );
            }
            prop_assert!(shown.starts_with("m.yaml"), "no file named: {shown}");
        }
    }

    /// The same manifests broken anywhere (the Secret's value may now sit anywhere): never a
    /// panic, and every error names the file.
    #[test]
    fn broken_manifests_never_panic(
        m in manifest(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let text = edits.iter().fold(m.text, |t, e| apply_edit(&t, e));
        if let Err(e) = load_str(Path::new("m.yaml"), &text) {
            prop_assert!(e.to_string().starts_with("m.yaml"), "{e}");
        }
    }

    /// Any text at all.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}|[\\[\\]{}:,\"'\\-#&*!|>%@` \t\n a0.]{0,400}") {
        if let Err(e) = load_str(Path::new("m.yaml"), &text) {
            prop_assert!(e.to_string().starts_with("m.yaml"), "{e}");
        }
    }
}

// ---- vendor responses -------------------------------------------------------------------

const KEYS: &[&str] = &[
    "id",
    "url",
    "name",
    "metadata",
    "orgops",
    "owner",
    "pagination",
    "results",
    "next",
    "previous",
    "total",
    "total_pages",
    "organization",
    "organization_group",
    "users",
    "groups",
    "queues",
    "is_active",
    "created_at",
    "creator",
    "key",
    "ui_settings",
    "expires_at",
    "user",
    "email",
    "username",
    "workspace",
    "schema",
    "inbox",
    "hooks",
    "run_after",
    "content",
    "actions",
    "type",
];

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("https://elis.rossum.ai/api/v1/organizations/18446744073709551615".to_string()),
        Just("https://elis.rossum.ai/api/v1/organizations/18446744073709551616".to_string()),
        Just("https://x/api/v1/queues/-1/".to_string()),
        Just("/////".to_string()),
        Just("1970-01-01T00:00:00Z".to_string()),
        Just("-009999-01-01T00:00:00Z".to_string()),
        "https?://[a-z.:0-9]{0,20}(/[a-z0-9%.]{0,10}){0,5}/?",
        "[0-9]{0,30}",
        "\\PC{0,30}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        hostile_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        let key = prop_oneof![
            3 => proptest::sample::select(KEYS).prop_map(str::to_string),
            1 => "\\PC{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A list response that is nearly right: the envelope, objects with the usual fields, any of
/// them of the wrong type.
fn page() -> impl Strategy<Value = Value> {
    let object = prop::collection::btree_map(proptest::sample::select(KEYS), json(), 0..10)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    (
        prop::collection::vec(object, 0..5),
        json(),
        prop_oneof![
            Just(Value::Null),
            hostile_text().prop_map(Value::String),
            json()
        ],
    )
        .prop_map(|(results, total, next)| {
            serde_json::json!({
                "pagination": {"next": next, "previous": null, "total": total},
                "results": results,
            })
        })
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k);
            strings(x, out)
        }),
        _ => {}
    }
}

/// A Rossum client that never sends anything here: for its reference decoding.
fn client() -> &'static dyn orgops::vendors::VendorClient {
    static CLIENT: std::sync::OnceLock<std::sync::Arc<dyn orgops::vendors::VendorClient>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            orgops::vendors::connect(
                orgops::api::Vendor::Rossum,
                Some("http://127.0.0.1:9/api/v1"),
                support::credentials(support::PASSWORD),
                orgops::vendors::HttpConfig::default(),
                &orgops::vendors::Endpoints::default(),
            )
            .expect("a client")
        })
        .as_ref()
}

/// Everything a Rossum response goes through before the engine sees it.
fn decode_everything(v: &Value) {
    macro_rules! decode {
        ($($t:ty),* $(,)?) => {$(
            let _ = serde_json::from_value::<$t>(v.clone());
            if let Some(results) = v.get("results") {
                let _ = serde_json::from_value::<Vec<$t>>(results.clone());
            }
        )*};
    }
    decode!(
        models::Page<models::Organization>,
        models::Page<Value>,
        models::Organization,
        models::CreatedOrganization,
        models::LoginResponse,
        models::MembershipTokenResponse,
        models::User,
        models::Group,
        models::Membership,
        models::Workspace,
        models::Schema,
        models::Queue,
        models::Inbox,
        models::Hook,
        models::Connector,
        models::EmailTemplate,
        models::Label,
        models::Rule,
        models::Pagination,
    );
    if let Ok((items, next)) = split_page(v.clone()) {
        for item in &items {
            let _ = serde_json::from_value::<models::Organization>(item.clone());
        }
        if let Some(next) = next {
            let _ = id_from_url(&next);
        }
    }
    let client = client();
    let mut all = Vec::new();
    strings(v, &mut all);
    for s in all {
        let _ = id_from_url(s);
        let _ = owner_marker(s, Some(s));
    }
    let _ = client.decode_ref(v);
    decode_openlattice(v);
    decode_dataloop(v);
}

/// Everything a Dataloop response goes through before the engine sees it: the typed models,
/// and the normalisations that turn read shapes into copy shapes.
fn decode_dataloop(v: &Value) {
    use orgops::vendors::dataloop::models as dl;
    use orgops::vendors::dataloop::vendor as dv;
    macro_rules! decode {
        ($($t:ty),* $(,)?) => {$(
            let _ = serde_json::from_value::<$t>(v.clone());
            let _ = serde_json::from_value::<Vec<$t>>(v.clone());
        )*};
    }
    decode!(dl::Me, dl::TokenResponse, dl::ProjectMember, dl::Group);
    if let Ok(o) = serde_json::from_value::<dl::Org>(v.clone()) {
        let _ = (o.name(), o.account_id(), o.account_name(), o.created_at());
    }
    if let Ok(m) = serde_json::from_value::<dl::Member>(v.clone()) {
        let _ = (m.is_pending(), m.is_for("a@b.example"));
    }
    if let Ok(p) = serde_json::from_value::<dl::Project>(v.clone()) {
        let _ = (p.name(), p.org_id());
    }
    if let Ok(c) = serde_json::from_value::<dl::CacheState>(v.clone()) {
        let _ = (c.is_ready(), c.pod_type());
    }
    let _ = dl::timestamp(v);
    let _ = dl::ref_id(v);
    let projects: std::collections::HashSet<String> = ["p1".to_string()].into();
    let items: Vec<Value> = match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    for item in items {
        let driver = dv::normalize_driver(item.clone(), Some("p1"));
        assert!(driver.get("authentication").is_none());
        let _ = dv::driver_write_body(&driver, "me@x.example");
        let _ = dv::driver_patch_body(&item);
        let _ = dv::normalize_linked(item.clone(), &projects);
        let _ = dv::merge_linked(item.clone(), v, &projects, true);
        let integration = dv::normalize_integration(item);
        assert!(integration.get("options").is_none());
    }
}

/// Everything an OpenLattice response goes through before the engine sees it.
fn decode_openlattice(v: &Value) {
    use orgops::vendors::http::ErrorFormat;
    use orgops::vendors::openlattice::models as ol;
    macro_rules! decode {
        ($($t:ty),* $(,)?) => {$(
            let _ = serde_json::from_value::<$t>(v.clone());
            let _ = serde_json::from_value::<Vec<$t>>(v.clone());
        )*};
    }
    decode!(
        ol::Organization,
        ol::SecurablePrincipal,
        ol::Role,
        ol::OrganizationMember,
        ol::Auth0User,
        ol::Grant,
        ol::ErrorsDto,
        std::collections::BTreeMap<String, ol::Auth0User>,
        ol::Grants,
    );
    if let Ok(org) = serde_json::from_value::<ol::Organization>(v.clone()) {
        for role in &org.roles {
            let _ = org.is_admin_role(role);
        }
    }
    if let Ok(m) = serde_json::from_value::<ol::OrganizationMember>(v.clone()) {
        let _ = m.roles_in(uuid::Uuid::nil()).count();
        let _ = m.user_id();
    }
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    for format in [
        ErrorFormat::Drf,
        ErrorFormat::OpenLattice,
        ErrorFormat::GraphQl,
        ErrorFormat::Dataloop,
    ] {
        let detail = format.detail(&bytes);
        assert!(detail.len() <= 1024 && !detail.contains('\n'), "{detail:?}");
    }
    let mut all = Vec::new();
    strings(v, &mut all);
    for s in all {
        let _ = orgops::vendors::openlattice::user_segment(s);
        let _ = orgops::vendors::openlattice::search_email(s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// Random JSON through every Rossum model, the page splitter and id parsing.
    #[test]
    fn random_vendor_json_never_panics(v in json()) {
        decode_everything(&v);
    }

    /// Nearly-right list responses, objects of every kind with fields of the wrong type.
    #[test]
    fn nearly_right_pages_never_panic(v in page()) {
        decode_everything(&v);
    }

    /// Bytes off the wire that are not even JSON.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            decode_everything(&v);
        }
    }
}

#[test]
fn the_properties_can_see_a_leak() {
    // The check itself: a message with a piece of the token is caught.
    let token = "Abcdefghijklmnopqr12";
    let shown = "m.yaml (document 1): invalid YAML: near ghijkl";
    assert!(pieces(token).iter().any(|p| shown.contains(p)));
    // And the loader refuses a Secret whose value breaks YAML without showing it.
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: c}}\nstringData:\n  password: \"{token}\n"
    );
    let e = load_str(Path::new("m.yaml"), &text)
        .unwrap_err()
        .to_string();
    assert!(pieces(token).iter().all(|p| !e.contains(p)), "{e}");
}
