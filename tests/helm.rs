//! The Helm chart as a platform team installs it: lint, render, validate strictly against the
//! Kubernetes schemas, check that `orgops run` accepts the rendered arguments, and run the
//! operator end to end with exactly the RBAC the chart grants.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::{Cluster, stderr, stdout};
use support::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/orgops");
const ALL_FEATURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/helm/orgops/ci/all-features-values.yaml"
);

fn tool(env: &str, local: &str, fallback: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(local);
    if p.exists() {
        p
    } else {
        PathBuf::from(fallback)
    }
}

fn helm() -> PathBuf {
    tool("HELM", "target/tools/helm", "helm")
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; run ./scripts/test (it installs helm, kubectl and kubernetes-validate)"))
}

fn render(values: Option<&str>) -> String {
    let mut cmd = Command::new(helm());
    cmd.args(["template", "orgops", CHART, "--namespace", "orgops-system"]);
    if let Some(v) = values {
        cmd.args(["-f", v]);
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn chart_lints_strictly_with_defaults_and_every_feature() {
    for values in [None, Some(ALL_FEATURES)] {
        let mut cmd = Command::new(helm());
        cmd.args(["lint", "--strict", CHART]);
        if let Some(v) = values {
            cmd.args(["-f", v]);
        }
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "helm lint {values:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn rendered_manifests_and_crds_validate_strictly_against_the_kubernetes_schemas() {
    let validate = tool(
        "KUBERNETES_VALIDATE",
        "target/sdk-venv/bin/kubernetes-validate",
        "kubernetes-validate",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, values) in [("default.yaml", None), ("all.yaml", Some(ALL_FEATURES))] {
        let path = dir.path().join(name);
        std::fs::write(&path, render(values)).unwrap();
        files.push(path);
    }
    for crd in std::fs::read_dir(Path::new(CHART).join("crds")).unwrap() {
        files.push(crd.unwrap().path());
    }
    let out = run(Command::new(&validate).arg("--strict").args(&files));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && !text.contains("ERROR"), "{text}");
    // Everything but the ServiceMonitor (a Prometheus-operator CRD) has a schema to check.
    for line in text.lines().filter(|l| l.starts_with("WARN")) {
        assert!(
            line.contains("ServiceMonitor"),
            "unexpected warning: {line}"
        );
    }
}

#[test]
fn the_chart_ships_the_generated_crds_unchanged() {
    for (file, yaml) in orgops::api::crdgen::crd_files().unwrap() {
        let shipped = std::fs::read_to_string(Path::new(CHART).join("crds").join(file)).unwrap();
        assert!(
            shipped == yaml,
            "deploy/helm/orgops/crds/{file} differs from `orgops crds`; copy crds/ into the chart"
        );
    }
}

#[test]
fn orgops_run_accepts_the_rendered_arguments_and_environment() {
    for (values, expect) in [
        (None, vec!["lease: Some(", "namespaces: []"]),
        (
            Some(ALL_FEATURES),
            vec![
                "\"tenants-eu\"",
                "Rossum: 8",
                "Dataloop: 9",
                "https://acme.rossum.app/api/v1",
                "https://rossum.internal.example:8443/api",
                "connection_check_interval: 120s",
                "default_sync_interval: 1800s",
            ],
        ),
    ] {
        let rendered = docs(&render(values));
        let deployment = rendered
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("a Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(args[0], "run");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgops"));
        cmd.args(&args).arg("--validate-config").env_clear();
        for e in container["env"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            // Downward-API values, as the kubelet would fill them in.
            let value = e["value"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}-value", name.to_lowercase()));
            cmd.env(name, value);
        }
        let out = run(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "orgops {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for e in expect {
            assert!(text.contains(e), "{e:?} not in\n{text}");
        }
        let sc = &container["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"][0], "ALL");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
            true
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
    }
}

