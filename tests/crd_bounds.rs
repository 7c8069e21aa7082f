//! The CRDs' bounds, enforced by an API server (the in-repo one, or `ORGOPS_E2E_KUBECONFIG`'s
//! cluster), agree with what `orgops apply` checks without one: every case below is accepted or
//! refused by both, or by neither.

mod support;

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use orgops::api::{ClusterVendorConnection, OrgMembership, Organization, VendorConnection};
use serde_json::{Value, json};
use support::cluster::Cluster;

struct Case {
    what: &'static str,
    kind: &'static str,
    spec: Value,
    /// Refused, with this in the API server's message (and `orgops apply`'s field).
    refused: Option<(&'static str, &'static str)>,
}

fn org(patch: Value) -> Value {
    let mut spec = json!({"vendor": "rossum", "displayName": "DE", "connectionRef": {"name": "c"}});
    merge(&mut spec, patch);
    spec
}

fn cluster_conn(patch: Value) -> Value {
    let mut spec = json!({"vendor": "rossum",
                          "credentialsSecretRef": {"name": "creds", "namespace": "ops"}});
    merge(&mut spec, patch);
    spec
}

fn merge(spec: &mut Value, patch: Value) {
    for (k, v) in patch.as_object().unwrap() {
        spec[k] = v.clone();
    }
}

fn cases() -> Vec<Case> {
    let interval = |what, value: &str, refused| Case {
        what,
        kind: "Organization",
        spec: org(json!({ "syncInterval": value })),
        refused,
    };
    vec![
        interval("the default", "10m", None),
        interval("the floor", "1s", None),
        interval("the ceiling", "24h", None),
        interval("hours and minutes", "1h30m", None),
        interval("a fraction", "0.5h", None),
        interval(
            "below the floor",
            "999ms",
            Some(("spec.syncInterval", "must be between 1s and 24h")),
        ),
        interval(
            "above the ceiling",
            "24h1s",
            Some(("spec.syncInterval", "must be between 1s and 24h")),
        ),
        interval(
            "the issue's value",
            "99999999999999999999h",
            Some(("spec.syncInterval", "spec.syncInterval")),
        ),
        interval(
            "many large numbers",
            "99999h99999h99999h99999h99999h",
            Some(("spec.syncInterval", "must be between 1s and 24h")),
        ),
        interval(
            "longer than 32",
            "1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h",
            Some(("spec.syncInterval", "spec.syncInterval")),
        ),
        interval(
            "days",
            "1d",
            Some(("spec.syncInterval", "spec.syncInterval")),
        ),
        Case {
            what: "a connection name that is no object name",
            kind: "Organization",
            spec: org(json!({"connectionRef": {"name": "../Conn"}})),
            refused: Some(("spec.connectionRef.name", "spec.connectionRef.name")),
        },
        Case {
            what: "too many kinds",
            kind: "Organization",
            spec: org(json!({"template": {"displayName": "T", "include": vec!["queues"; 65]}})),
            refused: Some(("spec.template.include", "spec.template.include")),
        },
        Case {
            what: "allowed namespaces",
            kind: "ClusterVendorConnection",
            spec: cluster_conn(json!({"allowedNamespaces": ["tenants", "team-a"]})),
            refused: None,
        },
        Case {
            what: "an allowed namespace that is no namespace name",
            kind: "ClusterVendorConnection",
            spec: cluster_conn(json!({"allowedNamespaces": ["tenants", "Team_A"]})),
            refused: Some(("spec.allowedNamespaces[1]", "spec.allowedNamespaces[1]")),
        },
        Case {
            what: "an allowed namespace with a dot",
            kind: "ClusterVendorConnection",
            spec: cluster_conn(json!({"allowedNamespaces": ["a.b"]})),
            refused: Some(("spec.allowedNamespaces[0]", "spec.allowedNamespaces[0]")),
        },
        Case {
            what: "a Secret namespace that is no namespace name",
            kind: "ClusterVendorConnection",
            spec: cluster_conn(
                json!({"credentialsSecretRef": {"name": "creds", "namespace": "Ops"}}),
            ),
            refused: Some((
                "spec.credentialsSecretRef.namespace",
                "spec.credentialsSecretRef.namespace",
            )),
        },
        Case {
            what: "no requests at all",
            kind: "VendorConnection",
            spec: json!({"vendor": "rossum", "credentialsSecretRef": {"name": "creds"}, "rateLimit": 0}),
            refused: Some(("spec.rateLimit", "spec.rateLimit")),
        },
        Case {
            what: "more requests than any account allows",
            kind: "VendorConnection",
            spec: json!({"vendor": "rossum", "credentialsSecretRef": {"name": "creds"}, "rateLimit": 10001}),
            refused: Some(("spec.rateLimit", "spec.rateLimit")),
        },
        Case {
            what: "a membership of an Organization that is no object name",
            kind: "OrgMembership",
            spec: json!({"organizationRef": {"name": "De_1"}, "user": {"email": "a@b.example"}, "role": "admin"}),
            refused: Some(("spec.organizationRef.name", "spec.organizationRef.name")),
        },
        Case {
            what: "a membership with a queue name too long",
            kind: "OrgMembership",
            spec: json!({"organizationRef": {"name": "de"}, "user": {"email": "a@b.example"}, "role": "admin", "queues": ["q".repeat(256)]}),
            refused: Some(("spec.queues[0]", "spec.queues[0]")),
        },
    ]
}

fn resource(kind: &str) -> ApiResource {
    match kind {
        "Organization" => ApiResource::erase::<Organization>(&()),
        "OrgMembership" => ApiResource::erase::<OrgMembership>(&()),
        "VendorConnection" => ApiResource::erase::<VendorConnection>(&()),
        _ => ApiResource::erase::<ClusterVendorConnection>(&()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_and_orgops_apply_refuse_the_same_specs() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("bounds").await;
    for (i, case) in cases().into_iter().enumerate() {
        let ar = resource(case.kind);
        let api: Api<DynamicObject> = if case.kind == "ClusterVendorConnection" {
            Api::all_with(c.client.clone(), &ar)
        } else {
            Api::namespaced_with(c.client.clone(), &ns, &ar)
        };
        let doc = json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": case.kind,
            "metadata": {"name": format!("{ns}-case-{i}")},
            "spec": case.spec,
        });
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let server = api.create(&PostParams::default(), &obj).await;
        let local = orgops::cli::schema::check_spec(case.kind, &doc);
        match case.refused {
            None => {
                assert!(server.is_ok(), "{}: refused: {:?}", case.what, server.err());
                assert_eq!(local, Ok(()), "{}: refused by orgops apply", case.what);
            }
            Some((field, needle)) => {
                let status = match server {
                    Err(kube::Error::Api(s)) => s,
                    other => panic!("{}: accepted or failed otherwise: {other:?}", case.what),
                };
                assert_eq!(status.code, 422, "{}: {}", case.what, status.message);
                assert!(
                    status.message.contains(needle),
                    "{}: {needle:?} not in {}",
                    case.what,
                    status.message
                );
                let local = local.expect_err(case.what);
                assert_eq!(local.field, field, "{}: {}", case.what, local.message);
            }
        }
    }
    // The server is still there after the values that crashed replicas.
    let api: Api<DynamicObject> =
        Api::namespaced_with(c.client.clone(), &ns, &resource("Organization"));
    assert!(api.list(&Default::default()).await.is_ok());
}
