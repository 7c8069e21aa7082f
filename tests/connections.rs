//! End to end: VendorConnection and ClusterVendorConnection with a real `orgops run`, the Rossum
//! simulator and an API server (the in-repo one, or `ORGOPS_E2E_KUBECONFIG`), driven with
//! kubectl. Credentials go to the connection's origin and nowhere else.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::cluster::{Cluster, stderr, stdout};
use support::*;

async fn apply(c: &Cluster, dir: &std::path::Path, text: &str) {
    let file = dir.join(format!("m-{}.yaml", fastrand::u32(..)));
    std::fs::write(&file, text).unwrap();
    let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

async fn wait(c: &Cluster, what: &str, ns: Option<&str>, condition: &str) {
    let mut args = vec!["wait", condition, what, "--timeout=60s"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let out = c.kubectl(&args).await;
    let yaml = {
        let mut get = vec!["get", what, "-o", "yaml"];
        if let Some(ns) = ns {
            get.extend(["-n", ns]);
        }
        stdout(&c.kubectl(&get).await)
    };
    assert!(
        out.status.success(),
        "wait {what} {condition}: {}\n{yaml}",
        stderr(&out)
    );
}

async fn jsonpath(c: &Cluster, what: &str, ns: Option<&str>, path: &str) -> String {
    let path = format!("jsonpath={path}");
    let mut args = vec!["get", what, "-o", path.as_str()];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    stdout(&c.kubectl(&args).await)
}

/// A TCP listener that counts every connection made to it and answers nothing useful.
async fn trap() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    // `localhost` is not `127.0.0.1`: the allow-list below names only the latter.
    (format!("http://localhost:{port}/api/v1"), hits)
}

fn secret(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData: {{username: {ADMIN}, password: {PASSWORD}, createKey: {CREATE_KEY}}}\n"
    )
}

