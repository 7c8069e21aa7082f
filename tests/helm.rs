//! The Helm chart as a platform team installs it: lint, render, validate strictly against the
//! Kubernetes schemas, check that `orgops run` accepts the rendered arguments, and run the
//! operator end to end with exactly the RBAC the chart grants.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::cluster::{Cluster, stderr, stdout};
use support::operator::{free_port, wait_ready};
use support::*;
use test_apiserver::LoggedRequest;

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
    match values {
        Some(v) => render_with(&["-f", v]),
        None => render_with(&[]),
    }
}

/// `helm template orgops <chart> --namespace orgops-system <args>`.
fn render_with(args: &[&str]) -> String {
    let mut cmd = Command::new(helm());
    cmd.args(["template", "orgops", CHART, "--namespace", "orgops-system"]);
    cmd.args(args);
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
    // Everything but the ServiceMonitor and PrometheusRule (Prometheus-operator CRDs) has a
    // schema to check; the alert rules are checked by promtool below.
    for line in text.lines().filter(|l| l.starts_with("WARN")) {
        assert!(
            line.contains("ServiceMonitor") || line.contains("PrometheusRule"),
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

#[test]
fn secure_metrics_render_https_probes_a_certificate_and_the_review_rbac() {
    let plain = docs(&render(None));
    let probe =
        &find(&plain, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["httpGet"]["scheme"], "HTTP");
    assert!(!plain.iter().any(|o| o["kind"] == "Secret"));
    assert!(
        !plain
            .iter()
            .any(|o| o["metadata"]["name"] == "orgops-metrics-reader")
    );
    let reviews = |objects: &[Value]| -> Vec<String> {
        grants(objects, "orgops-system", "orgops")
            .iter()
            .filter(|g| {
                g.at.is_none()
                    && strings(&g.rule["resources"])
                        .iter()
                        .any(|r| r.ends_with("reviews"))
            })
            .map(|g| g.rule.to_string())
            .collect()
    };
    assert!(reviews(&plain).is_empty());

    for (set, secret) in [
        ("metrics.secure.enabled=true", "orgops-metrics-tls"),
        (
            "metrics.secure.enabled=true,metrics.secure.certSecret=x",
            "x",
        ),
    ] {
        let objects = docs(&render_with(&["--set", set]));
        let spec = &find(&objects, "Deployment")["spec"]["template"]["spec"];
        let container = &spec["containers"][0];
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                container[probe]["httpGet"]["scheme"], "HTTPS",
                "{set}: {probe}"
            );
        }
        assert_eq!(
            container["volumeMounts"],
            json!([{"name": "metrics-tls", "mountPath": "/etc/orgops/metrics-tls", "readOnly": true}]),
            "{set}"
        );
        assert_eq!(
            spec["volumes"],
            json!([{"name": "metrics-tls", "secret": {"secretName": secret}}]),
            "{set}"
        );
        let args = strings(&container["args"]);
        for arg in [
            "--metrics-auth=true",
            "--metrics-tls-cert-file=/etc/orgops/metrics-tls/tls.crt",
            "--metrics-tls-key-file=/etc/orgops/metrics-tls/tls.key",
        ] {
            assert!(args.contains(&arg), "{set}: {arg} not in {args:?}");
        }
        // The chart's own certificate only when none is given.
        let secrets: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Secret").collect();
        if secret == "x" {
            assert!(secrets.is_empty(), "{set}: {secrets:?}");
        } else {
            assert_eq!(secrets.len(), 1, "{set}");
            let s = secrets[0];
            assert_eq!(s["metadata"]["name"], secret);
            assert_eq!(s["metadata"]["namespace"], "orgops-system");
            assert_eq!(s["type"], "kubernetes.io/tls");
            for (key, pem) in [
                ("tls.crt", "-----BEGIN CERTIFICATE-----"),
                ("tls.key", "PRIVATE KEY-----"),
            ] {
                let text = base64::engine::general_purpose::STANDARD
                    .decode(s["data"][key].as_str().unwrap())
                    .unwrap();
                assert!(String::from_utf8(text).unwrap().contains(pem), "{key}");
            }
        }
        // The operator may ask who scrapes and whether they may; scrapers get a role to bind.
        let reviews = reviews(&objects);
        assert_eq!(
            reviews,
            [
                json!({"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}).to_string(),
                json!({"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}).to_string(),
            ],
            "{set}"
        );
        let reader = objects
            .iter()
            .find(|o| {
                o["kind"] == "ClusterRole" && o["metadata"]["name"] == "orgops-metrics-reader"
            })
            .expect("the metrics-reader ClusterRole");
        assert_eq!(
            reader["rules"],
            json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
        );
    }
}

// The operator with the chart's RBAC objects themselves, as `helm install` creates them.

/// Which namespaces the chart is installed to watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    /// The default: every namespace, through ClusterRoles.
    AllNamespaces,
    /// `watchNamespaces: [<tenant>]`, the recommended mode, with `metrics.secure` on.
    Tenant,
}

/// `helm template orgops <chart> --namespace <release_ns> -f <values>`, every namespaced object
/// in the release namespace unless it names another, as `helm install -n` puts them.
fn release(release_ns: &str, values: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let out = run(Command::new(helm()).args([
        "template",
        "orgops",
        CHART,
        "--namespace",
        release_ns,
        "-f",
        file.to_str().unwrap(),
    ]));
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut objects = docs(&String::from_utf8(out.stdout).unwrap());
    for o in &mut objects {
        let cluster_scoped = matches!(
            o["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding" | "Namespace" | "CustomResourceDefinition")
        );
        if !cluster_scoped && o["metadata"]["namespace"].is_null() {
            o["metadata"]["namespace"] = json!(release_ns);
        }
    }
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("the chart renders no {kind}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// One rule the chart grants the ServiceAccount `sa_ns/sa`, and where: everywhere (a
/// ClusterRoleBinding) or in a RoleBinding's namespace.
struct Grant {
    at: Option<String>,
    role: String,
    rule: Value,
}

fn grants(objects: &[Value], sa_ns: &str, sa: &str) -> Vec<Grant> {
    let mut out = Vec::new();
    for b in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
    {
        let to_sa =
            b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == sa_ns
            });
        if !to_sa {
            continue;
        }
        let at = (b["kind"] == "RoleBinding")
            .then(|| b["metadata"]["namespace"].as_str().unwrap().to_string());
        let (kind, name) = (&b["roleRef"]["kind"], &b["roleRef"]["name"]);
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == *kind
                    && o["metadata"]["name"] == *name
                    && (*kind == "ClusterRole"
                        || o["metadata"]["namespace"].as_str() == at.as_deref())
            })
            .unwrap_or_else(|| panic!("{b} binds a role the chart does not render"));
        for rule in role["rules"].as_array().into_iter().flatten() {
            out.push(Grant {
                at: at.clone(),
                role: format!("{} {}", kind.as_str().unwrap(), name.as_str().unwrap()),
                rule: rule.clone(),
            });
        }
    }
    out
}

/// `orgops run` as the rendered Deployment runs it: its arguments and environment (the
/// downward API filled in as the kubelet would), its Secret volumes written under `dir` with
/// the mount paths in its arguments pointed there, on loopback `port`, with `kubeconfig`.
fn pod(
    objects: &[Value],
    release_ns: &str,
    dir: &Path,
    port: u16,
    kubeconfig: &Path,
) -> tokio::process::Command {
    let spec = &find(objects, "Deployment")["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let mut args: Vec<String> = strings(&container["args"])
        .into_iter()
        .map(|a| match a.starts_with("--listen=") {
            true => format!("--listen=127.0.0.1:{port}"),
            false => a.to_string(),
        })
        .collect();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        let secret_name = &volume["secret"]["secretName"];
        let secret = objects
            .iter()
            .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == *secret_name)
            .unwrap_or_else(|| panic!("the mounted Secret {secret_name} is not rendered"));
        let local = dir.join(mount["name"].as_str().unwrap());
        std::fs::create_dir_all(&local).unwrap();
        for (key, value) in secret["data"].as_object().unwrap() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap())
                .unwrap();
            std::fs::write(local.join(key), bytes).unwrap();
        }
        let path = mount["mountPath"].as_str().unwrap();
        for a in &mut args {
            *a = a.replace(path, local.to_str().unwrap());
        }
    }
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgops"));
    cmd.args(&args).env_clear().env("KUBECONFIG", kubeconfig);
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let field = e["valueFrom"]["fieldRef"]["fieldPath"].as_str();
        let value = match (e["value"].as_str(), field) {
            (Some(v), _) => v.to_string(),
            (None, Some("metadata.name")) => "orgops-0".to_string(),
            (None, Some("metadata.namespace")) => release_ns.to_string(),
            other => panic!("env {name}: {other:?}"),
        };
        cmd.env(name, value);
    }
    // Quieter than the chart's level, to keep the test output readable.
    cmd.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A client for the pod's port as the chart's readiness probe reaches it, and the base URL:
