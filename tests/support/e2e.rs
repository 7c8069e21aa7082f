//! What the vendors' operator end-to-end tests share: kubectl calls that must succeed, waits
//! that dump the resources when they time out, an example moved into a test namespace behind a
//! namespaced VendorConnection, and "a drift re-check writes nothing" counted over full passes.

use std::time::{Duration, Instant};

use orgops::simulator::kit::handle::SimulatorHandle;

use super::cluster::{Cluster, stderr, stdout};
use super::operator::Operator;

/// Runs kubectl and returns its stdout; fails the test with its stderr otherwise.
pub async fn kubectl_ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.kubectl(args).await;
    assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `kubectl wait --for=<condition> <what>` for up to 60 s; on timeout the test fails with every
/// Organization and OrgMembership of `ns`.
pub async fn wait(c: &Cluster, ns: &str, what: &str, condition: &str) {
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

/// A Secret `<vendor>-admin` holding `key: value` and a VendorConnection `<vendor>` to
/// `endpoint` using it, in `ns`.
pub fn connection(ns: &str, vendor: &str, endpoint: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {vendor}-admin, namespace: {ns}}}\nstringData:\n  {key}: {value}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: {vendor}, namespace: {ns}}}\nspec:\n  vendor: {vendor}\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: {vendor}-admin}}\n"
    )
}

/// `deploy/examples/<file>` moved from `tenants` into `ns`, its ClusterVendorConnection
/// `<vendor>` replaced by the namespaced one [`connection`] makes.
pub fn example(file: &str, ns: &str, vendor: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(file);
    std::fs::read_to_string(path)
        .unwrap()
        .replace("namespace: tenants", &format!("namespace: {ns}"))
        .replace(
            &format!("kind: ClusterVendorConnection\n    name: {vendor}"),
            &format!("kind: VendorConnection\n    name: {vendor}"),
        )
}

/// Waits for two more Ready reconciles of Organizations (full drift re-checks) and checks the
/// vendor received no write meanwhile: counted, not slept.
pub async fn drift_passes_write_nothing(op: &Operator, sim: &dyn SimulatorHandle) {
    let before = sim.total_writes();
    let series = "orgops_reconciles_total{kind=\"organization\",result=\"ready\"}";
    let start = op.metric(series).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while op.metric(series).await < start + 2 {
        assert!(Instant::now() < deadline, "no drift re-checks in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.total_writes(), before, "a re-sync wrote to the vendor");
}

/// An API server with the CRDs, a namespace `<prefix>-…`, and one operator (pod `replica-0`)
/// watching it, allowed to reach `vendor` on loopback and to re-check every second.
pub async fn cluster_with_operator(vendor: &str, prefix: &str) -> (Cluster, String, Operator) {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace(prefix).await;
    let allowed = format!("{vendor}=http://127.0.0.1:*");
    let op = super::operator::start(
        &c,
        &[&ns],
        &ns,
        "replica-0",
        15,
        &["--allowed-endpoints", &allowed, "--min-sync-interval", "1s"],
    )
    .await;
    (c, ns, op)
}

/// `kubectl apply -f` of `yaml`.
pub async fn apply(c: &Cluster, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, yaml).unwrap();
    kubectl_ok(c, &["apply", "-f", file.to_str().unwrap()]).await;
}
