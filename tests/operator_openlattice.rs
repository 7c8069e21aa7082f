//! End to end for OpenLattice: a real `orgops run` process, the OpenLattice simulator and an API
//! server (the in-repo one, or `ORGOPS_E2E_KUBECONFIG`), driven with kubectl: the same
//! controller, CLI and chart paths as Rossum, with no vendor special case.

mod support;

use std::time::{Duration, Instant};

use orgops::simulator::kit::handle::SimulatorHandle;
use orgops::simulator::openlattice::OpenLatticeSimulator;
use support::e2e::{
    apply, cluster_with_operator, connection, drift_passes_write_nothing, example, kubectl_ok, wait,
};

/// The OpenLattice example, moved into `ns`, with a namespaced VendorConnection to the simulator
/// holding the simulator's admin token.
fn manifests(ns: &str, endpoint: &str, token: &str) -> String {
    let org = example("openlattice-research.yaml", ns, "openlattice");
    format!(
        "{}---\n{org}",
        connection(ns, "openlattice", endpoint, "token", token)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openlattice_org_is_created_copied_joined_and_deleted_with_kubectl() {
    let sim = OpenLatticeSimulator::start(0, Default::default())
        .await
        .unwrap();
    let (c, ns, op) = cluster_with_operator("openlattice", "ol").await;
    let text = manifests(&ns, &sim.base_url, &sim.admin_token).replace(
        "  deletionPolicy: Delete",
        "  syncInterval: 1s\n  deletionPolicy: Delete",
    );
    apply(&c, &text).await;

    wait(&c, &ns, "org/research", "condition=Ready").await;
    wait(
        &c,
        &ns,
        "orgm/alice-in-research",
        "jsonpath={.status.phase}=Ready",
    )
    .await;
    let id = kubectl_ok(
        &c,
        &[
            "get",
            "org",
            "research",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.externalId}",
        ],
    )
    .await;
    // At the vendor: the org with its settings, the template's roles (not its ADMIN role) plus
    // the one from settings, and Alice with both roles she was given.
    let orgs = sim.objects("organizations", &id).unwrap();
    assert_eq!(orgs.len(), 1, "{orgs:?}");
    assert_eq!(orgs[0]["title"], "Research department");
    assert_eq!(
        orgs[0]["emailDomains"],
        serde_json::json!(["research.example.com"])
    );
    let mut titles: Vec<String> = sim
        .objects("roles", &id)
        .unwrap()
        .iter()
        .filter_map(|r| r["title"].as_str().map(str::to_string))
        .filter(|t| !t.ends_with(" - ADMIN"))
        .collect();
    titles.sort();
    assert_eq!(titles, ["Analyst", "Auditors", "Data steward", "Reviewer"]);
    let members = sim.objects("members", &id).unwrap();
    assert!(
        members.iter().any(|m| m
            .to_string()
            .contains("google-oauth2|104729384756102938475")),
        "{members:?}"
    );

    // Drift re-checks (every second here) change nothing at the vendor: counted over two full
    // passes, not after a sleep.
    drift_passes_write_nothing(&op, &sim).await;

    // deletionPolicy Delete: the member leaves, then the org it created is deleted.
    kubectl_ok(
        &c,
        &[
            "delete",
            "orgm",
            "alice-in-research",
            "-n",
            &ns,
            "--timeout=60s",
        ],
    )
    .await;
    kubectl_ok(
        &c,
        &["delete", "org", "research", "-n", &ns, "--timeout=60s"],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.org_id("Research department").is_some() {
        assert!(
            Instant::now() < deadline,
            "the organization was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sim.objects("organizations", &id).unwrap().is_empty());
}