/// plain HTTP, or HTTPS trusting only the chart's serving certificate (from `dir`, see
/// [`pod`]) for the Service's name, which resolves to the loopback port.
fn probe_client(
    objects: &[Value],
    release_ns: &str,
    dir: &Path,
    port: u16,
) -> (reqwest::Client, String) {
    let deployment = find(objects, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    match container["readinessProbe"]["httpGet"]["scheme"].as_str() {
        Some("HTTP") => (reqwest::Client::new(), format!("http://127.0.0.1:{port}")),
        Some("HTTPS") => {
            let mount = container["volumeMounts"][0]["name"].as_str().unwrap();
            let pem = std::fs::read(dir.join(mount).join("tls.crt")).unwrap();
            let host = format!(
                "{}.{release_ns}.svc",
                deployment["metadata"]["name"].as_str().unwrap()
            );
            let client = reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
                .resolve(&host, ([127, 0, 0, 1], port).into())
                .build()
                .unwrap();
            (client, format!("https://{host}:{port}"))
        }
        other => panic!("readiness probe scheme {other:?}"),
    }
}

async fn apply(c: &Cluster, dir: &Path, name: &str, objects: &[Value]) {
    let file = dir.join(name);
    // One JSON document (JSON is YAML) per object.
    let text: Vec<String> = objects.iter().map(Value::to_string).collect();
    std::fs::write(&file, text.join("\n---\n")).unwrap();
    let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_cluster_wide_with_exactly_the_rbac_the_chart_grants() {
    operator_with_the_charts_rbac(Watch::AllNamespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_per_namespace_with_exactly_the_rbac_the_chart_grants() {
    operator_with_the_charts_rbac(Watch::Tenant).await;
}

/// Installs the chart's ServiceAccount, Roles, bindings and Secrets in the test API server,
/// runs the operator as the rendered Deployment with that ServiceAccount's token, takes a
/// VendorConnection, a ClusterVendorConnection (Secret in the release namespace), an
/// Organization and an OrgMembership to Ready and deletes them; then checks what the server
/// recorded: nothing refused, Secrets read narrowly, every grant used.
async fn operator_with_the_charts_rbac(watch: Watch) {
    let c = Cluster::start().await;
    let Some(server) = &c.server else {
        eprintln!("skipped on a real cluster: install the chart there instead");
        return;
    };
    c.install_crds().await;
    let release_ns = c.namespace("orgops-system").await;
    let tenant = c.namespace("tenant").await;
    let elsewhere = c.namespace("elsewhere").await;
    let mut values = String::from(
        "vendors:\n  rateLimits: {rossum: 200}\n  allowedEndpoints: {rossum: [\"http://127.0.0.1:*\"]}\n",
    );
    if watch == Watch::Tenant {
        values += &format!("watchNamespaces: [{tenant}]\nmetrics: {{secure: {{enabled: true}}}}\n");
    }
    let objects = release(&release_ns, &values);
    let dir = tempfile::tempdir().unwrap();
    let served = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Secret",
    ];
    let installed: Vec<Value> = objects
        .iter()
        .filter(|o| served.iter().any(|k| o["kind"] == *k))
        .cloned()
        .collect();
    apply(&c, dir.path(), "release.yaml", &installed).await;

    let sa = find(&objects, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .unwrap();
    let user = format!("system:serviceaccount:{release_ns}:{sa}");
    server.add_service_account_token("orgops-sa-token", &release_ns, sa);
    let kubeconfig = dir.path().join("operator-kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_for(sa, "orgops-sa-token")).unwrap();

    let sim = simulator("").await;
    let port = free_port();
    let mut op = pod(&objects, &release_ns, dir.path(), port, &kubeconfig)
        .spawn()
        .unwrap();
    let (probe, base) = probe_client(&objects, &release_ns, dir.path(), port);
    wait_ready(&mut op, &probe, &format!("{base}/readyz")).await;

    let manifests = tenant_objects(&tenant, &release_ns, &elsewhere, &sim.base_url);
    let file = dir.path().join("tenant.yaml");
    std::fs::write(&file, manifests).unwrap();
    let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let cluster_connection = format!("clustervendorconnection/rossum-{tenant}");
    for what in [
        "vendorconnection/rossum",
        &cluster_connection,
        "org/de",
        "org/fr",
        "orgm/george",
    ] {
        let out = c
            .kubectl(&[
                "wait",
                "--for=condition=Ready",
                what,
                "-n",
                &tenant,
                "--timeout=60s",
            ])
            .await;
        assert!(
            out.status.success(),
            "{what}: {}; refused: {:#?}",
            stderr(&out),
            refused(&server.request_log(), &user)
        );
    }
    if watch == Watch::Tenant {
        scrape_as_the_chart_allows(&c, server, &objects, &release_ns, &probe, &base).await;
    }
    for what in ["orgm/george", "org/de"] {
        let out = c
            .kubectl(&["delete", what, "-n", &tenant, "--timeout=60s"])
            .await;
        assert!(out.status.success(), "{what}: {}", stderr(&out));
    }
    // The rest goes with the namespace: fr (deletionPolicy Delete, which Rossum cannot do) is
    // reported and released, the VendorConnection waits for it.
    let out = c
        .kubectl(&["delete", "namespace", &tenant, "--timeout=60s"])
        .await;
    assert!(out.status.success(), "namespace: {}", stderr(&out));
    // Stopped as the kubelet stops it: SIGTERM, and it gives up the Lease.
    let pid = op.id().unwrap().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(10), op.wait())
        .await
        .expect("orgops run stops within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "SIGTERM exit: {status:?}");

    let log: Vec<LoggedRequest> = server
        .request_log()
        .into_iter()
        .filter(|r| r.user == user)
        .collect();
    assert!(log.len() > 20, "the operator made {} requests", log.len());

    assert_nothing_refused(&c, &log, &user).await;
    assert_secrets_read_narrowly(&log, watch, &tenant, &release_ns);
    assert!(
        log.iter().all(|r| r.attributes.namespace != elsewhere),
        "the operator touched namespace {elsewhere}"
    );
    assert_every_grant_used(&objects, &release_ns, sa, &log);
}

/// What the test applies: the connections' Secrets (and others the operator must not read),
/// a VendorConnection in `tenant`, a ClusterVendorConnection whose Secret is in `release_ns`,
/// an Organization using each, and an OrgMembership.
fn tenant_objects(tenant: &str, release_ns: &str, elsewhere: &str, base_url: &str) -> String {
    let credentials =
        format!("stringData: {{username: {ADMIN}, password: {PASSWORD}, createKey: {CREATE_KEY}}}");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: {tenant}}}\n{credentials}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: unrelated, namespace: {tenant}}}\nstringData: {{token: not-for-orgops}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: admin-creds, namespace: {release_ns}}}\n{credentials}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: {elsewhere}}}\n{credentials}\n---\n\
         apiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: rossum, namespace: {tenant}}}\n\
         spec: {{vendor: rossum, endpoint: \"{url}\", credentialsSecretRef: {{name: creds}}}}\n---\n\
         apiVersion: orgops.io/v1alpha1\nkind: ClusterVendorConnection\nmetadata: {{name: rossum-{tenant}}}\n\
         spec: {{vendor: rossum, endpoint: \"{url}\", credentialsSecretRef: {{name: admin-creds, namespace: {release_ns}}}, allowedNamespaces: [{tenant}]}}\n---\n\
         apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: de, namespace: {tenant}}}\n\
         spec:\n  vendor: rossum\n  displayName: RBAC DE\n  connectionRef: {{name: rossum}}\n  settings: {{rossum: {{firstUser: {{email: de-{tenant}@example.com}}}}}}\n---\n\
         apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: fr, namespace: {tenant}}}\n\
         spec:\n  vendor: rossum\n  displayName: RBAC FR\n  deletionPolicy: Delete\n  connectionRef: {{kind: ClusterVendorConnection, name: rossum-{tenant}}}\n  settings: {{rossum: {{firstUser: {{email: fr-{tenant}@example.com}}}}}}\n---\n\
         apiVersion: orgops.io/v1alpha1\nkind: OrgMembership\nmetadata: {{name: george, namespace: {tenant}}}\n\
         spec: {{organizationRef: {{name: de}}, user: {{email: george-{tenant}@example.com}}, role: admin}}\n",
        url = base_url
    )
}

