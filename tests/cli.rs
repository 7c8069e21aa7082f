//! `orgops apply` as a user runs it: the real binary, manifests on disk, a simulator on loopback.

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;

use orgops::simulator::kit::SimulatorHandle;
use orgops::simulator::rossum::RossumSimulator;
use support::*;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn orgops(args: &[&str]) -> Run {
    // Each run keeps its create intents apart from other tests' and from the user's.
    let state_home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgops"))
        .args(args)
        .env("XDG_STATE_HOME", state_home.path())
        .output()
        .await
        .expect("orgops runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn secret(password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: rossum-admin, namespace: tenants}}\nstringData:\n  username: {ADMIN}\n  password: {password}\n  createKey: {CREATE_KEY}\n"
    )
}

/// A VendorConnection to `endpoint` with the Secret of [`secret`], and an Organization using it.
fn org(name: &str, display: &str, endpoint: &str) -> String {
    format!(
        "apiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: conn-{name}, namespace: tenants}}\nspec:\n  vendor: rossum\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: rossum-admin}}\n---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: {name}, namespace: tenants}}\nspec:\n  vendor: rossum\n  displayName: {display}\n  connectionRef: {{name: conn-{name}}}\n  template: {{displayName: Template org}}\n  settings: {{rossum: {{firstUser: {{email: {name}@tenants.example}}}}}}\n"
    )
}

