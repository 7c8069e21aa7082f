//! Conformance of the in-repo test API server, driven by kube-rs and by kubectl. With
//! `ORGOPS_E2E_KUBECONFIG` set, the same tests run against that real cluster.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{
    Api, DeleteParams, GetParams, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
#[allow(deprecated)]
use kube::runtime::metadata_watcher;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use orgops::api::{Organization, OrganizationStatus};
use serde_json::{Value, json};
use support::cluster::{Cluster, stderr, stdout};

fn org(name: &str) -> Organization {
    serde_json::from_value(json!({
        "apiVersion": "orgops.io/v1alpha1", "kind": "Organization",
        "metadata": {"name": name, "labels": {"team": "platform"}},
        "spec": {"vendor": "rossum", "displayName": name, "connectionRef": {"name": "rossum"}}
    }))
    .unwrap()
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(r) => *r,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn setup(prefix: &str) -> (Cluster, String, Api<Organization>) {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace(prefix).await;
    let orgs = Api::namespaced(c.client.clone(), &ns);
    (c, ns, orgs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_update_delete_with_the_real_error_codes() {
    let (c, ns, orgs) = setup("crud").await;
    let pp = PostParams::default();
    let created = orgs.create(&pp, &org("a")).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    // Schema defaults were applied.
    assert_eq!(
        created.spec.deletion_policy,
        orgops::api::DeletionPolicy::Orphan
    );

    let dup = api_error(orgs.create(&pp, &org("a")).await.unwrap_err());
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let mut named = org("generated");
    named.metadata.name = None;
    named.metadata.generate_name = Some("gen-".into());
    let generated = orgs.create(&pp, &named).await.unwrap();
    assert!(generated.name_any().starts_with("gen-") && generated.name_any().len() > 4);

    // Optimistic concurrency: a write based on an old resourceVersion is a 409 Conflict.
    let mut stale = created.clone();
    let mut fresh = orgs.get("a").await.unwrap();
    fresh.spec.display_name = "first writer".into();
    orgs.replace("a", &pp, &fresh).await.unwrap();
    stale.spec.display_name = "second writer".into();
    let conflict = api_error(orgs.replace("a", &pp, &stale).await.unwrap_err());
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));

    // Selectors, limit/continue.
    for i in 0..5 {
        let mut o = org(&format!("page-{i}"));
        o.metadata.labels = Some(BTreeMap::from([("team".into(), "other".into())]));
        orgs.create(&pp, &o).await.unwrap();
    }
    let platform = orgs
        .list(&ListParams::default().labels("team=platform"))
        .await
        .unwrap();
    assert_eq!(platform.items.len(), 2);
    let by_name = orgs
        .list(&ListParams::default().fields("metadata.name=a"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("team=other").limit(2);
    loop {
        let page = orgs.list(&lp).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|o| o.name_any()));
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);

    let missing = api_error(orgs.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    orgs.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(orgs.get("a").await.unwrap_err()).code, 404);
    let _ = ns;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_and_generation() {
    let (_c, _ns, orgs) = setup("status").await;
    orgs.create(&PostParams::default(), &org("s"))
        .await
        .unwrap();
    let status = json!({"status": {"phase": "Ready", "externalId": "42"}});
    let after_status = orgs
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    assert_eq!(
        after_status.status.as_ref().unwrap().external_id.as_deref(),
        Some("42")
    );

    // A write to the main resource ignores status.
    let main = json!({"spec": {"displayName": "renamed"}, "status": {"externalId": "overwritten"}});
    let after_spec = orgs
        .patch("s", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(
        after_spec.status.as_ref().unwrap().external_id.as_deref(),
        Some("42")
    );

    // Metadata-only changes do not bump generation.
    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    assert_eq!(
        orgs.patch("s", &PatchParams::default(), &Patch::Merge(&labels))
            .await
            .unwrap()
            .metadata
            .generation,
        Some(2)
    );

    // Server-side apply of status, as the operator writes it.
    let applied = json!({"apiVersion": "orgops.io/v1alpha1", "kind": "Organization", "status": {"phase": "Degraded"}});
    let ssa = orgs
        .patch_status(
            "s",
            &PatchParams::apply("orgops").force(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(
        ssa.status.unwrap().phase,
        Some(orgops::api::OrgPhase::Degraded)
    );

    // JSON patch.
    let jp: json_patch::Patch = serde_json::from_value(
        json!([{"op": "replace", "path": "/spec/displayName", "value": "jp"}]),
    )
    .unwrap();
    let patched = orgs
        .patch("s", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.spec.display_name, "jp");

    // A no-op write keeps the resourceVersion.
    let same = orgs
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"displayName": "jp"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        patched.metadata.resource_version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_rejected_with_field_paths() {
    let (_c, _ns, orgs) = setup("invalid").await;
    let mut bad = serde_json::to_value(org("bad")).unwrap();
    bad["spec"]["vendor"] = json!("rossom");
    bad["spec"]["syncInterval"] = json!("soon");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        orgs.clone().into_client(),
        &_ns,
        &kube::api::ApiResource::erase::<Organization>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(bad).unwrap();
    let e = api_error(raw.create(&PostParams::default(), &obj).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.contains("spec.vendor"), "{}", e.message);
    assert!(e.message.contains("spec.syncInterval"), "{}", e.message);

    orgs.create(&PostParams::default(), &org("good"))
        .await
        .unwrap();
    let change = json!({"spec": {"vendor": "dataloop"}});
    let e = api_error(
        orgs.patch("good", &PatchParams::default(), &Patch::Merge(&change))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(e.message.contains("vendor is immutable"), "{}", e.message);

    let both = json!({"spec": {"template": {"externalId": "1", "displayName": "T"}}});
    let e = api_error(
        orgs.patch("good", &PatchParams::default(), &Patch::Merge(&both))
            .await
            .unwrap_err(),
    );
    assert!(
        e.message
            .contains("exactly one of externalId or displayName"),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_until_removed() {
    let (_c, _ns, orgs) = setup("final").await;
    let mut o = org("f");
    o.metadata.finalizers = Some(vec!["orgops.io/cleanup".into()]);
    orgs.create(&PostParams::default(), &o).await.unwrap();
    orgs.delete("f", &DeleteParams::default()).await.unwrap();
    let deleting = orgs.get("f").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let add = json!({"metadata": {"finalizers": ["orgops.io/cleanup", "other/new"]}});
    assert_eq!(
        api_error(
            orgs.patch("f", &PatchParams::default(), &Patch::Merge(&add))
                .await
                .unwrap_err()
        )
        .code,
        422
    );
    let remove = json!({"metadata": {"finalizers": null}});
    orgs.patch("f", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    assert_eq!(api_error(orgs.get("f").await.unwrap_err()).code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_terminates_and_goes_once_its_finalizers_are_done() {
    let (c, ns, orgs) = setup("term").await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.client.clone());
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), &ns);
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "plain"}, "stringData": {"k": "v"}}))
            .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut o = org("held");
    o.metadata.finalizers = Some(vec!["orgops.io/cleanup".into()]);
    orgs.create(&PostParams::default(), &o).await.unwrap();

    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    // Terminating while something holds a finalizer; the rest is deleted.
    let terminating = eventually(async || {
        let n = namespaces.get(&ns).await?;
        let phase = n.status.as_ref().and_then(|s| s.phase.clone());
        let secret_gone = secrets.get_opt("plain").await?.is_none();
        if phase.as_deref() == Some("Terminating") && secret_gone {
            Ok(n)
        } else {
            Err(kube::Error::Api(Box::new(kube::core::Status::failure(
                "not yet", "NotYet",
            ))))
        }
    })
    .await;
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let held = eventually(async || {
        let o = orgs.get("held").await?;
        if o.metadata.deletion_timestamp.is_some() {
            Ok(o)
        } else {
            Err(kube::Error::Api(Box::new(kube::core::Status::failure(
                "not yet", "NotYet",
            ))))
        }
    })
    .await;
    // Nothing new may be created in it.
    let refused = api_error(
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 403, "{refused:?}");
    assert!(refused.message.contains("being terminated"), "{refused:?}");
    // The finalizer goes, then the namespace does.
    let remove = json!({"metadata": {"finalizers": null}});
    orgs.patch(
        &held.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&remove),
    )
    .await
    .unwrap();
    eventually(async || match namespaces.get_opt(&ns).await? {
        None => Ok(()),
        Some(_) => Err(kube::Error::Api(Box::new(kube::core::Status::failure(
            "still there",
            "NotYet",
        )))),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_bookmark_and_expire() {
    let (c, _ns, orgs) = setup("watch").await;
    let first = orgs
        .create(&PostParams::default(), &org("w1"))
        .await
        .unwrap();
    let rv = first.resource_version().unwrap();

    // Resume from a resourceVersion: only later events arrive, in order, then bookmarks.
    let wp = WatchParams::default().timeout(10);
    let mut stream = orgs.watch(&wp, &rv).await.unwrap().boxed();
    orgs.create(&PostParams::default(), &org("w2"))
        .await
        .unwrap();
    orgs.patch(
        "w2",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"displayName": "x"}})),
    )
    .await
    .unwrap();
    orgs.delete("w2", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.name_any())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.name_any())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, vec!["ADDED w2", "MODIFIED w2", "DELETED w2"]);

    // The watcher (list + watch, as the controller uses it) and streaming lists both see objects.
    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut w = watcher(orgs.clone(), config).applied_objects().boxed();
        let o = tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(o.name_any(), "w1");
    }

    if let Some(server) = &c.server {
        // A compacted resourceVersion is 410 Gone, as an ERROR event on the watch.
        server.compact();
        let mut s = orgs
            .watch(&WatchParams::default().timeout(5), &rv)
            .await
            .unwrap()
            .boxed();
        match tokio::time::timeout(Duration::from_secs(5), s.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Error(e) => assert_eq!(e.code, 410),
            other => panic!("expected 410, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_with_finalizer_and_recorder_runs_against_it() {
    let (c, ns, orgs) = setup("ctrl").await;
    let reconciles = Arc::new(AtomicU32::new(0));
    let recorder = Recorder::new(
        c.client.clone(),
        Reporter {
            controller: "conformance".into(),
            instance: None,
        },
    );
    struct Ctx {
        orgs: Api<Organization>,
        recorder: Recorder,
        reconciles: Arc<AtomicU32>,
    }
    let ctx = Arc::new(Ctx {
        orgs: orgs.clone(),
        recorder,
        reconciles: reconciles.clone(),
    });
    async fn reconcile(
        o: Arc<Organization>,
        ctx: Arc<Ctx>,
    ) -> Result<Action, kube::runtime::finalizer::Error<kube::Error>> {
        ctx.reconciles.fetch_add(1, Ordering::SeqCst);
        let api = ctx.orgs.clone();
        finalizer(&api, "orgops.io/cleanup", o, |ev| async {
            match ev {
                Finalizer::Apply(o) => {
                    let status = json!({"status": {"phase": "Ready"}});
                    api.patch_status(
                        &o.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await?;
                    ctx.recorder
                        .publish(
                            &KubeEvent {
                                type_: EventType::Normal,
                                reason: "Reconciled".into(),
                                note: Some("ok".into()),
                                action: "Reconcile".into(),
                                secondary: None,
                            },
                            &o.object_ref(&()),
                        )
                        .await?;
                    Ok(Action::requeue(Duration::from_secs(300)))
                }
                Finalizer::Cleanup(_) => Ok(Action::await_change()),
            }
        })
        .await
    }
    let controller = Controller::new(orgs.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("reconcile error: {e:?}");
            }
        });
    let handle = tokio::spawn(controller);

    orgs.create(&PostParams::default(), &org("c1"))
        .await
        .unwrap();
    let ready = async {
        loop {
            let o = orgs.get("c1").await.unwrap();
            let has_finalizer = o.finalizers().iter().any(|f| f == "orgops.io/cleanup");
            if has_finalizer
                && o.status.as_ref().and_then(|s: &OrganizationStatus| s.phase)
                    == Some(orgops::api::OrgPhase::Ready)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), ready)
        .await
        .expect("reconciled");

    // The recorder's event is there (events.k8s.io/v1).
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.client.clone(), &ns);
    let listed = events.list(&ListParams::default()).await.unwrap();
    assert!(
        listed
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Reconciled"))
    );

    // ... and, as on a real cluster, through core v1 Events, which `kubectl describe` shows.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.client.clone(), &ns);
    let core_events = core.list(&ListParams::default()).await.unwrap();
    assert!(
        core_events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Reconciled")
                && e.involved_object.name.as_deref() == Some("c1"))
    );
    let describe = c.kubectl(&["describe", "org", "c1", "-n", &ns]).await;
    assert!(
        stdout(&describe).contains("Reconciled"),
        "{}",
        stdout(&describe)
    );

    // Deleting runs cleanup and the finalizer goes away.
    orgs.delete("c1", &DeleteParams::default()).await.unwrap();
    let gone = async {
        while orgs.get_opt("c1").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gone)
        .await
        .expect("finalized");
    assert!(reconciles.load(Ordering::SeqCst) >= 2);
    handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_namespaces_are_served() {
    let c = Cluster::start().await;
    let ns = c.namespace("core").await;
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), &ns);
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"k": "v"}}))
            .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(secrets.get("creds").await.is_ok());
    let wrong_ns: Api<Secret> = Api::namespaced(c.client.clone(), "does-not-exist-ns");
    assert_eq!(
        api_error(
            wrong_ns
                .create(&PostParams::default(), &s)
                .await
                .unwrap_err()
        )
        .code,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_wait_patch_describe_delete() {
    let c = Cluster::start().await;
    c.install_crds().await;
    let ns = c.namespace("kubectl").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("org.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {username: u}\n---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {name: de}\nspec: {vendor: rossum, displayName: DE, connectionRef: {name: rossum}}\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = c.kubectl(&["apply", "-n", &ns, "-f", f]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("organization.orgops.io/de created"),
        "{}",
        stdout(&out)
    );
    let again = c.kubectl(&["apply", "-n", &ns, "-f", f]).await;
    assert!(
        stdout(&again).contains("organization.orgops.io/de unchanged"),
        "{}",
        stdout(&again)
    );

    let get = c.kubectl(&["get", "orgs", "-n", &ns]).await;
    let text = stdout(&get);
    let header = text.lines().next().unwrap_or("");
    for col in [
        "NAME",
        "VENDOR",
        "EXTERNAL-ID",
        "PHASE",
        "PROGRESS",
        "READY",
        "AGE",
    ] {
        assert!(header.contains(col), "{text}");
    }
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("de ") && l.contains("rossum")),
        "{text}"
    );

    // wait for Ready while the status is set.
    let kubeconfig = c.kubeconfig.clone();
    let ns2 = ns.clone();
    let waiter = tokio::spawn(async move {
        tokio::process::Command::new(support::cluster::kubectl_path())
            .args([
                "wait",
                "--for=condition=Ready",
                "org/de",
                "-n",
                &ns2,
                "--timeout=20s",
            ])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = r#"{"status":{"phase":"Ready","conditions":[{"type":"Ready","status":"True","reason":"Ready","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let p = c
        .kubectl(&[
            "patch",
            "org",
            "de",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ])
        .await;
    assert!(p.status.success(), "{}", stderr(&p));
    let waited = waiter.await.unwrap();
    assert!(waited.status.success(), "{}", stderr(&waited));

    let describe = c.kubectl(&["describe", "org", "de", "-n", &ns]).await;
    assert!(
        stdout(&describe).contains("Display Name:") && stdout(&describe).contains("DE"),
        "{}",
        stdout(&describe)
    );

    let bad = c
        .kubectl(&[
            "patch",
            "org",
            "de",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"vendor":"nope"}}"#,
        ])
        .await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("spec.vendor"), "{}", stderr(&bad));

    let del = c
        .kubectl(&["delete", "org", "de", "-n", &ns, "--timeout=20s"])
        .await;
    assert!(del.status.success(), "{}", stderr(&del));
    let after = c.kubectl(&["get", "org", "de", "-n", &ns]).await;
    assert!(stderr(&after).contains("NotFound"), "{}", stderr(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_rules_are_enforced_for_the_operator_identity() {
    let (c, ns, _orgs) = setup("rbac").await;
    let Some(server) = &c.server else {
        eprintln!(
            "skipped on a real cluster: RBAC enforcement here is a feature of the in-repo server"
        );
        return;
    };
    server.enforce_rbac(
        "operator-token",
        "system:serviceaccount:orgops:orgops",
        &json!([
            {"apiGroups": ["orgops.io"], "resources": ["organizations"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["orgops.io"], "resources": ["organizations/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["creds"]},
        ]),
    );
    let admin_orgs: Api<Organization> = Api::namespaced(c.client.clone(), &ns);
    admin_orgs
        .create(&PostParams::default(), &org("r"))
        .await
        .unwrap();

    let kubeconfig = server.kubeconfig_for("operator", "operator-token");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let op = kube::Client::try_from(config).unwrap();
    let orgs: Api<Organization> = Api::namespaced(op.clone(), &ns);
    assert_eq!(
        orgs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    orgs.patch_status(
        "r",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Ready"}})),
    )
    .await
    .unwrap();
    let denied = api_error(
        orgs.create(&PostParams::default(), &org("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    assert!(
        denied
            .message
            .contains("cannot create resource \"organizations\" in API group \"orgops.io\""),
        "{}",
        denied.message
    );
    let secrets: Api<Secret> = Api::namespaced(op, &ns);
    let other = api_error(secrets.get("other").await.unwrap_err());
    assert_eq!(other.code, 403, "resourceNames limit the grant");
}

/// A raw request, as kube-rs builds it, and the JSON the server answered.
async fn raw(c: &Cluster, request: axum::http::Request<Vec<u8>>) -> Value {
    serde_json::from_str(&c.client.request_text(request).await.unwrap()).unwrap()
}

/// Asserts `object` is a PartialObjectMetadata: metadata only, no Secret data.
fn assert_metadata_only(object: &Value) {
    assert_eq!(object["kind"], "PartialObjectMetadata", "{object}");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1", "{object}");
    let keys: Vec<&String> = object.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata"], "{object}");
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_lists_gets_and_watches_carry_no_secret_data() {
    let c = Cluster::start().await;
    let ns = c.namespace("meta").await;
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), &ns);
    let pp = PostParams::default();
    for name in ["before-1", "before-2"] {
        secrets.create(&pp, &secret(name)).await.unwrap();
    }

    // The full object carries the data (stringData is merged into data on write).
    let full = secrets.get("before-1").await.unwrap();
    assert_eq!(full.data.unwrap()["password"].0, b"hunter2");
    assert!(full.string_data.is_none());

    // Api::list_metadata, typed, then the same request raw.
    let listed = secrets.list_metadata(&ListParams::default()).await.unwrap();
    let names: Vec<String> = listed.items.iter().map(|o| o.name_any()).collect();
    assert_eq!(names, ["before-1", "before-2"]);
    let url = Secret::url_path(&(), Some(&ns));
    let list = raw(
        &c,
        kube::core::Request::new(&url)
            .list_metadata(&ListParams::default())
            .unwrap(),
    )
    .await;
    assert_eq!(list["kind"], "PartialObjectMetadataList", "{list}");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    let list_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    items.iter().for_each(assert_metadata_only);
    // Pages keep the metadata form.
    let page = raw(
        &c,
        kube::core::Request::new(&url)
            .list_metadata(&ListParams::default().limit(1))
            .unwrap(),
    )
    .await;
    assert_eq!(page["kind"], "PartialObjectMetadataList");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(
        page["metadata"]["continue"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{page}"
    );
    let one = raw(
        &c,
        kube::core::Request::new(&url)
            .get_metadata("before-1", &GetParams::default())
            .unwrap(),
    )
    .await;
    assert_metadata_only(&one);
    assert_eq!(one["metadata"]["name"], "before-1");

    // A raw metadata watch from the list's resourceVersion, and the metadata_watcher.
    let mut events = c
        .client
        .request_events::<Value>(
            kube::core::Request::new(&url)
                .watch_metadata(&WatchParams::default().timeout(20), &list_rv)
                .unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    // kube's metadata_watcher (deprecated in kube 5) and its replacement, a watcher over
    // Api<PartialObjectMeta<K>>, send the same metadata-only requests.
    #[allow(deprecated)]
    let legacy = metadata_watcher(secrets.clone(), watcher::Config::default()).boxed();
    let metas: Api<PartialObjectMeta<Secret>> = Api::namespaced(c.client.clone(), &ns);
    let mut watchers = [
        legacy,
        watcher(metas.clone(), watcher::Config::default()).boxed(),
    ];
    for w in &mut watchers {
        let mut initial = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), w.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                watcher::Event::InitApply(o) => initial.push(o.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(initial, ["before-1", "before-2"]);
    }
    assert_eq!(metas.get("before-2").await.unwrap().name_any(), "before-2");

    secrets.create(&pp, &secret("during")).await.unwrap();
    let change =
        json!({"metadata": {"labels": {"rotated": "yes"}}, "stringData": {"password": "hunter3"}});
    secrets
        .patch("during", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    secrets
        .delete("during", &DeleteParams::default())
        .await
        .unwrap();

    for w in &mut watchers {
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let (what, o) = match tokio::time::timeout(Duration::from_secs(10), w.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                watcher::Event::Apply(o) => ("apply", o),
                watcher::Event::Delete(o) => ("delete", o),
                other => panic!("unexpected {other:?}"),
            };
            let labelled = o.labels().contains_key("rotated");
            seen.push(format!("{what} {} labelled={labelled}", o.name_any()));
        }
        assert_eq!(
            seen,
            [
                "apply during labelled=false",
                "apply during labelled=true",
                "delete during labelled=true"
            ]
        );
    }

    let mut raw_seen = Vec::new();
    while raw_seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let (what, object) = match event {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        };
        assert_metadata_only(&object);
        raw_seen.push(format!("{what} {}", object["metadata"]["name"]));
    }
    assert_eq!(
        raw_seen,
        [
            "ADDED \"during\"",
            "MODIFIED \"during\"",
            "DELETED \"during\""
        ]
    );
}

/// Creates the ServiceAccount `ns/name` and a token for it (TokenRequest); returns the token
/// and the ServiceAccount's uid.
async fn service_account_token(c: &Cluster, ns: &str, name: &str) -> (String, String) {
    let accounts: Api<ServiceAccount> = Api::namespaced(c.client.clone(), ns);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let created = accounts.create(&PostParams::default(), &sa).await.unwrap();
    let request: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": []}})).unwrap();
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap();
    (
        issued.status.unwrap().token.unwrap(),
        created.metadata.uid.unwrap(),
    )
}

/// Creates a namespaced or cluster-scoped RBAC object (or any object) from JSON.
async fn create<K>(api: &Api<K>, object: Value) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap()
}

/// `f` until it succeeds: RBAC changes take a moment to reach a real apiserver's authorizer.
async fn eventually<T>(f: impl AsyncFn() -> Result<T, kube::Error>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Ok(t) => return t,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("still failing: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_get_what_their_role_bindings_grant_and_no_more() {
    let c = Cluster::start().await;
    let home = c.namespace("rbac-home").await;
    let other = c.namespace("rbac-other").await;
    for ns in [&home, &other] {
        Api::<Secret>::namespaced(c.client.clone(), ns)
            .create(&PostParams::default(), &secret("s"))
            .await
            .unwrap();
    }
    create(
        &Api::<Role>::namespaced(c.client.clone(), &home),
        json!({"metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    create(
        &Api::<RoleBinding>::namespaced(c.client.clone(), &home),
        json!({"metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": home}]}),
    )
    .await;
    let (token, _) = service_account_token(&c, &home, "reader").await;
    let sa = c.client_with_token(&token).await;
    let user = format!("system:serviceaccount:{home}:reader");

    let mine: Api<Secret> = Api::namespaced(sa.clone(), &home);
    eventually(async || mine.get("s").await).await;
    assert_eq!(
        mine.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let write = api_error(
        mine.create(&PostParams::default(), &secret("new"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        write.message,
        format!(
            "secrets is forbidden: User \"{user}\" cannot create resource \"secrets\" in API group \"\" in the namespace \"{home}\""
        )
    );

    // The Role binds in its own namespace only.
    let theirs: Api<Secret> = Api::namespaced(sa.clone(), &other);
    let e = api_error(theirs.get("s").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        format!(
            "secrets \"s\" is forbidden: User \"{user}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{other}\""
        )
    );
    // Listing or watching across namespaces needs a cluster-wide grant.
    let everywhere: Api<Secret> = Api::all(sa.clone());
    let e = api_error(everywhere.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        e.message,
        format!(
            "secrets is forbidden: User \"{user}\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
        )
    );
    let e = api_error(
        everywhere
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .err()
            .unwrap(),
    );
    assert_eq!(e.code, 403);

    // A token nobody issued is 401.
    let nobody = c.client_with_token("not-a-token").await;
    let e = api_error(
        Api::<Secret>::namespaced(nobody, &home)
            .get("s")
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));

    // kubectl auth can-i, impersonating the ServiceAccount (a SelfSubjectAccessReview).
    let yes = c
        .kubectl(&[
            "auth", "can-i", "get", "secrets", "-n", &home, "--as", &user,
        ])
        .await;
    assert!(yes.status.success(), "{}", stderr(&yes));
    assert_eq!(stdout(&yes).trim(), "yes");
    let no = c
        .kubectl(&[
            "auth", "can-i", "get", "secrets", "-n", &other, "--as", &user,
        ])
        .await;
    assert_eq!(no.status.code(), Some(1), "{}", stderr(&no));
    assert_eq!(stdout(&no).trim(), "no");
}

fn non_resource_review(user: &str, path: &str) -> SubjectAccessReview {
    serde_json::from_value(
        json!({"spec": {"user": user, "nonResourceAttributes": {"path": path, "verb": "get"}}}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_reviews_follow_cluster_roles_bound_to_users() {
    let c = Cluster::start().await;
    // Cluster-scoped names are made unique (and removed at the end) through a fresh namespace.
    let ns = c.namespace("sar").await;
    let role = format!("{ns}-metrics-reader");
    let user = format!("{ns}-prometheus");
    let roles: Api<ClusterRole> = Api::all(c.client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(c.client.clone());
    create(
        &roles,
        json!({"metadata": {"name": role}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
    )
    .await;
    create(
        &bindings,
        json!({"metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    )
    .await;
    let reviews: Api<SubjectAccessReview> = Api::all(c.client.clone());
    let pp = PostParams::default();
    let allowed = eventually(async || {
        let r = reviews
            .create(&pp, &non_resource_review(&user, "/metrics"))
            .await?;
        let status = r.status.unwrap();
        match status.allowed {
            true => Ok(status),
            false => Err(kube::Error::LinesCodecMaxLineLengthExceeded),
        }
    })
    .await;
    assert_eq!(
        allowed.reason.as_deref(),
        Some(
            format!(
                "RBAC: allowed by ClusterRoleBinding \"{role}\" of ClusterRole \"{role}\" to User \"{user}\""
            )
            .as_str()
        )
    );
    for (who, path) in [
        (format!("{ns}-someone-else"), "/metrics"),
        (user.clone(), "/metrics/extra"),
        (user.clone(), "/debug/pprof"),
    ] {
        let r = reviews
            .create(&pp, &non_resource_review(&who, path))
            .await
            .unwrap();
        assert!(!r.status.unwrap().allowed, "{who} {path}");
    }
    // A resource review of the same user: the ClusterRole grants no resources.
    let secrets: SubjectAccessReview = serde_json::from_value(json!({"spec": {"user": user,
        "resourceAttributes": {"namespace": ns, "verb": "get", "resource": "secrets"}}}))
    .unwrap();
    assert!(
        !reviews
            .create(&pp, &secrets)
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    );
    // A review needs a subject.
    let nobody: SubjectAccessReview = serde_json::from_value(
        json!({"spec": {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}}),
    )
    .unwrap();
    let e = api_error(reviews.create(&pp, &nobody).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));

    bindings
        .delete(&role, &DeleteParams::default())
        .await
        .unwrap();
    roles.delete(&role, &DeleteParams::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_reviews_authenticate_and_reviewing_needs_rbac_too() {
    let c = Cluster::start().await;
    let ns = c.namespace("authn").await;
    let (token, uid) = service_account_token(&c, &ns, "metrics").await;
    let user = format!("system:serviceaccount:{ns}:metrics");
    let review = |token: &str| -> TokenReview {
        serde_json::from_value(json!({"spec": {"token": token}})).unwrap()
    };
    let pp = PostParams::default();
    let admin: Api<TokenReview> = Api::all(c.client.clone());
    let status = admin
        .create(&pp, &review(&token))
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(status.authenticated.unwrap());
    let info = status.user.unwrap();
    assert_eq!(info.username.as_deref(), Some(user.as_str()));
    assert_eq!(info.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(
        info.groups.unwrap(),
        [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".to_string()
        ]
    );
    let garbage = admin
        .create(&pp, &review("garbage.not.a-token"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(garbage.authenticated, Some(false));
    assert!(
        garbage.error.is_some_and(|e| !e.is_empty()),
        "an unknown token says why"
    );

    // Creating reviews is itself authorized: a ServiceAccount (like an operator serving
    // authenticated metrics) may not until it is bound to system:auth-delegator.
    let sa = c.client_with_token(&token).await;
    let as_sa: Api<TokenReview> = Api::all(sa.clone());
    let e = api_error(as_sa.create(&pp, &review(&token)).await.unwrap_err());
    assert_eq!(
        e.message,
        format!(
            "tokenreviews.authentication.k8s.io is forbidden: User \"{user}\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
        )
    );
    let sars: Api<SubjectAccessReview> = Api::all(sa.clone());
    let e = api_error(
        sars.create(&pp, &non_resource_review("someone", "/metrics"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);

    let bindings: Api<ClusterRoleBinding> = Api::all(c.client.clone());
    let binding = format!("{ns}-auth-delegator");
    create(
        &bindings,
        json!({"metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [{"kind": "ServiceAccount", "name": "metrics", "namespace": ns}]}),
    )
    .await;
    let own = eventually(async || as_sa.create(&pp, &review(&token)).await).await;
    assert_eq!(
        own.status.unwrap().user.unwrap().username.as_deref(),
        Some(user.as_str())
    );
    let answered = eventually(async || {
        sars.create(&pp, &non_resource_review("someone", "/metrics"))
            .await
    })
    .await;
    assert!(!answered.status.unwrap().allowed);
    bindings
        .delete(&binding, &DeleteParams::default())
        .await
        .unwrap();
}