/// Not too little: nothing the operator asked for was refused, and no Event says so.
async fn assert_nothing_refused(c: &Cluster, log: &[LoggedRequest], user: &str) {
    let refused = refused(log, user);
    assert!(
        refused.is_empty(),
        "{} of the operator's {} requests were refused: {refused:#?}",
        refused.len(),
        log.len()
    );
    let events = stdout(&c.kubectl(&["get", "events", "-A", "-o", "json"]).await);
    assert!(!events.to_lowercase().contains("forbidden"), "{events}");
}

/// Secrets are listed and watched metadata-only, and only where they must be; their data is
/// read only by GET of the Secrets the connections name.
fn assert_secrets_read_narrowly(
    log: &[LoggedRequest],
    watch: Watch,
    tenant: &str,
    release_ns: &str,
) {
    let secrets: Vec<&LoggedRequest> = log
        .iter()
        .filter(|r| r.attributes.group.is_empty() && r.attributes.resource == "secrets")
        .collect();
    let named = [(tenant, "creds"), (release_ns, "admin-creds")];
    for r in &secrets {
        let a = &r.attributes;
        match (a.verb.as_str(), r.as_kind) {
            ("list", "PartialObjectMetadataList") | ("watch" | "get", "PartialObjectMetadata") => {}
            ("get", "") => assert!(
                named.contains(&(a.namespace.as_str(), a.name.as_str())),
                "the operator read a Secret no connection names: {r:?}"
            ),
            // The in-use finalizer on a namespace's own connection's Secret, nothing else.
            ("patch", "") => assert_eq!(
                (a.namespace.as_str(), a.name.as_str()),
                (tenant, "creds"),
                "the operator patched a Secret other than its namespace's connection's: {r:?}"
            ),
            _ => panic!("the operator read Secret data other than by GET: {r:?}"),
        }
    }
    for (ns, name) in named {
        assert!(
            secrets.iter().any(|r| r.attributes.verb == "get"
                && r.as_kind.is_empty()
                && r.attributes.namespace == ns
                && r.attributes.name == name),
            "the operator never read {ns}/{name}: {secrets:#?}"
        );
    }
    let scopes: BTreeSet<&str> = secrets
        .iter()
        .filter(|r| !matches!(r.attributes.verb.as_str(), "get" | "patch"))
        .map(|r| r.attributes.namespace.as_str())
        .collect();
    let expected: BTreeSet<&str> = match watch {
        Watch::AllNamespaces => [""].into(),
        Watch::Tenant => [tenant, release_ns].into(),
    };
    assert_eq!(
        scopes, expected,
        "where the operator lists and watches Secrets"
    );
}