fn org(ns: &str, name: &str, kind: &str, connection: &str) -> String {
    format!(
        "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  vendor: rossum\n  displayName: {name} {ns}\n  connectionRef: {{kind: {kind}, name: {connection}}}\n  settings: {{rossum: {{firstUser: {{email: {name}-{ns}@tenants.example}}}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_connection_to_a_host_outside_the_allow_list_sends_nothing_there() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("tenant").await;
    let sim = simulator("").await;
    let (evil, hits) = trap().await;
    let op = support::operator::start(
        &c,
        &[&ns],
        &ns,
        "replica-0",
        15,
        &["--allowed-endpoints", "rossum=http://127.0.0.1:*"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    apply(
        &c,
        dir.path(),
        &format!(
            "{}---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: mine, namespace: {ns}}}\nspec: {{vendor: rossum, endpoint: \"{evil}\", credentialsSecretRef: {{name: creds}}}}\n---\n{}",
            secret(&ns, "creds"),
            org(&ns, "de", "VendorConnection", "mine")
        ),
    )
    .await;

    wait(
        &c,
        "vendorconnection/mine",
        Some(&ns),
        "--for=condition=EndpointAllowed=False",
    )
    .await;
    wait(
        &c,
        "org/de",
        Some(&ns),
        "--for=condition=ConnectionReady=False",
    )
    .await;
    let message = jsonpath(
        &c,
        "org/de",
        Some(&ns),
        "{.status.conditions[?(@.type==\"ConnectionReady\")].message}",
    )
    .await;
    assert!(
        message.contains(&evil.replace("/api/v1", "")) && message.contains("no request was made"),
        "{message}"
    );
    assert_eq!(
        jsonpath(
            &c,
            "org/de",
            Some(&ns),
            "{.status.conditions[?(@.type==\"Ready\")].reason}"
        )
        .await,
        "EndpointNotAllowed"
    );
    let table = stdout(&c.kubectl(&["get", "vendorconnections", "-n", &ns]).await);
    assert!(
        table.contains("mine") && table.contains("rossum") && table.contains("False"),
        "{table}"
    );
    // Both controllers have finished judging it (counters, not a sleep), and nothing reached
    // the host: no connection, no login.
    let deadline = Instant::now() + Duration::from_secs(30);
    while op
        .metric("orgops_reconciles_total{kind=\"connection\",result=\"not_ready\"}")
        .await
        == 0
        || op
            .metric("orgops_reconciles_total{kind=\"organization\",result=\"not_ready\"}")
            .await
            == 0
    {
        assert!(Instant::now() < deadline, "no reconcile counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the operator contacted a host outside the allow-list"
    );
    let events = stdout(&c.kubectl(&["get", "events", "-n", &ns]).await);
    assert!(events.contains("EndpointNotAllowed"), "{events}");
    assert_eq!(sim.with_db(|db| db.logins), 0);

    // Pointing the same connection at an allowed endpoint recovers without a restart.
    apply(
        &c,
        dir.path(),
        &format!(
            "apiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: mine, namespace: {ns}}}\nspec: {{vendor: rossum, endpoint: \"{}\", credentialsSecretRef: {{name: creds}}}}\n",
            sim.base_url
        ),
    )
    .await;
    wait(
        &c,
        "vendorconnection/mine",
        Some(&ns),
        "--for=condition=Ready",
    )
    .await;
    wait(&c, "org/de", Some(&ns), "--for=condition=Ready").await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_connection_serves_organizations_in_two_namespaces_with_one_login() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ops = c.namespace("ops").await;
    let a = c.namespace("team-a").await;
    let b = c.namespace("team-b").await;
    let outsider = c.namespace("team-c").await;
    let sim = simulator("").await;
    // Default allow-list (the vendors' public hosts): the simulator is not on it, and the
    // cluster connection, being the admin's, needs it not to be.
    let _op = support::operator::start(&c, &[&a, &b, &outsider], &ops, "replica-0", 15, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cluster_name = format!("rossum-{ops}");
    apply(
        &c,
        dir.path(),
        &format!(
            "{}---\napiVersion: orgops.io/v1alpha1\nkind: ClusterVendorConnection\nmetadata: {{name: {cluster_name}}}\nspec:\n  vendor: rossum\n  endpoint: \"{}\"\n  rateLimit: 50\n  credentialsSecretRef: {{name: group-admin, namespace: {ops}}}\n  allowedNamespaces: [{a}, {b}]\n---\n{}---\n{}---\n{}",
            secret(&ops, "group-admin"),
            sim.base_url,
            org(&a, "de", "ClusterVendorConnection", &cluster_name),
            org(&b, "fr", "ClusterVendorConnection", &cluster_name),
            org(&outsider, "it", "ClusterVendorConnection", &cluster_name),
        ),
    )
    .await;
    let what = format!("clustervendorconnection/{cluster_name}");
    wait(&c, &what, None, "--for=condition=Ready").await;
    wait(&c, "org/de", Some(&a), "--for=condition=Ready").await;
    wait(&c, "org/fr", Some(&b), "--for=condition=Ready").await;
    wait(
        &c,
        "org/it",
        Some(&outsider),
        "--for=condition=ConnectionReady=False",
    )
    .await;
    assert_eq!(
        jsonpath(
            &c,
            "org/it",
            Some(&outsider),
            "{.status.conditions[?(@.type==\"Ready\")].reason}"
        )
        .await,
        "NamespaceNotAllowed"
    );
    assert_eq!(
        sim.with_db(|db| db.logins),
        1,
        "one connection, one login for both namespaces"
    );
    let table = stdout(
        &c.kubectl(&["get", "clustervendorconnections", &cluster_name])
            .await,
    );
    assert!(
        table.contains("ACCOUNT") && table.contains("org group") && table.contains("True"),
        "{table}"
    );
    let yaml = stdout(&c.kubectl(&["get", &what, "-o", "yaml"]).await);
    assert!(yaml.contains("lastCheckedTime"), "{yaml}");
    for secret_text in [PASSWORD, CREATE_KEY, ADMIN] {
        assert!(
            !yaml.contains(secret_text),
            "a credential in status:\n{yaml}"
        );
    }
}
