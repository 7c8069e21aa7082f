//! End to end for Dataloop: a real `orgops run` process, the Dataloop simulator and an API server
//! (the in-repo one, or `ORGOPS_E2E_KUBECONFIG`), driven with kubectl through the example
//! manifests: an adopted organization gets its plan and the template's setup (integrations made
//! with the credentials of Kubernetes Secrets), an invited person becomes Ready once they accept,
//! and deleting the resources leaves the adopted organization at Dataloop.

mod support;

use std::time::{Duration, Instant};

use orgops::simulator::dataloop::DataloopSimulator;
use orgops::simulator::dataloop::seed::{TARGET_ORG_ID, TARGET_ORG_NAME};
use orgops::simulator::kit::handle::SimulatorHandle;
use serde_json::Value;
use support::cluster::{Cluster, stderr, stdout};

/// A value no example holds: where it shows up, it came from the test's Secrets.
const SECRET_VALUE: &str = "e2e-integration-secret";
const CAROL: &str = "carol@orgops.example";

/// The Dataloop example (deploy/examples/dataloop-vision.yaml) moved into `ns`, re-synced every
/// second, with a namespaced VendorConnection to the simulator holding its admin API key.
fn manifests(ns: &str, endpoint: &str, api_key: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let org = std::fs::read_to_string(dir.join("dataloop-vision.yaml")).unwrap();
    let org = org
        .replace("namespace: tenants", &format!("namespace: {ns}"))
        .replace(
            "kind: ClusterVendorConnection\n    name: dataloop",
            "kind: VendorConnection\n    name: dataloop",
        )
        .replace(
            "  deletionPolicy: Orphan",
            "  syncInterval: 1s\n  deletionPolicy: Orphan",
        )
        .replace("REPLACE-ME", SECRET_VALUE);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: dataloop-admin, namespace: {ns}}}\nstringData:\n  apiKey: {api_key}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: dataloop, namespace: {ns}}}\nspec:\n  vendor: dataloop\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: dataloop-admin}}\n---\n{org}"
    )
}

async fn kubectl_ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.kubectl(args).await;
    assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
    stdout(&out)
}

async fn wait(c: &Cluster, ns: &str, what: &str, condition: &str) {
    let out = c
        .kubectl(&[
            "wait",
            &format!("--for={condition}"),
            what,
            "-n",
            ns,
            "--timeout=60s",
        ])
        .await;
    assert!(
        out.status.success(),
        "wait {what} {condition}: {}\n{}",
        stderr(&out),
        stdout(
            &c.kubectl(&["get", "org,orgm", "-n", ns, "-o", "yaml"])
                .await
        )
    );
}

fn named<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no {name:?} in {objects:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataloop_org_is_adopted_copied_joined_and_released_with_kubectl() {
    let sim = DataloopSimulator::start(0, Default::default())
        .await
        .unwrap();
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("dl").await;
    let op = support::operator::start(
        &c,
        &[&ns],
        &ns,
        "replica-0",
        15,
        &[
            "--allowed-endpoints",
            "dataloop=http://127.0.0.1:*",
            "--min-sync-interval",
            "1s",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, manifests(&ns, &sim.base_url, &sim.admin_api_key)).unwrap();
    kubectl_ok(&c, &["apply", "-f", file.to_str().unwrap()]).await;

    // Adopted by its name, with its plan and usage in status.
    wait(&c, &ns, "org/vision", "condition=Ready").await;
    let status: Value = serde_json::from_str(
        &kubectl_ok(&c, &["get", "org", "vision", "-n", &ns, "-o", "json"]).await,
    )
    .unwrap();
    assert_eq!(status["status"]["externalId"], TARGET_ORG_ID);
    let orgs = sim.objects("orgs", TARGET_ORG_ID).unwrap();
    assert_eq!(orgs.len(), 1, "{orgs:?}");
    assert_eq!(orgs[0]["name"], TARGET_ORG_NAME);
    assert_eq!(orgs[0]["plan"], "premium");
    // Usage as the settings left it: the new plan shows as the organization turns Ready.
    assert_eq!(status["status"]["usage"]["plan"], "premium", "{status}");

    // The template's setup, with each integration made from its Secret's values, which
    // never appear in the Organization's status or events.
    let integrations = sim.objects("integrations", TARGET_ORG_ID).unwrap();
    let s3 = named(&integrations, "acme-s3");
    let options = sim
        .integration_options(s3["id"].as_str().unwrap())
        .expect("the copy was made with credentials");
    assert_eq!(options["key"], SECRET_VALUE, "{options}");
    let projects = sim.objects("projects", TARGET_ORG_ID).unwrap();
    named(&projects, "Traffic cameras");
    let events = kubectl_ok(&c, &["get", "events", "-n", &ns, "-o", "json"]).await;
    for text in [&status.to_string(), &events] {
        assert!(!text.contains(SECRET_VALUE), "a credential leaked: {text}");
        assert!(!text.contains(&sim.admin_api_key), "the API key leaked");
    }

    // Carol is invited, and Ready once she accepts (within a sync interval, not an hour).
    wait(
        &c,
        &ns,
        "orgm/carol-in-vision",
        "jsonpath={.status.phase}=Invited",
    )
    .await;
    sim.accept_invitation(TARGET_ORG_ID, CAROL).unwrap();
    wait(
        &c,
        &ns,
        "orgm/carol-in-vision",
        "jsonpath={.status.phase}=Ready",
    )
    .await;
    let members = sim.objects("members", TARGET_ORG_ID).unwrap();
    let carol = members
        .iter()
        .find(|m| m["email"] == CAROL)
        .unwrap_or_else(|| panic!("{members:?}"));
    assert_eq!(
        (&carol["status"], &carol["role"]),
        (&"active".into(), &"member".into())
    );
    // Her project role (a scope) is given once she is a member.
    let project_members = sim.objects("project_members", TARGET_ORG_ID).unwrap();
    let traffic = named(&projects, "Traffic cameras")["id"].clone();
    assert!(
        project_members.iter().any(|pm| pm["email"] == CAROL
            && pm["projectId"] == traffic
            && pm["role"] == "annotator"),
        "{project_members:?}"
    );

    // Drift re-checks (every second here) change nothing at the vendor: counted over two full
    // passes, not after a sleep.
    let before = sim.total_writes();
    let series = "orgops_reconciles_total{kind=\"organization\",result=\"ready\"}";
    let start = op.metric(series).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while op.metric(series).await < start + 2 {
        assert!(Instant::now() < deadline, "no drift re-checks in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.total_writes(), before, "a re-sync wrote to the vendor");

    // Removing the membership removes Carol; deleting the Organization (Orphan) releases the
    // adopted org, which stays at Dataloop with its copies.
    kubectl_ok(
        &c,
        &[
            "delete",
            "orgm",
            "carol-in-vision",
            "-n",
            &ns,
            "--timeout=60s",
        ],
    )
    .await;
    assert!(
        !sim.objects("members", TARGET_ORG_ID)
            .unwrap()
            .iter()
            .any(|m| m["email"] == CAROL),
        "Carol is still a member"
    );
    kubectl_ok(&c, &["delete", "org", "vision", "-n", &ns, "--timeout=60s"]).await;
    assert_eq!(sim.org_ids(TARGET_ORG_NAME), [TARGET_ORG_ID]);
    assert_eq!(
        sim.objects("integrations", TARGET_ORG_ID).unwrap().len(),
        integrations.len()
    );
}
