//! End to end: a real `orgops run` process, the Rossum simulator, and an API server (the
//! in-repo one, or `ORGOPS_E2E_KUBECONFIG`), driven with kubectl as a platform engineer would.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orgops::simulator::kit::SimulatorHandle;
use serde_json::Value;
use support::cluster::{Cluster, stderr, stdout};
use support::operator::Operator;
use support::*;

async fn start_operator(c: &Cluster, ns: &str) -> Operator {
    start_replica(c, ns, "replica-0", 15).await
}

/// Starts `orgops run` as pod `identity`, with its leader Lease in `ns`.
async fn start_replica(c: &Cluster, ns: &str, identity: &str, lease_seconds: u64) -> Operator {
    support::operator::start(
        c,
        &[ns],
        ns,
        identity,
        lease_seconds,
        // Short syncIntervals make re-checks observable within a test.
        &[
            "--allowed-endpoints",
            "rossum=http://127.0.0.1:*",
            "--min-sync-interval",
            "1s",
        ],
    )
    .await
}

/// A Secret, a VendorConnection to the simulator (allowed by the operator's
/// `--allowed-endpoints`), and an Organization using it.
fn manifests(ns: &str, endpoint: &str, password: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: rossum-admin, namespace: {ns}}}\nstringData:\n  username: {ADMIN}\n  password: {password}\n  createKey: {CREATE_KEY}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: rossum, namespace: {ns}}}\nspec:\n  vendor: rossum\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: rossum-admin}}\n---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: german-department, namespace: {ns}}}\nspec:\n  vendor: rossum\n  displayName: German department\n  connectionRef: {{name: rossum}}\n  template: {{displayName: Template org}}\n  settings: {{rossum: {{firstUser: {{email: de-{ns}@tenants.example}}}}}}\n{extra_spec}"
    )
}

