//! End to end for OpenLattice: a real `orgops run` process, the OpenLattice simulator and an API
//! server (the in-repo one, or `ORGOPS_E2E_KUBECONFIG`), driven with kubectl: the same
//! controller, CLI and chart paths as Rossum, with no vendor special case.

mod support;

use std::time::{Duration, Instant};

use orgops::simulator::kit::handle::SimulatorHandle;
use orgops::simulator::openlattice::OpenLatticeSimulator;
use support::cluster::{Cluster, stderr, stdout};

/// The OpenLattice examples (deploy/examples), moved into `ns`, with a namespaced
/// VendorConnection to the simulator holding the simulator's admin token.
fn manifests(ns: &str, endpoint: &str, token: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let org = std::fs::read_to_string(dir.join("openlattice-research.yaml")).unwrap();
    let org = org
        .replace("namespace: tenants", &format!("namespace: {ns}"))
        .replace(
            "kind: ClusterVendorConnection\n    name: openlattice",
            "kind: VendorConnection\n    name: openlattice",
        );
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: openlattice-admin, namespace: {ns}}}\nstringData:\n  token: {token}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: openlattice, namespace: {ns}}}\nspec:\n  vendor: openlattice\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: openlattice-admin}}\n---\n{org}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openlattice_org_is_created_copied_joined_and_deleted_with_kubectl() {
    let sim = OpenLatticeSimulator::start(0, Default::default())
        .await
        .unwrap();
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("ol").await;
    let op = support::operator::start(
        &c,
        &[&ns],
        &ns,
        "replica-0",
        15,
        &[
            "--allowed-endpoints",
            "openlattice=http://127.0.0.1:*",
            "--min-sync-interval",
            "1s",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    let text = manifests(&ns, &sim.base_url, &sim.admin_token).replace(
        "  deletionPolicy: Delete",
        "  syncInterval: 1s\n  deletionPolicy: Delete",
    );
    std::fs::write(&file, text).unwrap();
    kubectl_ok(&c, &["apply", "-f", file.to_str().unwrap()]).await;

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
    let before = sim.total_writes();
    let series = "orgops_reconciles_total{kind=\"organization\",result=\"ready\"}";
    let start = op.metric(series).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while op.metric(series).await < start + 2 {
        assert!(Instant::now() < deadline, "no drift re-checks in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.total_writes(), before, "a re-sync wrote to the vendor");

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
