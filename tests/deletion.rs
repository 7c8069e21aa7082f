//! End to end: `kubectl delete namespace` on the examples, with every combination of
//! deletionPolicy, completes within a minute, does what each policy says where it still can,
//! and says in an Event what it could not.

mod support;

use std::time::Instant;

use support::cluster::{Cluster, stderr, stdout};
use support::*;

/// The examples (deploy/examples), moved into `ns`, their cluster connection named `conn` with
/// its Secret in `ops`, pointed at the simulator, with the given policies.
fn examples(ns: &str, ops: &str, conn: &str, endpoint: &str, org: &str, member: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut docs = Vec::new();
    // The Rossum examples: this test runs one Rossum simulator.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let p = p.to_string_lossy();
            !["openlattice", "dataloop", "renderedai"]
                .iter()
                .any(|other| p.contains(other))
        })
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in text.split("\n---\n") {
            if doc.contains("kind: Namespace") {
                continue;
            }
            let doc = doc
                .replace("namespace: tenants", &format!("namespace: {ns}"))
                .replace(
                    "allowedNamespaces: [tenants]",
                    &format!("allowedNamespaces: [{ns}]"),
                )
                .replace("namespace: orgops-system", &format!("namespace: {ops}"))
                .replace("name: rossum-org-group-admin", "name: group-admin")
                .replace("rossum-org-group", conn)
                .replace(
                    "# endpoint: https://acme.rossum.app/api/v1",
                    &format!("endpoint: \"{endpoint}\""),
                )
                .replace(
                    "username: platform-admin@example.com",
                    &format!("username: {ADMIN}"),
                )
                .replace("password: REPLACE-ME", &format!("password: {PASSWORD}"))
                .replace("createKey: REPLACE-ME", &format!("createKey: {CREATE_KEY}"))
                .replace("george@example.com", &format!("george-{ns}@example.com"))
                .replace(
                    "@example.com\n        fullName",
                    &format!("-{ns}@example.com\n        fullName"),
                );
            let doc: String = doc
                .lines()
                .filter(|l| !l.trim_start().starts_with("deletionPolicy:"))
                .map(|l| format!("{l}\n"))
                .collect();
            let doc = if doc.contains("kind: Organization\n") {
                format!("{doc}  deletionPolicy: {org}\n")
            } else if doc.contains("kind: OrgMembership") {
                format!("{doc}  deletionPolicy: {member}\n")
            } else {
                doc
            };
            docs.push(doc);
        }
    }
    docs.join("\n---\n")
}