fn write(dir: &Path, file: &str, text: &str) -> String {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn writes(sim: &RossumSimulator) -> u64 {
    sim.total_writes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_applies_the_examples_against_the_embedded_simulator() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/");
    let run = orgops(&["apply", "--simulate", "-f", examples]).await;
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("PROGRESS") && lines[0].contains("READY")
    );
    // Every vendor the examples use runs on its own simulator, in one command.
    for (name, vendor) in [
        ("german-department", "rossum"),
        ("french-department", "rossum"),
        ("research", "openlattice"),
        ("vision", "dataloop"),
        ("synthetics", "renderedai"),
    ] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} row"));
        assert!(
            row.contains(vendor) && row.contains("Ready") && row.contains("True"),
            "{row}"
        );
    }
    for member in [
        "george-in-german-department",
        "george-in-french-department",
        "alice-in-research",
    ] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(member))
            .unwrap_or_else(|| panic!("{member} row"));
        assert!(row.contains("Ready"), "{row}");
    }
    // Dataloop invites: the membership waits for Carol to accept, and apply still succeeds.
    let carol = lines
        .iter()
        .find(|l| l.starts_with("carol-in-vision"))
        .expect("carol-in-vision row");
    assert_eq!(carol.split_whitespace().nth(4), Some("Invited"), "{carol}");
    // So does Rendered.ai, for someone without an account.
    let dana = lines
        .iter()
        .find(|l| l.starts_with("dana-in-synthetics"))
        .expect("dana-in-synthetics row");
    assert_eq!(dana.split_whitespace().nth(4), Some("Invited"), "{dana}");
    // Vision is adopted (Dataloop's API creates no organizations), by its seeded name.
    let vision = lines.iter().find(|l| l.starts_with("vision")).unwrap();
    assert!(
        vision.contains(orgops::simulator::dataloop::seed::TARGET_ORG_ID),
        "{vision}"
    );
    assert!(
        run.stderr
            .contains("Simulated Dataloop at http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    // Synthetics too is adopted by its seeded name.
    let synthetics = lines.iter().find(|l| l.starts_with("synthetics")).unwrap();
    assert!(
        synthetics.contains(orgops::simulator::renderedai::seed::TARGET_ORG_ID),
        "{synthetics}"
    );
    assert!(
        run.stderr
            .contains("Simulated Rendered.ai at http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Simulated OpenLattice at http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("created organization"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_creates_nothing_and_says_so() {
    let sim = simulator("").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.yaml", &secret(PASSWORD));
    write(
        dir.path(),
        "org.yaml",
        &org("nordics", "Nordics", &sim.base_url),
    );
    let path = dir.path().display().to_string();

    let first = orgops(&["apply", "-f", &path, "--rate-limit", "200"]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stderr.contains("created organization"),
        "{}",
        first.stderr
    );
    let after_first = writes(&sim);

    let second = orgops(&["apply", "-f", &path, "--rate-limit", "200"]).await;
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second
            .stderr
            .contains("unchanged: nothing to create or update"),
        "{}",
        second.stderr
    );
    assert_eq!(
        writes(&sim),
        after_first,
        "the second apply wrote to the vendor"
    );
    let orgs = sim.org_ids("Nordics").len();
    assert_eq!(orgs, 1);

    // -o yaml prints the resource with its status.
    let yaml = orgops(&["apply", "-f", &path, "-o", "yaml", "--rate-limit", "200"]).await;
    assert_eq!(yaml.code, 0);
    let docs: Vec<orgops::api::Organization> = serde_saphyr::from_multiple(&yaml.stdout).unwrap();
    let status = docs[0].status.as_ref().unwrap();
    assert_eq!(status.phase, Some(orgops::api::OrgPhase::Ready));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    assert_eq!(status.copy.as_ref().unwrap().failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_name_the_secret_and_print_no_credential() {
    let sim = simulator("").await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wrong-password-7f3a9c";
    write(dir.path(), "secret.yaml", &secret(wrong));
    write(
        dir.path(),
        "org.yaml",
        &org("bad", "Bad creds", &sim.base_url),
    );
    for output in ["table", "yaml"] {
        let run = orgops(&[
            "apply",
            "-f",
            &dir.path().display().to_string(),
            "-o",
            output,
        ])
        .await;
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(all.contains("tenants/rossum-admin"), "{all}");
        assert!(all.contains("CredentialsInvalid"), "{all}");
        for secret_text in [wrong, PASSWORD, CREATE_KEY] {
            assert!(
                !all.contains(secret_text),
                "output contains a credential:\n{all}"
            );
        }
    }
    assert_eq!(writes(&sim), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_file_document_and_field_and_touches_no_vendor() {
    let sim = simulator("").await;
    let ep = sim.base_url.clone();
    let good_org = org("x", "X", &ep);
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown vendor",
            format!(
                "{}---\n{}",
                secret(PASSWORD),
                good_org.replace(
                    "  vendor: rossum\n  displayName",
                    "  vendor: rossom\n  displayName"
                )
            ),
            &["document 3", "Organization/x", "spec.vendor", "rossom"],
        ),
        (
            // A Rossum Secret (username + password) for a Rendered.ai connection, which signs in
            // with an API key or e-mail + password.
            "Secret without the vendor's keys",
            format!(
                "{}---\n{}",
                secret(PASSWORD),
                good_org.replace("vendor: rossum", "vendor: renderedai")
            ),
            &[
                "document 2",
                "VendorConnection",
                "credentialsSecretRef",
                "\"email\"",
            ],
        ),
        (
            "missing Secret key",
            format!(
                "{}---\n{}",
                secret(PASSWORD).replace(&format!("  password: {PASSWORD}\n"), ""),
                good_org
            ),
            &[
                "document 2",
                "credentialsSecretRef",
                "tenants/rossum-admin",
                "\"password\"",
            ],
        ),
        (
            "wrong field type",
            format!(
                "{}---\n{}",
                secret(PASSWORD),
                good_org.replace("  vendor: rossum\n", "  vendor: rossum\n  suspend: maybe\n")
            ),
            &["document 3", "spec.suspend"],
        ),
        (
            "invalid YAML",
            format!("{}---\nspec: [unclosed\n", secret(PASSWORD)),
            &["invalid YAML"],
        ),
        (
            "Secret not given",
            good_org.clone(),
            &[
                "document 1",
                "VendorConnection tenants/conn-x: spec.credentialsSecretRef",
                "tenants/rossum-admin",
            ],
        ),
        (
            // serde-saphyr's own message would show the line with the password.
            "invalid YAML in a Secret",
            format!(
                "{}---\n{}",
                secret(PASSWORD).replace(
                    &format!("  password: {PASSWORD}\n"),
                    &format!("  password: {{{PASSWORD}\n")
                ),
                good_org
            ),
            &["document 1", "invalid YAML at line 6, column"],
        ),
        (
            "a name the API server refuses",
            format!(
                "{}---\n{}",
                secret(PASSWORD),
                good_org.replace("{name: x, namespace", "{name: '../Bad_Name', namespace")
            ),
            &[
                "document 3",
                "Organization: metadata.name",
                "RFC 1123 subdomain",
            ],
        ),
        (
            "a namespace the API server refuses",
            format!(
                "{}---\n{}",
                secret(PASSWORD).replace("namespace: tenants", "namespace: Tenants"),
                good_org
            ),
            &["document 1", "Secret/rossum-admin: metadata.namespace"],
        ),
        (
            // It crashed apply (exit 101) and every operator replica.
            "a sync interval beyond any Duration",
            format!(
                "{}---\n{}  syncInterval: 99999999999999999999h\n",
                secret(PASSWORD),
                good_org
            ),
            &["document 3", "Organization/x: spec.syncInterval", "24h"],
        ),
        (
            "a sync interval that would hog the shared rate limit",
            format!(
                "{}---\n{}  syncInterval: 500ms\n",
                secret(PASSWORD),
                good_org
            ),
            &["document 3", "spec.syncInterval", "shorter than 1s"],
        ),
        (
            "a rate limit of zero",
            format!(
                "{}---\n{}",
                secret(PASSWORD),
                good_org.replace("  endpoint:", "  rateLimit: 0\n  endpoint:")
            ),
            &["document 2", "VendorConnection/conn-x: spec.rateLimit"],
        ),
        ("an empty file", String::new(), &["holds no manifests"]),
        (
            "a file larger than 8 MiB",
            format!("# {}\n", "x".repeat(8 * 1024 * 1024)),
            &["larger than 8 MiB"],
        ),
    ];
    for (case, text, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "manifests.yaml", &text);
        let run = orgops(&["apply", "-f", &file]).await;
        assert_eq!(run.code, 2, "{case}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("manifests.yaml"),
            "{case}: {}",
            run.stderr
        );
        for n in needles {
            assert!(
                run.stderr.contains(n),
                "{case}: {n:?} not in {}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains(PASSWORD),
            "{case}: leaked a credential"
        );
    }
    assert_eq!(
        sim.running.stats.requests.load(Ordering::Relaxed),
        0,
        "bad input reached the vendor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_follow_their_organizations_and_duplicates_are_a_conflict() {
    let sim = simulator("").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.yaml", &secret(PASSWORD));
    write(
        dir.path(),
        "org.yaml",
        &org("nordics", "Nordics", &sim.base_url),
    );
    let member = |name: &str, email: &str, role: &str| {
        format!(
            "---\napiVersion: orgops.io/v1alpha1\nkind: OrgMembership\nmetadata: {{name: {name}, namespace: tenants}}\nspec:\n  organizationRef: {{name: nordics}}\n  user: {{email: {email}}}\n  role: {role}\n"
        )
    };
    write(
        dir.path(),
        "z-members.yaml",
        &format!(
            "{}{}",
            member("george", "george@acme.example", "admin"),
            member("george-again", "George@acme.example", "admin")
        ),
    );
    let path = dir.path().display().to_string();
    let run = orgops(&["apply", "-f", &path, "--rate-limit", "200"]).await;
    assert_eq!(
        run.code, 1,
        "the duplicate is not Ready: {}\n{}",
        run.stdout, run.stderr
    );
    let george = run
        .stdout
        .lines()
        .find(|l| l.starts_with("george "))
        .unwrap();
    assert!(george.contains("Ready"), "{}", run.stdout);
    let again = run
        .stdout
        .lines()
        .find(|l| l.starts_with("george-again"))
        .unwrap();
    assert!(again.contains("Failed"), "{}", run.stdout);
    assert_eq!(
        sim.all_objects("users")
            .iter()
            .filter(|u| u["username"] == "george@acme.example")
            .count(),
        1
    );

    // A malformed e-mail is bad input: named, exit 2, no vendor touched.
    write(
        dir.path(),
        "z-members.yaml",
        &member("bad", "not-an-email", "admin"),
    );
    let requests = sim.running.stats.requests.load(Ordering::Relaxed);
    let run = orgops(&["apply", "-f", &path]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("OrgMembership/bad: spec.user.email"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.running.stats.requests.load(Ordering::Relaxed), requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_after_the_vendor_created_the_org_is_resumed_not_repeated() {
    let sim = simulator("").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.yaml", &secret(PASSWORD));
    write(
        dir.path(),
        "org.yaml",
        &org("nordics", "Nordics", &sim.base_url),
    );
    // What a run killed between Rossum's 201 and the ownership marker leaves behind: the intent
    // on disk, and an unmarked org of that name created after it.
    let state = dir.path().join("state.json");
    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    let key = format!("rossum {} tenants/nordics", sim.base_url);
    std::fs::write(
        &state,
        serde_json::json!({ key: {"name": "Nordics", "startedAt": started.to_string()} })
            .to_string(),
    )
    .unwrap();
    let orphan = sim.with_db(|db| {
        db.create_org(1, "Nordics", serde_json::json!({}), None)
            .unwrap()
    });

    let files = dir.path().join("secret.yaml");
    let orgs = dir.path().join("org.yaml");
    let run = orgops(&[
        "apply",
        "-f",
        files.to_str().unwrap(),
        "-f",
        orgs.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
        "--rate-limit",
        "200",
    ])
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let named = sim.org_ids("Nordics").len();
    assert_eq!(named, 1, "a second org was created");
    assert!(
        run.stdout.contains(&orphan.to_string()),
        "the orphan was not adopted:\n{}",
        run.stdout
    );
    let left: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        left,
        serde_json::json!({}),
        "the intent is cleared once resolved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_out_of_range_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "secret.yaml", &secret(PASSWORD));
    for (args, needle) in [
        (
            vec!["apply", "-f", &file, "--rate-limit", "0"],
            "--rate-limit",
        ),
        (
            vec!["apply", "-f", &file, "--concurrency", "0"],
            "--concurrency",
        ),
        (
            vec!["apply", "-f", &file, "--attempts", "1000"],
            "--attempts",
        ),
        (
            vec!["run", "--default-sync-interval", "500ms"],
            "shorter than 1s",
        ),
        (
            vec!["run", "--default-sync-interval", "99999999999999999999h"],
            "--default-sync-interval",
        ),
    ] {
        let run = orgops(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}

/// At a vendor that cannot mark an organization as managed (OpenLattice), two Organizations
/// adopting the same one: the first manages it, the second says so and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_organizations_adopting_one_unmarked_org_are_refused_but_one() {
    let sim = orgops::simulator::openlattice::OpenLatticeSimulator::start(0, Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut docs = vec![format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: ol, namespace: t}}\nstringData: {{token: \"{}\"}}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: ol, namespace: t}}\nspec: {{vendor: openlattice, endpoint: \"{}\", credentialsSecretRef: {{name: ol}}}}\n",
        sim.admin_token, sim.base_url
    )];
    for name in ["first", "second"] {
        docs.push(format!(
            "apiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: {name}, namespace: t}}\nspec: {{vendor: openlattice, displayName: Template org, externalId: \"{}\", connectionRef: {{name: ol}}}}\n",
            sim.template_org_id
        ));
    }
    write(dir.path(), "m.yaml", &docs.join("---\n"));
    let path = dir.path().display().to_string();
    let state = dir.path().join("state.json").display().to_string();
    let run = orgops(&["apply", "-f", &path, "--state-file", &state]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("first") || l.starts_with("second"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert_eq!(
        rows.iter().filter(|r| r.contains("True")).count(),
        1,
        "exactly one manages it: {rows:?}"
    );
    assert!(
        run.stderr.contains("already managed by Organization t/"),
        "{}",
        run.stderr
    );
}

/// A hook of the template org that no other hook runs after, as (id, name).
fn template_hook(sim: &RossumSimulator) -> (u64, String) {
    let template = sim.org_id(orgops::simulator::rossum::TEMPLATE_ORG).unwrap();
    let hooks = sim.objects("hooks", template);
    let hook = hooks
        .iter()
        .find(|h| {
            hooks.iter().all(|other| {
                other["run_after"]
                    .as_array()
                    .is_none_or(|after| !after.contains(&h["url"]))
            })
        })
        .expect("the template has a hook nothing runs after");
    (
        hook["id"].as_u64().unwrap(),
        hook["name"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_what_apply_would_do_exits_like_terraform_and_writes_nothing() {
    let sim = simulator("").await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secret.yaml", &secret(PASSWORD));
    let manifest = org("nordics", "Nordics", &sim.base_url);
    write(dir.path(), "org.yaml", &manifest);
    let path = dir.path().display().to_string();
    let plan =
        |path: String| async move { orgops(&["plan", "-f", &path, "--rate-limit", "200"]).await };

    // Nothing exists yet: the org and every copy are to be created; nothing is written.
    let before = writes(&sim);
    let first = plan(path.clone()).await;
    assert_eq!(first.code, 2, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains("+ organization \"Nordics\" (create)"),
        "{}",
        first.stdout
    );
    let (hook_id, hook_name) = template_hook(&sim);
    assert!(
        first.stdout.contains(&format!(
            "+ hooks {hook_name:?} (copy of template hooks/{hook_id})"
        )),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("Plan: 1 organization to create, "),
        "{}",
        first.stdout
    );
    assert_eq!(writes(&sim), before, "plan wrote to the vendor");
    assert!(sim.org_ids("Nordics").is_empty());

    // Applied: nothing left to do.
    let applied = orgops(&["apply", "-f", &path, "--rate-limit", "200"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let after_apply = writes(&sim);
    let clean = plan(path.clone()).await;
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.ends_with("No changes.\n"), "{}", clean.stdout);

    // Drift: a copy renamed by hand shows as one field to update; the template losing a hook
    // shows as a prune only when the spec asks for pruning.
    let nordics = sim.org_id("Nordics").unwrap();
    let copy = sim
        .objects("hooks", nordics)
        .into_iter()
        .find(|h| h["name"].as_str() == Some(hook_name.as_str()))
        .expect("the hook was copied");
    let copy_id = copy["id"].as_u64().unwrap();
    sim.with_db(|db| db.hand_patch("hooks", copy_id, &serde_json::json!({"name": "renamed"})))
        .unwrap();
    let drifted = plan(path.clone()).await;
    assert_eq!(drifted.code, 2, "{}\n{}", drifted.stdout, drifted.stderr);
    assert!(
        drifted
            .stdout
            .contains(&format!("~ hooks/{copy_id} \"renamed\": name")),
        "{}",
        drifted.stdout
    );
    assert!(
        drifted.stdout.ends_with("Plan: 1 copy to update.\n"),
        "{}",
        drifted.stdout
    );
    let template = sim.org_id(orgops::simulator::rossum::TEMPLATE_ORG).unwrap();
    sim.with_db(|db| db.hand_remove("hooks", hook_id)).unwrap();
    let kept = plan(path.clone()).await;
    assert!(!kept.stdout.contains("- hooks/"), "{}", kept.stdout);
    let pruning = manifest.replace(
        "template: {displayName: Template org}",
        "template: {displayName: Template org, prune: true}",
    );
    write(dir.path(), "org.yaml", &pruning);
    let prune = plan(path.clone()).await;
    assert_eq!(prune.code, 2, "{}\n{}", prune.stdout, prune.stderr);
    assert!(
        prune.stdout.contains(&format!(
            "- hooks/{copy_id} \"renamed\" (prune: its template object is gone)"
        )),
        "{}",
        prune.stdout
    );
    assert!(
        prune.stdout.ends_with("Plan: 1 copy to prune.\n"),
        "{}",
        prune.stdout
    );
    assert_eq!(writes(&sim), after_apply, "plan wrote to the vendor");
    assert!(
        sim.objects("hooks", template)
            .iter()
            .all(|h| h["id"] != hook_id)
    );

    // Applied with prune: the copy whose template object is gone is deleted, and only it.
    let hooks_before = sim.objects("hooks", nordics).len();
    let pruned = orgops(&["apply", "-f", &path, "--rate-limit", "200"]).await;
    assert_eq!(pruned.code, 0, "{}\n{}", pruned.stdout, pruned.stderr);
    let hooks_after = sim.objects("hooks", nordics);
    assert_eq!(hooks_after.len(), hooks_before - 1);
    assert!(hooks_after.iter().all(|h| h["id"] != copy_id));
    let clean = plan(path.clone()).await;
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);

    // A template that lists no hooks at all would prune every copy: refused, and said so.
    for h in sim.objects("hooks", template) {
        let id = h["id"].as_u64().unwrap();
        sim.with_db(|db| db.hand_remove("hooks", id)).unwrap();
    }
    let emptied = plan(path.clone()).await;
    assert!(
        emptied
            .stdout
            .contains("! hooks/* cannot be copied: not pruned: the template lists no hooks now"),
        "{}",
        emptied.stdout
    );
    let kept_hooks = sim.objects("hooks", nordics).len();
    let refused = orgops(&["apply", "-f", &path, "--rate-limit", "200"]).await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert_eq!(sim.objects("hooks", nordics).len(), kept_hooks);

    // A plan that cannot read the vendor is an error, not "no changes".
    write(dir.path(), "secret.yaml", &secret("wrong-password"));
    let broken = plan(path).await;
    assert_eq!(broken.code, 1, "{}\n{}", broken.stdout, broken.stderr);
    assert!(
        broken.stdout.contains("error: CredentialsInvalid"),
        "{}",
        broken.stdout
    );
    assert!(!broken.stdout.contains("wrong-password"));
}