async fn apply(c: &Cluster, dir: &std::path::Path, text: &str) {
    let file = dir.join("m.yaml");
    std::fs::write(&file, text).unwrap();
    let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

async fn jsonpath(c: &Cluster, ns: &str, path: &str) -> String {
    stdout(
        &c.kubectl(&[
            "get",
            "org",
            "german-department",
            "-n",
            ns,
            "-o",
            &format!("jsonpath={path}"),
        ])
        .await,
    )
}

async fn wait_for(c: &Cluster, ns: &str, condition: &str) {
    let out = c
        .kubectl(&[
            "wait",
            &format!("--for={condition}"),
            "org/german-department",
            "-n",
            ns,
            "--timeout=60s",
        ])
        .await;
    assert!(
        out.status.success(),
        "wait {condition}: {}\n{}",
        stderr(&out),
        stdout(&c.kubectl(&["get", "org", "-n", ns, "-o", "yaml"]).await)
    );
}

/// Sets `spec.suspend` of german-department.
async fn set_suspend(c: &Cluster, ns: &str, suspend: bool) {
    let patch = format!(r#"{{"spec":{{"suspend":{suspend}}}}}"#);
    let p = c
        .kubectl(&[
            "patch",
            "org",
            "german-department",
            "-n",
            ns,
            "--type=merge",
            "-p",
            &patch,
        ])
        .await;
    assert!(p.status.success(), "{}", stderr(&p));
}

/// Waits until `n` more Organization reconciles have completed with `result` (full passes
/// over the vendor, not echo skips), so that "nothing happened" covers what could make it happen.
async fn passes(op: &Operator, result: &str, n: u64) {
    let series = format!("orgops_reconciles_total{{kind=\"organization\",result=\"{result}\"}}");
    let start = op.metric(&series).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while op.metric(&series).await < start + n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} {result} passes in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn marked_copies(sim: &orgops::simulator::rossum::RossumSimulator, org: u64, kind: &str) -> usize {
    sim.objects(kind, org)
        .iter()
        .filter(|o| o.pointer("/metadata/orgops").is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_wait_ready_edit_and_delete_with_kubectl() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("op").await;
    let sim = simulator("").await;
    let op = start_operator(&c, &ns).await;
    let dir = tempfile::tempdir().unwrap();

    // A short syncInterval, so that the idle check below can span whole drift re-checks.
    apply(
        &c,
        dir.path(),
        &manifests(&ns, &sim.base_url, PASSWORD, "  syncInterval: 2s\n"),
    )
    .await;
    wait_for(&c, &ns, "condition=Ready").await;

    let table = stdout(&c.kubectl(&["get", "orgs", "-n", &ns]).await);
    let row = table.lines().nth(1).unwrap_or_default().to_string();
    let external_id = jsonpath(&c, &ns, "{.status.externalId}").await;
    assert!(!external_id.is_empty());
    assert!(
        row.contains("rossum")
            && row.contains(&external_id)
            && row.contains("Ready")
            && row.contains("206/206")
            && row.contains("True"),
        "{table}"
    );
    assert_eq!(
        jsonpath(
            &c,
            &ns,
            "{.status.conditions[?(@.type==\"Ready\")].observedGeneration}"
        )
        .await,
        "1"
    );

    // The vendor holds exactly one org and one copy of the template.
    let org_id: u64 = external_id.parse().unwrap();
    let template = sim.org_id("Template org").unwrap();
    assert_eq!(sim.org_ids("German department").len(), 1);
    for kind in MARKER_KINDS {
        assert_eq!(
            marked_copies(&sim, org_id, kind),
            sim.objects(kind, template).len(),
            "{kind}"
        );
    }
    let events = stdout(&c.kubectl(&["get", "events", "-n", &ns]).await);
    assert!(
        events.contains("Created") && events.contains("TemplateCopied"),
        "{events}"
    );

    // Idle: two complete drift re-checks (what could write) and no vendor write.
    let writes = sim.total_writes();
    passes(&op, "ready", 2).await;
    assert_eq!(sim.total_writes(), writes, "vendor writes while idle");

    // A spec edit reaches the vendor.
    let p = c
        .kubectl(&[
            "patch",
            "org",
            "german-department",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"displayName":"Deutsche Abteilung"}}"#,
        ])
        .await;
    assert!(p.status.success(), "{}", stderr(&p));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let name = sim
            .with_db(|db| db.render("organizations", org_id))
            .unwrap()["name"]
            .clone();
        if name == "Deutsche Abteilung" {
            break;
        }
        assert!(Instant::now() < deadline, "display name not synced: {name}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(&c, &ns, "jsonpath={.status.observedGeneration}=2").await;

    // Delete with deletionPolicy Delete: Rossum cannot delete organizations, so it waits and says why.
    let p = c
        .kubectl(&[
            "patch",
            "org",
            "german-department",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"deletionPolicy":"Delete"}}"#,
        ])
        .await;
    assert!(p.status.success());
    let d = c
        .kubectl(&[
            "delete",
            "org",
            "german-department",
            "-n",
            &ns,
            "--wait=false",
        ])
        .await;
    assert!(d.status.success(), "{}", stderr(&d));
    wait_for(&c, &ns, "condition=Unsupported").await;
    assert_eq!(jsonpath(&c, &ns, "{.status.phase}").await, "Deleting");
    // Choosing Orphan releases it; the org stays at the vendor.
    let p = c
        .kubectl(&[
            "patch",
            "org",
            "german-department",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"deletionPolicy":"Orphan"}}"#,
        ])
        .await;
    assert!(p.status.success(), "{}", stderr(&p));
    wait_for(&c, &ns, "delete").await;
    assert!(sim.with_db(|db| db.get("organizations", org_id).is_some()));

    let metrics = reqwest::get(&op.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("orgops_reconciles_total"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("orgops_vendor_requests_total{vendor=\"rossum\"")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_reported_without_a_hot_loop_and_recover_when_fixed() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("creds").await;
    let sim = simulator("").await;
    let _op = start_operator(&c, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "definitely-wrong-password-91";

    apply(&c, dir.path(), &manifests(&ns, &sim.base_url, wrong, "")).await;
    wait_for(&c, &ns, "condition=CredentialsValid=False").await;
    let message = jsonpath(
        &c,
        &ns,
        "{.status.conditions[?(@.type==\"CredentialsValid\")].message}",
    )
    .await;
    assert!(message.contains(&format!("{ns}/rossum-admin")), "{message}");
    let yaml = stdout(
        &c.kubectl(&["get", "org", "german-department", "-n", &ns, "-o", "yaml"])
            .await,
    );
    assert!(!yaml.contains(wrong), "a credential leaked into status");
    let events = stdout(&c.kubectl(&["get", "events", "-n", &ns]).await);
    assert!(events.contains("CredentialsInvalid"), "{events}");

    // No hot loop: few vendor requests over several seconds.
    let before = sim.running.stats.requests.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = sim.running.stats.requests.load(Ordering::Relaxed) - before;
    assert!(
        during <= 2,
        "{during} vendor requests in 4 s with bad credentials"
    );

    // Fixing the Secret recovers without a restart.
    apply(&c, dir.path(), &manifests(&ns, &sim.base_url, PASSWORD, "")).await;
    wait_for(&c, &ns, "condition=Ready").await;
    assert_eq!(
        jsonpath(
            &c,
            &ns,
            "{.status.conditions[?(@.type==\"CredentialsValid\")].status}"
        )
        .await,
        "True"
    );
    let _ = Value::Null;
}

async fn leader_gauge(op: &Operator) -> Option<u64> {
    let text = reqwest::get(&op.metrics).await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with("orgops_leader "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn count_orgs(sim: &orgops::simulator::rossum::RossumSimulator, name: &str) -> usize {
    sim.org_ids(name).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_the_other_takes_over_when_it_is_killed() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("ha").await;
    let sim = simulator("").await;
    let mut replicas = vec![
        start_replica(&c, &ns, "replica-a", 3).await,
        start_replica(&c, &ns, "replica-b", 3).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    apply(&c, dir.path(), &manifests(&ns, &sim.base_url, PASSWORD, "")).await;
    wait_for(&c, &ns, "condition=Ready").await;
    let gauges = [
        leader_gauge(&replicas[0]).await,
        leader_gauge(&replicas[1]).await,
    ];
    assert_eq!(
        gauges.iter().map(|g| g.unwrap_or(0)).sum::<u64>(),
        1,
        "exactly one leader: {gauges:?}"
    );
    assert_eq!(count_orgs(&sim, "German department"), 1);

    // Kill the leader without a chance to release the Lease; the other takes over.
    let leader_index = if gauges[0] == Some(1) { 0 } else { 1 };
    let mut leader = replicas.remove(leader_index);
    let standby = &replicas[0];
    leader.child.start_kill().unwrap();
    let _ = leader.child.wait().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while leader_gauge(standby).await != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the standby did not take over within the lease duration"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = c
        .kubectl(&[
            "patch",
            "org",
            "german-department",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"displayName":"Taken over"}}"#,
        ])
        .await;
    assert!(p.status.success());
    wait_for(&c, &ns, "jsonpath={.status.observedGeneration}=2").await;
    assert_eq!(count_orgs(&sim, "Taken over"), 1);
    assert_eq!(count_orgs(&sim, "German department"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ten_times_during_create_and_copy_still_makes_exactly_one_of_everything() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("chaos").await;
    // Latency stretches the copy so that kills land in the middle of it.
    let sim = {
        let options = orgops::simulator::ServeOptions {
            latency: Duration::from_millis(25),
            ..Default::default()
        };
        orgops::simulator::rossum::RossumSimulator::start(
            0,
            &orgops::simulator::rossum::Seed::template().unwrap(),
            &[admin()],
            options,
        )
        .await
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    apply(&c, dir.path(), &manifests(&ns, &sim.base_url, PASSWORD, "")).await;
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..10 {
        let mut op = start_replica(&c, &ns, "replica-0", 15).await;
        tokio::time::sleep(Duration::from_millis(rng.u64(50..900))).await;
        op.child.start_kill().unwrap();
        let _ = op.child.wait().await;
    }
    let _op = start_replica(&c, &ns, "replica-0", 15).await;
    wait_for(&c, &ns, "condition=Ready").await;

    assert_eq!(count_orgs(&sim, "German department"), 1);
    let org_id: u64 = jsonpath(&c, &ns, "{.status.externalId}")
        .await
        .parse()
        .unwrap();
    let template = sim.org_id("Template org").unwrap();
    for kind in MARKER_KINDS {
        assert_eq!(
            marked_copies(&sim, org_id, kind),
            sim.objects(kind, template).len(),
            "{kind}"
        );
    }
    for kind in ["labels", "rules", "email_templates"] {
        assert_eq!(
            sim.objects(kind, org_id).len(),
            sim.objects(kind, template).len(),
            "{kind}"
        );
    }
    assert_eq!(
        sim.all_objects("users")
            .iter()
            .filter(|u| u["username"] == format!("de-{ns}@tenants.example"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired_within_sync_interval_and_only_reported_when_suspended() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("drift").await;
    let sim = simulator("").await;
    let op = start_operator(&c, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    apply(
        &c,
        dir.path(),
        &manifests(&ns, &sim.base_url, PASSWORD, "  syncInterval: 2s\n"),
    )
    .await;
    wait_for(&c, &ns, "condition=Ready").await;
    let org_id: u64 = jsonpath(&c, &ns, "{.status.externalId}")
        .await
        .parse()
        .unwrap();

    // Drift made by hand at the vendor is repaired within syncInterval.
    let queue = sim
        .objects("queues", org_id)
        .into_iter()
        .find(|q| q.pointer("/metadata/orgops").is_some())
        .unwrap();
    let qid = queue["id"].as_u64().unwrap();
    sim.patch_object(
        "queues",
        &qid.to_string(),
        &serde_json::json!({"name": "changed by hand"}),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while sim
        .objects("queues", org_id)
        .iter()
        .any(|q| q["name"] == "changed by hand")
    {
        assert!(Instant::now() < deadline, "drift not repaired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Suspended: drift is reported, not repaired, and nothing is written.
    set_suspend(&c, &ns, true).await;
    wait_for(&c, &ns, "jsonpath={.status.observedGeneration}=2").await;
    sim.patch_object(
        "queues",
        &qid.to_string(),
        &serde_json::json!({"name": "changed again"}),
    )
    .unwrap();
    wait_for(&c, &ns, "condition=TemplateCopied=False").await;
    let reason = jsonpath(
        &c,
        &ns,
        "{.status.conditions[?(@.type==\"TemplateCopied\")].reason}",
    )
    .await;
    assert_eq!(reason, "DriftDetected");
    // Two complete observe-only passes after the drift was seen, and no vendor write.
    let writes = sim.total_writes();
    passes(&op, "not_ready", 2).await;
    assert_eq!(
        sim.total_writes(),
        writes,
        "suspended, yet the vendor was written"
    );
    assert!(
        sim.objects("queues", org_id)
            .iter()
            .any(|q| q["name"] == "changed again")
    );
    // The status says what resuming would do: the plan `orgops plan` prints, and a wide column.
    assert_eq!(
        jsonpath(&c, &ns, "{.status.plan.summary}").await,
        "Plan: 1 copy to update."
    );
    assert_eq!(
        jsonpath(&c, &ns, "{.status.plan.changes[0]}").await,
        format!("~ queues/{qid} \"changed again\": name")
    );
    let wide = c.kubectl(&["get", "orgs", "-n", &ns, "-o", "wide"]).await;
    let wide = String::from_utf8_lossy(&wide.stdout).to_string();
    assert!(
        wide.contains("PLAN") && wide.contains("Plan: 1 copy to update."),
        "{wide}"
    );

    // Resumed: the drift is repaired and the plan leaves the status.
    set_suspend(&c, &ns, false).await;
    wait_for(&c, &ns, "jsonpath={.status.observedGeneration}=3").await;
    wait_for(&c, &ns, "condition=Ready").await;
    assert_eq!(jsonpath(&c, &ns, "{.status.plan}").await, "");
    assert!(
        sim.objects("queues", org_id)
            .iter()
            .all(|q| q["name"] != "changed again")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_fails_clearly_without_crds_and_sigterm_stops_gracefully() {
    let c = Cluster::start().await;
    if !c.is_test_server() {
        eprintln!("skipped on a real cluster: it would need the CRDs removed");
        return;
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgops"))
        .args(["run", "--listen", "127.0.0.1:0", "--leader-election=false"])
        .env("KUBECONFIG", &c.kubeconfig)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("organizations.orgops.io is not installed")
            && err.contains("kubectl apply -f crds/"),
        "{err}"
    );

    c.install_crds().await;
    let ns = c.namespace("term").await;
    let mut op = start_operator(&c, &ns).await;
    let pid = op.child.id().unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), op.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    // The Lease was released for a fast handover.
    let holder = stdout(
        &c.kubectl(&[
            "get",
            "lease",
            "orgops-leader",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .await,
    );
    assert_eq!(holder, "");
}

fn second_org(ns: &str) -> String {
    format!(
        "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: french-department, namespace: {ns}}}\nspec:\n  vendor: rossum\n  displayName: French department\n  connectionRef: {{name: rossum}}\n  settings: {{rossum: {{firstUser: {{email: fr-{ns}@tenants.example}}}}}}\n"
    )
}

fn george(ns: &str, org: &str) -> String {
    format!(
        "apiVersion: orgops.io/v1alpha1\nkind: OrgMembership\nmetadata: {{name: george-{org}, namespace: {ns}}}\nspec:\n  organizationRef: {{name: {org}}}\n  user: {{email: george-{ns}@example.com, firstName: George}}\n  role: admin\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn george_in_two_orgs_waits_for_them_then_removing_one_removes_only_that_access() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("george").await;
    let sim = simulator("").await;
    let _op = start_operator(&c, &ns).await;
    let dir = tempfile::tempdir().unwrap();

    // The memberships come first: they wait for their organizations without error spam.
    let members = format!(
        "{}---\n{}",
        george(&ns, "german-department"),
        george(&ns, "french-department")
    );
    apply(&c, dir.path(), &members).await;
    let waiting = c
        .kubectl(&[
            "wait",
            "--for=jsonpath={.status.phase}=WaitingForOrganization",
            "orgm/george-german-department",
            "-n",
            &ns,
            "--timeout=30s",
        ])
        .await;
    assert!(waiting.status.success(), "{}", stderr(&waiting));

    let orgs = format!(
        "{}---\n{}",
        manifests(&ns, &sim.base_url, PASSWORD, ""),
        second_org(&ns)
    );
    apply(&c, dir.path(), &orgs).await;
    for m in ["george-german-department", "george-french-department"] {
        let out = c
            .kubectl(&[
                "wait",
                "--for=condition=Ready",
                &format!("orgm/{m}"),
                "-n",
                &ns,
                "--timeout=60s",
            ])
            .await;
        assert!(
            out.status.success(),
            "{m}: {}\n{}",
            stderr(&out),
            stdout(&c.kubectl(&["get", "orgm", "-n", &ns, "-o", "yaml"]).await)
        );
    }
    let table = stdout(&c.kubectl(&["get", "orgm", "-n", &ns]).await);
    assert!(
        table.lines().next().unwrap().contains("EMAIL") && table.contains("Ready"),
        "{table}"
    );

    let username = format!("george-{ns}@example.com");
    let users = || {
        sim.all_objects("users")
            .iter()
            .filter(|u| u["username"] == username.as_str() && u["is_active"] == true)
            .count()
    };
    assert_eq!(users(), 1, "one user, whatever the number of orgs");
    let memberships = || sim.all_objects("memberships").len();
    assert_eq!(memberships(), 1);

    // Removing one OrgMembership (deletionPolicy Delete by default) removes only that access.
    let primary_org = sim.with_db(|db| {
        db.find("users", |u| u.value["username"] == username.as_str())
            .unwrap()
            .org
    });
    let de_id: u64 = jsonpath(&c, &ns, "{.status.externalId}")
        .await
        .parse()
        .unwrap();
    let (removed, kept) = if primary_org == de_id {
        ("george-french-department", "membership")
    } else {
        ("george-german-department", "membership")
    };
    let _ = kept;
    let d = c
        .kubectl(&["delete", "orgm", removed, "-n", &ns, "--timeout=30s"])
        .await;
    assert!(d.status.success(), "{}", stderr(&d));
    assert_eq!(memberships(), 0);
    assert_eq!(users(), 1, "the user keeps the access to the other org");

    // Back again, then the access to the user's own organization goes — and its OrgMembership
    // lost its externalId (as when the create's response was lost): the finalizer stays until
    // the vendor, asked by e-mail, grants nothing.
    apply(&c, dir.path(), &members).await;
    let out = c
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            "orgm",
            "--all",
            "-n",
            &ns,
            "--timeout=60s",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(memberships(), 1);
    let (own, other) = if primary_org == de_id {
        ("george-german-department", "george-french-department")
    } else {
        ("george-french-department", "george-german-department")
    };
    let p = c
        .kubectl(&[
            "patch",
            "orgm",
            own,
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"externalId":null}}"#,
        ])
        .await;
    assert!(p.status.success(), "{}", stderr(&p));
    let d = c
        .kubectl(&["delete", "orgm", own, "-n", &ns, "--timeout=30s"])
        .await;
    assert!(d.status.success(), "{}", stderr(&d));
    assert_eq!(
        users(),
        0,
        "access to the user's own organization was not removed"
    );

    // The other OrgMembership must not re-enable the user: that would undo the revocation.
    let p = c
        .kubectl(&[
            "patch",
            "orgm",
            other,
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"user":{"firstName":"Georg"}}}"#,
        ])
        .await;
    assert!(p.status.success(), "{}", stderr(&p));
    let out = c
        .kubectl(&[
            "wait",
            "--for=jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=AccessBlocked",
            &format!("orgm/{other}"),
            "-n",
            &ns,
            "--timeout=30s",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        stdout(
            &c.kubectl(&["get", "orgm", other, "-n", &ns, "-o", "yaml"])
                .await
        )
    );
    assert_eq!(
        users(),
        0,
        "a revocation was undone by another OrgMembership"
    );

    // Bad input the schema can catch is refused by the API server, with the field.
    for (doc, field) in [
        (
            george(&ns, "x").replace("  organizationRef: {name: x}\n", ""),
            "spec.organizationRef",
        ),
        (
            george(&ns, "y").replace(&format!("george-{ns}@example.com"), "not-an-email"),
            "spec.user.email",
        ),
    ] {
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, doc).unwrap();
        let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains(field), "{field}: {}", stderr(&out));
    }
    // An unknown role is a condition (the schema cannot know each vendor's roles).
    let file = dir.path().join("role.yaml");
    std::fs::write(
        &file,
        format!("apiVersion: orgops.io/v1alpha1\nkind: OrgMembership\nmetadata: {{name: vera-german-department, namespace: {ns}}}\nspec:\n  organizationRef: {{name: german-department}}\n  user: {{email: vera@example.com}}\n  role: overlord\n"),
    )
    .unwrap();
    let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let ready = c
        .kubectl(&[
            "wait",
            "--for=condition=Ready=False",
            "orgm/vera-german-department",
            "-n",
            &ns,
            "--timeout=30s",
        ])
        .await;
    assert!(ready.status.success(), "{}", stderr(&ready));
    let msg = stdout(
        &c.kubectl(&[
            "get",
            "orgm",
            "vera-german-department",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
        ])
        .await,
    );
    assert!(
        msg.contains("overlord") && msg.contains("annotator"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_orgs_shows_ready_n_of_n_throughout_resyncs_that_change_nothing() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("truth").await;
    let sim = simulator("").await;
    let op = start_operator(&c, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    apply(
        &c,
        dir.path(),
        &manifests(&ns, &sim.base_url, PASSWORD, "  syncInterval: 1s\n"),
    )
    .await;
    wait_for(&c, &ns, "condition=Ready").await;
    let row = || async {
        jsonpath(
            &c,
            &ns,
            "{.status.phase} {.status.progress} {.status.conditions[?(@.type==\"Ready\")].status}",
        )
        .await
    };
    let settled = row().await;
    let (phase, rest) = settled.split_once(' ').unwrap();
    let progress = rest.split_whitespace().next().unwrap();
    let (done, total) = progress.split_once('/').unwrap();
    assert_eq!((phase, done), ("Ready", total), "{settled}");
    // Usage and billing are in status, summarised in the wide table only.
    assert_eq!(
        jsonpath(&c, &ns, "{.status.usage.email_limits.email_per_day_limit}").await,
        "1000"
    );
    assert!(
        !jsonpath(&c, &ns, "{.status.usage.billing.begin_date}")
            .await
            .is_empty()
    );
    let wide = stdout(&c.kubectl(&["get", "orgs", "-n", &ns, "-o", "wide"]).await);
    assert!(
        wide.lines().next().unwrap_or_default().contains("USAGE"),
        "{wide}"
    );
    assert!(wide.contains("emails today 0/1000"), "{wide}");
    let narrow = stdout(&c.kubectl(&["get", "orgs", "-n", &ns]).await);
    assert!(!narrow.contains("USAGE"), "{narrow}");

    // Poll what kubectl shows while at least four re-syncs run (counted, not slept).
    let series = "orgops_reconciles_total{kind=\"organization\",result=\"ready\"}";
    let usage_reads = sim.with_db(|db| db.usage_reads);
    let start = op.metric(series).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut samples = 0;
    while op.metric(series).await < start + 4 {
        assert!(Instant::now() < deadline, "re-syncs did not run");
        let now = row().await;
        assert_eq!(now, settled, "kubectl get orgs changed during a re-sync");
        samples += 1;
    }
    assert!(samples >= 4, "{samples} samples");
    // No status write at all: a re-sync that finds nothing says nothing new.
    let patches = |c: &Cluster| {
        c.server.as_ref().map(|s| {
            s.requests()
                .get("PATCH orgops.io/organizations/{name}/status")
                .copied()
                .unwrap_or(0)
        })
    };
    let before = patches(&c);
    let now = op.metric(series).await;
    while op.metric(series).await < now + 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        patches(&c),
        before,
        "status written by re-syncs that changed nothing"
    );
    // Drift re-checks every second; usage waits for --usage-interval (1h).
    assert_eq!(
        sim.with_db(|db| db.usage_reads),
        usage_reads,
        "usage read by drift re-checks"
    );
}

/// Organizations copying one template, with an hour between their own drift checks.
fn fleet(ns: &str, endpoint: &str, n: usize) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: rossum-admin, namespace: {ns}}}\nstringData:\n  username: {ADMIN}\n  password: {PASSWORD}\n  createKey: {CREATE_KEY}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: rossum, namespace: {ns}}}\nspec:\n  vendor: rossum\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: rossum-admin}}\n  rateLimit: 200\n"
    );
    for i in 0..n {
        text.push_str(&format!(
            "---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: tenant-{i}, namespace: {ns}}}\nspec:\n  vendor: rossum\n  displayName: Tenant {i}\n  connectionRef: {{name: rossum}}\n  syncInterval: 1h\n  template: {{displayName: Small template}}\n  settings: {{rossum: {{firstUser: {{email: t{i}-{ns}@tenants.example}}}}}}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_change_reaches_every_copy_at_once_and_the_template_is_read_once_per_interval() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("fanout").await;
    let seed = orgops::simulator::rossum::Seed::from_json(SMALL_TEMPLATE).unwrap();
    let sim = orgops::simulator::rossum::RossumSimulator::start(
        0,
        &seed,
        &[admin()],
        orgops::simulator::ServeOptions::default(),
    )
    .await
    .unwrap();
    let op = support::operator::start(
        &c,
        &[&ns],
        &ns,
        "replica-0",
        15,
        &[
            "--allowed-endpoints",
            "rossum=http://127.0.0.1:*",
            "--template-interval",
            "1s",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let orgs = 4;
    apply(&c, dir.path(), &fleet(&ns, &sim.base_url, orgs)).await;
    let ready = c
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            "orgs",
            "--all",
            "-n",
            &ns,
            "--timeout=60s",
        ])
        .await;
    assert!(ready.status.success(), "{}", stderr(&ready));

    // Idle: the operator reads the template once per interval for all four, and nothing else
    // (each Organization's own drift check is an hour away).
    let requests = || sim.running.stats.requests.load(Ordering::SeqCst);
    let template = sim.org_id("Small template").unwrap();
    let template_kinds = 9; // at most: every Rossum kind the template holds listed once
    let (before, started) = (requests(), Instant::now());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let idle = requests() - before;
    let rounds = started.elapsed().as_secs() + 1;
    assert!(
        idle <= template_kinds * rounds,
        "{idle} requests in {rounds} fan-out rounds while idle: more than one template read per round"
    );

    // A template object renamed: every copy follows within a few rounds, not within the hour.
    let queue = sim
        .objects("queues", template)
        .into_iter()
        .find(|q| q["name"] == "Invoices")
        .unwrap();
    let qid = queue["id"].as_u64().unwrap();
    sim.with_db(|db| db.hand_patch("queues", qid, &serde_json::json!({"name": "Invoices 2027"})))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let followed = (0..orgs)
            .filter(|i| {
                let id = sim.org_id(&format!("Tenant {i}")).unwrap();
                sim.objects("queues", id)
                    .iter()
                    .any(|q| q["name"] == "Invoices 2027")
            })
            .count();
        if followed == orgs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{followed}/{orgs} organizations followed the template change in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(op.metric("orgops_template_changes_total").await >= 1);
}