/// The examples with their cluster connection replaced by a VendorConnection (and its Secret)
/// in the tenant namespace itself.
fn own_connection(text: &str, ns: &str, ops: &str, conn: &str) -> String {
    text.replace(
        &format!("namespace: {ops}\ntype: Opaque"),
        &format!("namespace: {ns}\ntype: Opaque"),
    )
    .replace(
        "kind: ClusterVendorConnection\nmetadata:\n",
        &format!("kind: VendorConnection\nmetadata:\n  namespace: {ns}\n"),
    )
    .replace(&format!("    namespace: {ops}\n"), "")
    .replace(&format!("  allowedNamespaces: [{ns}]"), "")
    .replace(
        &format!("    kind: ClusterVendorConnection\n    name: {conn}"),
        &format!("    kind: VendorConnection\n    name: {conn}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_examples_namespace_completes_with_every_deletion_policy() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ops = c.namespace("ops").await;
    let sim = simulator("").await;
    let combos = [
        ("Orphan", "Delete"),
        ("Orphan", "Orphan"),
        ("Delete", "Delete"),
        ("Delete", "Orphan"),
    ];
    let mut namespaces = Vec::new();
    for _ in combos {
        namespaces.push(c.namespace("examples").await);
    }
    // And a tenant's own VendorConnection, whose Secret goes with the namespace too.
    let own = c.namespace("own").await;
    namespaces.push(own.clone());
    let watched: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let _op = support::operator::start(
        &c,
        &watched,
        &ops,
        "replica-0",
        15,
        &["--allowed-endpoints", "rossum=http://127.0.0.1:*"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    for (ns, (org, member)) in namespaces
        .iter()
        .zip(combos.iter().chain([&("Delete", "Delete")]))
    {
        let file = dir.path().join(format!("{ns}.yaml"));
        let conn = format!("rossum-{ns}");
        let mut text = examples(ns, &ops, &conn, &sim.base_url, org, member);
        if *ns == own {
            text = own_connection(&text, ns, &ops, &conn);
        }
        std::fs::write(&file, text).unwrap();
        let out = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for ns in &namespaces {
        for what in ["org", "orgm"] {
            let out = c
                .kubectl(&[
                    "wait",
                    "--for=condition=Ready",
                    what,
                    "--all",
                    "-n",
                    ns,
                    "--timeout=90s",
                ])
                .await;
            assert!(
                out.status.success(),
                "{ns} {what}: {}\n{}",
                stderr(&out),
                stdout(&c.kubectl(&["get", what, "-n", ns, "-o", "yaml"]).await)
            );
        }
    }
    let active_george = |ns: &str| {
        let username = format!("george-{ns}@example.com");
        let user = sim
            .all_objects("users")
            .into_iter()
            .find(|u| u["username"] == username.as_str())
            .map(|u| (u["id"].as_u64().unwrap_or(0), u["is_active"] == true));
        let memberships = sim
            .all_objects("memberships")
            .iter()
            .filter(|x| {
                user.is_some_and(|(id, _)| {
                    x["user"]
                        .as_str()
                        .is_some_and(|u| u.ends_with(&format!("/{id}")))
                })
            })
            .count();
        (user.is_some_and(|(_, active)| active), memberships)
    };
    for ns in &namespaces {
        assert_eq!(active_george(ns), (true, 1), "{ns}: George in two orgs");
    }

    let start = Instant::now();
    for ns in &namespaces {
        let out = c
            .kubectl(&["delete", "namespace", ns, "--wait=false"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for ns in &namespaces {
        let out = c
            .kubectl(&[
                "wait",
                "--for=delete",
                &format!("namespace/{ns}"),
                "--timeout=60s",
            ])
            .await;
        assert!(
            out.status.success(),
            "namespace {ns} still there after {:?}: {}\n{}",
            start.elapsed(),
            stderr(&out),
            stdout(
                &c.kubectl(&["get", "org,orgm", "-n", ns, "-o", "yaml"])
                    .await
            )
        );
    }
    println!(
        "{} namespaces deleted in {:?}",
        namespaces.len(),
        start.elapsed()
    );

    for (ns, (org, member)) in namespaces
        .iter()
        .zip(combos.iter().chain([&("Delete", "Delete")]))
    {
        let (org, member) = (*org, *member);
        // Both organizations stay at Rossum (it cannot delete them)…
        for name in ["German department", "French department"] {
            let n = sim.org_ids(name).len();
            assert!(n >= 1, "{name} is gone");
        }
        // …George's access went exactly where the OrgMembership policy said Delete.
        let (active, memberships) = active_george(ns);
        match member {
            "Delete" => assert_eq!((active, memberships), (false, 0), "{ns}: {org}/{member}"),
            _ => assert_eq!((active, memberships), (true, 1), "{ns}: {org}/{member}"),
        }
        // What Delete could not do is said, on the cluster connection that outlives the namespace.
        let conn = format!("rossum-{ns}");
        let events = stdout(
            &c.kubectl(&[
                "get",
                "events",
                "-A",
                "--field-selector",
                &format!("involvedObject.name={conn}"),
            ])
            .await,
        );
        if *ns == own {
            // A namespace's own connection cannot carry the Event: it goes with the namespace.
        } else if org == "Delete" {
            assert!(events.contains("DeleteUnsupported"), "{ns}: {events}");
        } else {
            assert!(!events.contains("DeleteUnsupported"), "{ns}: {events}");
        }
    }
}
