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
use support::cluster::Cluster;
use support::e2e::{
    apply, cluster_with_operator, connection, drift_passes_write_nothing, example, kubectl_ok, wait,
};

/// A value no example holds: where it shows up, it came from the test's Secrets.
const SECRET_VALUE: &str = "e2e-integration-secret";
const CAROL: &str = "carol@orgops.example";

/// The Dataloop example (deploy/examples/dataloop-vision.yaml) moved into `ns`, re-synced every
/// second, with a namespaced VendorConnection to the simulator holding its admin API key.
fn manifests(ns: &str, endpoint: &str, api_key: &str) -> String {
    let org = example("dataloop-vision.yaml", ns, "dataloop")
        .replace(
            "  deletionPolicy: Orphan",
            "  syncInterval: 1s\n  deletionPolicy: Orphan",
        )
        .replace("REPLACE-ME", SECRET_VALUE);
    format!(
        "{}---\n{org}",
        connection(ns, "dataloop", endpoint, "apiKey", api_key)
    )
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
    let (c, ns, op) = cluster_with_operator("dataloop", "dl").await;
    apply(&c, &manifests(&ns, &sim.base_url, &sim.admin_api_key)).await;

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
    drift_passes_write_nothing(&op, &sim).await;

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

/// A namespaced connection to the simulator and an Organization adopting its target org.
fn adopting(ns: &str, name: &str, endpoint: &str, api_key: &str) -> String {
    format!(
        "{}---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  vendor: dataloop\n  displayName: {TARGET_ORG_NAME}\n  connectionRef: {{name: dataloop}}\n  settings: {{dataloop: {{plan: premium}}}}\n  deletionPolicy: Orphan\n",
        connection(ns, "dataloop", endpoint, "apiKey", api_key)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_never_manage_one_dataloop_org_and_the_metrics_say_why() {
    let sim = DataloopSimulator::start(0, Default::default())
        .await
        .unwrap();
    let c = Cluster::start().await;
    c.install_crds().await;
    let (first_ns, second_ns) = (c.namespace("dl-a").await, c.namespace("dl-b").await);
    // One operator watching both namespaces: one controller (and cache) per namespace.
    let op = support::operator::start(
        &c,
        &[&first_ns, &second_ns],
        &first_ns,
        "replica-0",
        15,
        &["--allowed-endpoints", "dataloop=http://127.0.0.1:*"],
    )
    .await;
    // The older Organization is in the namespace listed second (the controllers' caches are
    // per namespace: a claim must be checked against all of them).
    let (first_ns, second_ns) = (second_ns, first_ns);
    let endpoint = &sim.base_url;
    apply(
        &c,
        &adopting(&first_ns, "first", endpoint, &sim.admin_api_key),
    )
    .await;
    wait(&c, &first_ns, "org/first", "condition=Ready").await;

    // The same org, adopted from another namespace later: refused before any write, and
    // reported with the holder's name.
    let writes = sim.total_writes();
    apply(
        &c,
        &adopting(&second_ns, "second", endpoint, &sim.admin_api_key),
    )
    .await;
    wait(
        &c,
        &second_ns,
        "org/second",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=OwnedByAnother",
    )
    .await;
    let message = kubectl_ok(
        &c,
        &[
            "get",
            "org",
            "second",
            "-n",
            &second_ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
        ],
    )
    .await;
    assert!(message.contains(&format!("{first_ns}/first")), "{message}");
    assert_eq!(sim.total_writes(), writes, "the second Organization wrote");

    // The metrics count both, by Ready reason, from the caches of both namespaces.
    let ready = "orgops_resources{kind=\"organization\",ready=\"true\",reason=\"Ready\"}";
    let refused =
        "orgops_resources{kind=\"organization\",ready=\"false\",reason=\"OwnedByAnother\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while (op.metric(ready).await, op.metric(refused).await) != (1, 1) {
        assert!(
            Instant::now() < deadline,
            "readiness metrics:\n{}",
            op.metrics_text()
                .await
                .lines()
                .filter(|l| l.contains("orgops_resources") || l.contains("not_ready"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