/// No more than it uses: every verb on every resource (and named object) the chart grants was
/// used where it is granted; only patching a repeated Event may not have happened.
fn assert_every_grant_used(objects: &[Value], release_ns: &str, sa: &str, log: &[LoggedRequest]) {
    for g in grants(objects, release_ns, sa) {
        let groups = strings(&g.rule["apiGroups"]);
        let names = strings(&g.rule["resourceNames"]);
        for resource in strings(&g.rule["resources"]) {
            let (plural, sub) = resource.split_once('/').unwrap_or((resource, ""));
            let uses: Vec<&LoggedRequest> = log
                .iter()
                .filter(|r| {
                    let a = &r.attributes;
                    a.resource_request
                        && groups.contains(&a.group.as_str())
                        && a.resource == plural
                        && a.subresource == sub
                        && g.at.as_ref().is_none_or(|ns| *ns == a.namespace)
                })
                .collect();
            assert!(
                !uses.is_empty(),
                "{} grants {resource} (in {:?}) but the operator never used it",
                g.role,
                g.at
            );
            for verb in strings(&g.rule["verbs"]) {
                assert!(
                    uses.iter().any(|r| r.attributes.verb == verb)
                        || (resource, verb) == ("events", "patch"),
                    "{} grants {verb} on {resource} (in {:?}) but the operator never did it",
                    g.role,
                    g.at
                );
            }
            for name in &names {
                assert!(
                    uses.iter().any(|r| r.attributes.name == *name),
                    "{} grants {resource} {name} but the operator never used it",
                    g.role
                );
            }
        }
    }
}