#[test]
fn the_network_policy_lets_out_only_dns_the_api_server_and_the_vendors() {
    // Off by default.
    assert!(
        !docs(&render(None))
            .iter()
            .any(|d| d["kind"] == "NetworkPolicy")
    );
    // On without the API server's addresses: refused, saying what to set.
    let out = run(Command::new(helm()).args([
        "template",
        "orgops",
        CHART,
        "--set",
        "networkPolicy.enabled=true",
    ]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("networkPolicy.apiServer.cidrs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = docs(&render(Some(ALL_FEATURES)));
    let policy = rendered
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .expect("a NetworkPolicy");
    let deployment = rendered.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ingress = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], 9090);
    let egress = policy["spec"]["egress"].as_array().unwrap();
    let cidrs: Vec<&str> = egress
        .iter()
        .flat_map(|r| r["to"].as_array().into_iter().flatten())
        .filter_map(|peer| peer["ipBlock"]["cidr"].as_str())
        .collect();
    assert_eq!(cidrs, ["10.0.0.1/32", "203.0.113.0/24", "198.51.100.7/32"]);
    // Every egress rule names its peers: nothing is open to everywhere.
    assert!(
        egress
            .iter()
            .all(|r| r["to"].as_array().is_some_and(|t| !t.is_empty()))
    );
}

/// The PolicyRules the chart grants the operator's ServiceAccount (default values).
fn granted_rules() -> Value {
    let rendered = docs(&render(None));
    let rules: Vec<Value> = rendered
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    Value::Array(rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_with_exactly_the_rbac_the_chart_grants() {
    let c = Cluster::start().await;
    let Some(server) = &c.server else {
        eprintln!("skipped on a real cluster: install the chart there instead");
        return;
    };
    c.install_crds().await;
    let ns = c.namespace("rbac").await;
    let rules = granted_rules();
    server.enforce_rbac(
        "operator-sa-token",
        "system:serviceaccount:orgops-system:orgops",
        &rules,
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator-kubeconfig");
    std::fs::write(
        &kubeconfig,
        server.kubeconfig_for("orgops", "operator-sa-token"),
    )
    .unwrap();

    let sim = simulator("").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut op = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgops"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--lease-namespace",
            &ns,
            "--vendor-rate-limit",
            "200",
            "--allowed-endpoints",
            "rossum=http://127.0.0.1:*",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "orgops-0")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "operator not ready (RBAC?)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let manifests = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: {ns}}}\nstringData: {{username: {ADMIN}, password: {PASSWORD}, createKey: {CREATE_KEY}}}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: rossum, namespace: {ns}}}\nspec: {{vendor: rossum, endpoint: \"{0}\", credentialsSecretRef: {{name: creds}}}}\n---\napiVersion: orgops.io/v1alpha1\nkind: ClusterVendorConnection\nmetadata: {{name: rossum-{ns}}}\nspec: {{vendor: rossum, endpoint: \"{0}\", credentialsSecretRef: {{name: creds, namespace: {ns}}}}}\n---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: de, namespace: {ns}}}\nspec:\n  vendor: rossum\n  displayName: RBAC DE\n  connectionRef: {{name: rossum}}\n  settings: {{rossum: {{firstUser: {{email: rbac-{ns}@example.com}}}}}}\n---\napiVersion: orgops.io/v1alpha1\nkind: OrgMembership\nmetadata: {{name: george, namespace: {ns}}}\nspec: {{organizationRef: {{name: de}}, user: {{email: george-{ns}@example.com}}, role: admin}}\n",
        sim.base_url
    );
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, manifests).unwrap();
    let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let cluster_connection = format!("clustervendorconnection/rossum-{ns}");
    for what in [
        "org/de",
        "orgm/george",
        "vendorconnection/rossum",
        &cluster_connection,
    ] {
        let out = c
            .kubectl(&[
                "wait",
                "--for=condition=Ready",
                what,
                "-n",
                &ns,
                "--timeout=60s",
            ])
            .await;
        assert!(out.status.success(), "{what}: {}", stderr(&out));
    }
    for what in ["orgm/george", "org/de"] {
        let out = c
            .kubectl(&["delete", what, "-n", &ns, "--timeout=60s"])
            .await;
        assert!(out.status.success(), "{what}: {}", stderr(&out));
    }
    let _ = op.start_kill();
    let _ = op.wait().await;

    // No more than it uses: every resource the chart grants was touched.
    let used: Vec<String> = server.requests().into_keys().collect();
    for rule in rules.as_array().unwrap() {
        for resource in rule["resources"].as_array().unwrap() {
            let resource = resource.as_str().unwrap();
            let (plural, sub) = resource
                .split_once('/')
                .map(|(p, s)| (p, Some(s)))
                .unwrap_or((resource, None));
            let touched = used.iter().any(|u| {
                u.contains(&format!("/{plural}"))
                    && sub.is_none_or(|s| u.ends_with(&format!("/{s}")))
            });
            assert!(
                touched,
                "the chart grants {resource} but the operator never used it: {used:?}"
            );
        }
    }
    let text = stdout(&c.kubectl(&["get", "events", "-n", &ns]).await);
    assert!(!text.contains("Forbidden"), "{text}");
}