/// `user`'s requests refused with 401 or 403.
fn refused<'a>(log: &'a [LoggedRequest], user: &str) -> Vec<&'a LoggedRequest> {
    log.iter()
        .filter(|r| r.user == user && (r.status == 401 || r.status == 403))
        .collect()
}

/// `metrics.secure`: the operator checks scrapers with the review rules the chart grants it,
/// and a ServiceAccount bound to the chart's metrics-reader ClusterRole may scrape.
async fn scrape_as_the_chart_allows(
    c: &Cluster,
    server: &test_apiserver::TestApiServer,
    objects: &[Value],
    release_ns: &str,
    probe: &reqwest::Client,
    base: &str,
) {
    let reader = objects
        .iter()
        .find(|o| {
            o["kind"] == "ClusterRole"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-metrics-reader"))
        })
        .expect("a metrics-reader ClusterRole");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("prometheus-{release_ns}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader["metadata"]["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": release_ns}],
    });
    let dir = tempfile::tempdir().unwrap();
    apply(c, dir.path(), "scraper.yaml", &[binding]).await;
    server.add_service_account_token("prometheus-token", release_ns, "prometheus");
    let url = format!("{base}/metrics");
    let anonymous = probe.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let scrape = probe
        .get(&url)
        .bearer_auth("prometheus-token")
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    assert!(text.contains("orgops_reconciles_total"), "{text}");
}

fn promtool() -> PathBuf {
    tool("PROMTOOL", "target/tools/promtool", "promtool")
}

/// The chart rendered with the dashboard and the alerts on (everything else default).
fn monitoring_docs() -> Vec<Value> {
    docs(&render_with(&[
        "--set",
        "metrics.grafanaDashboard.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    ]))
}

fn promtool_ok(dir: &Path, args: &[&str]) {
    let out = run(Command::new(promtool()).current_dir(dir).args(args));
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_are_valid_and_fire_as_their_unit_tests_expect() {
    let rendered = monitoring_docs();
    let rule = rendered
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "orgops-system");
    let dir = tempfile::tempdir().unwrap();
    // Whole rules, annotation templates included, must load.
    std::fs::write(
        dir.path().join("full.yaml"),
        serde_json::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    promtool_ok(dir.path(), &["check", "rules", "full.yaml"]);
    let alerts: BTreeSet<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(
        alerts,
        BTreeSet::from([
            "OrgopsCredentialsFailing",
            "OrgopsLeaderFlapping",
            "OrgopsNoLeader",
            "OrgopsResourceNotReady",
            "OrgopsVendorThrottling",
        ])
    );
    // The unit tests (tests/alerts) check when each alert fires; their expected alerts name
    // labels only, so the annotations are left out there.
    let mut spec = rule["spec"].clone();
    for group in spec["groups"].as_array_mut().unwrap() {
        for r in group["rules"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_json::to_string(&spec).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alerts/orgops.rules.test.yaml"),
        dir.path().join("test.yaml"),
    )
    .unwrap();
    promtool_ok(dir.path(), &["test", "rules", "test.yaml"]);

    // Each alert can be turned off on its own.
    let off = docs(&render_with(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.leaderFlapping.enabled=false",
    ]));
    let rules =
        off.iter().find(|d| d["kind"] == "PrometheusRule").unwrap()["spec"]["groups"][0]["rules"]
            .to_string();
    assert!(!rules.contains("OrgopsLeaderFlapping") && rules.contains("OrgopsNoLeader"));
}

/// Series names a scrape of orgops can hold: each `# TYPE` family with its suffixes.
fn exposed_series() -> BTreeSet<String> {
    let metrics = orgops::controller::metrics::Metrics::new(
        std::sync::Arc::new(orgops::vendors::Endpoints::default()),
        Default::default(),
    );
    // Families show once they hold a series: one of each.
    metrics.reconciled("organization", "ready");
    metrics
        .failures
        .get_or_create(&orgops::controller::metrics::FailureLabels {
            kind: "organization".into(),
            reason: "VendorUnavailable".into(),
        })
        .inc();
    metrics
        .objects_copied
        .get_or_create(&orgops::controller::metrics::KindLabels {
            kind: "queues".into(),
        })
        .inc();
    drop(metrics.timer("organization"));
    let mut names = BTreeSet::new();
    for line in metrics.encode().lines() {
        let mut words = line.split(' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
    }
    names
}

#[test]
fn the_dashboard_loads_and_queries_only_what_orgops_exposes() {
    let docs = monitoring_docs();
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "orgops-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(map["data"]["orgops.json"].as_str().unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "orgops");
    let mut queries: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(queries.len() >= 10, "{queries:?}");
    // Every query parses (as a recording rule, with Grafana's variables filled in) and names
    // only series orgops exposes, so no panel stays empty after a rename.
    let exposed = exposed_series();
    let mut rules = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        for name in q
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("orgops_"))
        {
            assert!(
                exposed.contains(name),
                "panel query {q:?} reads {name}, which orgops does not expose ({exposed:?})"
            );
        }
        let expr = q
            .replace("$__rate_interval", "5m")
            .replace("$namespace", "orgops-system");
        rules.push(json!({"record": format!("dashboard:query_{i}"), "expr": expr}));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("queries.yaml"),
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    promtool_ok(dir.path(), &["check", "rules", "queries.yaml"]);
}
