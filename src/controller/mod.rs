//! `orgops run`: the operator. kube-rs controllers wired to the engine.
//!
//! - [`organization`]: the Organization reconciler and its error policy; [`deletion`]: what
//!   happens when one is deleted.
//! - [`connection`]: the VendorConnection / ClusterVendorConnection reconciler (policy, Secret,
//!   credentials check, account in status).
//! - [`connections`]: the registry of vendor clients, one per connection.
//! - [`membership`]: the OrgMembership reconciler (waits for its Organization to be Ready).
//! - [`context`]: state shared by reconciles (clients, recorder, metrics, backoff).
//! - [`sink`]: the engine's state written to the resource (create intent, id, progress).
//! - [`metrics`], [`http`]: Prometheus metrics and health endpoints; [`metrics_auth`] and
//!   [`tls`]: optional authenticated metrics over HTTPS.
//! - [`leader`]: leader election on a Lease.
//! - [`access_guard`]: per-namespace mode keeps the operator's RoleBinding until a deleted
//!   namespace holds no orgops finalizer.
//! - [`error`]: controller errors.

pub mod access_guard;
pub mod connection;
pub mod connections;
pub mod context;
pub mod deletion;
pub mod error;
pub mod finalizers;
pub mod http;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod metrics_auth;
pub mod organization;
pub mod sink;
pub mod templates;
pub mod tls;
pub mod watched;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

pub use error::Error;

use crate::api::{
    ClusterVendorConnection, ConnectionKind, OrgMembership, Organization, VendorConnection,
};
use crate::engine::EngineOptions;
use crate::vendors::Endpoints;
use crate::vendors::connection::ConnectionPolicy;

/// Options of `orgops run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Allowed endpoints, default endpoints and rates of connections.
    pub policy: ConnectionPolicy,
    /// How often connections are checked at the vendor.
    pub connection_check_interval: std::time::Duration,
    /// The operator's own namespace: with `namespaces` set, ClusterVendorConnection Secrets
    /// are also watched there.
    pub own_namespace: Option<String>,
    /// Vendor requests in flight per reconcile.
    pub copy_concurrency: usize,
    /// Drift re-check period for Organizations without `spec.syncInterval`.
    pub default_sync_interval: std::time::Duration,
    /// No Organization is re-checked more often, whatever its `spec.syncInterval`.
    pub min_sync_interval: std::time::Duration,
    /// How long usage in status stays before it is read again from the vendor.
    pub usage_interval: std::time::Duration,
    /// Leader election (`None`: this replica always acts).
    pub lease: Option<leader::LeaseConfig>,
    /// Only callers the Kubernetes API authorizes may read `/metrics`.
    pub metrics_auth: bool,
    /// Serve the endpoints over HTTPS with these files.
    pub metrics_tls: Option<tls::TlsFiles>,
    /// The operator's RoleBinding in each watched namespace, guarded by [`access_guard`].
    pub rbac_binding: Option<String>,
    /// Each template in use is read once per this interval, shared by every Organization
    /// copying it, and a change re-syncs them all (zero: each reads its own, on its own sync).
    pub template_interval: std::time::Duration,
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn check_crds(client: &Client) -> Result<(), Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "organizations.orgops.io",
        "orgmemberships.orgops.io",
        "vendorconnections.orgops.io",
        "clustervendorconnections.orgops.io",
    ] {
        match crds.get_opt(name).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Error::MissingCrd(name.into())),
            // Without permission to read CRDs, ask the resource itself.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                let orgs: Api<Organization> = Api::all(client.clone());
                match orgs.list(&kube::api::ListParams::default().limit(1)).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        return Err(Error::MissingCrd(name.into()));
                    }
                    _ => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(client: Client, opts: RunOptions) -> Result<(), Error> {
    check_crds(&client).await?;
    let endpoints = Arc::new(Endpoints::default());
    let engine = EngineOptions {
        concurrency: opts.copy_concurrency.max(1),
        // Create intents and ids live on the resources.
        durable_state: true,
        usage_interval: opts.usage_interval,
        ..EngineOptions::default()
    };
    let ctx = Arc::new(context::Context::new(
        client.clone(),
        endpoints,
        engine,
        opts.policy.clone(),
        context::SyncIntervals {
            default: opts.default_sync_interval,
            min: opts.min_sync_interval,
        },
        opts.connection_check_interval,
        opts.template_interval,
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let bound = http::serve(
        opts.listen,
        http::Health {
            ctx: ctx.clone(),
            ready: ready.clone(),
            auth: opts
                .metrics_auth
                .then(|| Arc::new(metrics_auth::MetricsAuth::new(client.clone()))),
        },
        opts.metrics_tls.as_ref(),
    )
    .await
    .map_err(|e| Error::Setup(format!("cannot listen on {}: {e}", opts.listen)))?;
    tracing::info!(%bound, tls = opts.metrics_tls.is_some(), auth = opts.metrics_auth, "serving /metrics, /healthz, /readyz");
    if opts.metrics_auth && opts.metrics_tls.is_none() {
        tracing::warn!(
            "--metrics-auth without --metrics-tls-cert-file: scrapers send their tokens over plain HTTP"
        );
    }

    // A standby replica is healthy and ready; it only does not reconcile.
    ready.store(true, Ordering::Relaxed);
    let leases = opts.lease.as_ref().map(|l| {
        (
            Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
                client.clone(),
                &l.namespace,
            ),
            l.clone(),
        )
    });
    let mut leading_since = None;
    if let Some((api, lease)) = &leases {
        tracing::info!(lease = %format!("{}/{}", lease.namespace, lease.name), identity = %lease.identity, "waiting for leadership");
        tokio::select! {
            since = leader::acquire(api, lease, &ctx.fence) => leading_since = Some(since),
            _ = shutdown_signal() => return Ok(()),
        }
        tracing::info!("leading");
    } else {
        ctx.fence.valid_forever();
    }
    ctx.metrics.leader.set(1);

    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    let mut controllers: Vec<Task> = Vec::new();
    for scope in &scopes {
        controllers.push(namespaced_connections(
            &client,
            scope,
            &ctx,
            opts.concurrency,
        ));
        controllers.push(organizations(&client, scope, &ctx, opts.concurrency));
        controllers.push(memberships(&client, scope, &ctx, opts.concurrency));
    }
    // Cluster connections' Secrets live where the admin puts them: anywhere when every
    // namespace is watched, else in a watched namespace or the operator's own.
    let mut secret_scopes = scopes.clone();
    if let Some(own) = &opts.own_namespace
        && !secret_scopes.contains(&Some(own.clone()))
        && !secret_scopes.contains(&None)
    {
        secret_scopes.push(Some(own.clone()));
    }
    controllers.push(cluster_connections(
        &client,
        &secret_scopes,
        &ctx,
        opts.concurrency,
    ));
    if let Some(binding) = &opts.rbac_binding
        && !opts.namespaces.is_empty()
    {
        controllers.push(Box::pin(access_guard::run(
            client.clone(),
            opts.namespaces.clone(),
            binding.clone(),
        )));
    }
    // Stopped with the controllers (not by a signal handler of its own, which a SIGTERM sent
    // before the task first ran would miss).
    let fan_out = tokio::spawn(ctx.templates.clone().run(ctx.clone()));
    tracing::info!("orgops controllers running");
    let result = match (&leases, leading_since) {
        (Some((api, lease)), Some(since)) => {
            // The leader loop is polled first, so a process resumed after a freeze stops as
            // soon as this task runs. Reconciles run in tasks of their own (aborted when the
            // controllers are dropped) and may run before it: the fence stops their writes.
            tokio::select! {
                biased;
                lost = leader::keep(api, lease, &ctx.fence, since) => Err(lost),
                _ = futures::future::join_all(controllers) => {
                    ctx.fence.close();
                    leader::release(api, lease).await;
                    Ok(())
                }
            }
        }
        _ => {
            futures::future::join_all(controllers).await;
            Ok(())
        }
    };
    fan_out.abort();
    ctx.metrics.leader.set(0);
    tracing::info!("orgops stopped");
    result
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn api_in<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn watch_config() -> watcher::Config {
    watcher::Config::default().any_semantic()
}

/// Logs what the controller stream yields (errors at debug: each is handled by error_policy).
async fn drain<T, E: std::fmt::Display>(result: Result<T, E>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "controller event");
    }
}

/// Secrets, metadata only: the operator holds no Secret data it did not GET on purpose.
fn secret_changes(
    client: &Client,
    scope: &Option<String>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
{
    let api: Api<PartialObjectMeta<Secret>> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    watcher(api, watch_config()).touched_objects()
}

/// What an Organization reacts to in a connection: its spec and whether it is Ready (not every
/// status write, so that a periodic check does not wake every Organization).
fn connection_predicate<K: kube::Resource>(
    conditions: impl Fn(&K) -> Option<String>,
) -> impl Fn(&K) -> Option<u64> {
    move |c: &K| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.meta().uid.hash(&mut h);
        c.meta().generation.hash(&mut h);
        conditions(c).hash(&mut h);
        Some(h.finish())
    }
}

fn ready_of(status: Option<&crate::api::VendorConnectionStatus>) -> Option<String> {
    status.and_then(|s| {
        crate::api::conditions::status_of(&s.conditions, crate::api::conditions::types::READY)
            .map(str::to_string)
    })
}

/// The objects in `store` for which `refers` holds, as reconcile requests.
fn referring<K>(store: &Store<K>, refers: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .into_iter()
        .filter(|k| refers(k))
        .map(|k| ObjectRef::from_obj(&*k))
        .collect()
}

/// True when `org` names the connection `kind`/`name`.
fn uses(org: &Organization, kind: ConnectionKind, name: &str) -> bool {
    org.spec
        .connection_ref
        .as_ref()
        .is_some_and(|r| r.kind == kind && r.name == name)
}

fn namespaced_connections(
    client: &Client,
    scope: &Option<String>,
    ctx: &Arc<context::Context>,
    concurrency: u16,
) -> Task {
    let controller = Controller::new(api_in::<VendorConnection>(client, scope), watch_config());
    let store = controller.store();
    ctx.watched.connections.add(controller.store());
    Box::pin(
        controller
            .watches_stream(secret_changes(client, scope), move |secret| {
                referring(&store, |c: &VendorConnection| {
                    c.namespace() == secret.namespace()
                        && c.spec.credentials_secret_ref.name == secret.name_any()
                })
            })
            .with_config(Config::default().concurrency(concurrency))
            .shutdown_on_signal()
            .run(
                connection::reconcile::<VendorConnection>,
                connection::error_policy::<VendorConnection>,
                ctx.clone(),
            )
            .for_each(drain),
    )
}

fn cluster_connections(
    client: &Client,
    secret_scopes: &[Option<String>],
    ctx: &Arc<context::Context>,
    concurrency: u16,
) -> Task {
    let mut controller = Controller::new(
        Api::<ClusterVendorConnection>::all(client.clone()),
        watch_config(),
    );
    ctx.watched.cluster_connections.add(controller.store());
    for scope in secret_scopes {
        let store = controller.store();
        controller = controller.watches_stream(secret_changes(client, scope), move |secret| {
            referring(&store, |c: &ClusterVendorConnection| {
                let r = &c.spec.credentials_secret_ref;
                Some(&r.namespace) == secret.namespace().as_ref() && r.name == secret.name_any()
            })
        });
    }
    Box::pin(
        controller
            .with_config(Config::default().concurrency(concurrency))
            .shutdown_on_signal()
            .run(
                connection::reconcile::<ClusterVendorConnection>,
                connection::error_policy::<ClusterVendorConnection>,
                ctx.clone(),
            )
            .for_each(drain),
    )
}

fn organizations(
    client: &Client,
    scope: &Option<String>,
    ctx: &Arc<context::Context>,
    concurrency: u16,
) -> Task {
    let controller = Controller::new(api_in::<Organization>(client, scope), watch_config());
    let (namespaced_store, cluster_store) = (controller.store(), controller.store());
    ctx.watched.organizations.add(controller.store());
    let namespaced = watcher(api_in::<VendorConnection>(client, scope), watch_config())
        .touched_objects()
        .predicate_filter(
            connection_predicate(|c: &VendorConnection| ready_of(c.status.as_ref())),
            Default::default(),
        );
    let cluster = watcher(
        Api::<ClusterVendorConnection>::all(client.clone()),
        watch_config(),
    )
    .touched_objects()
    .predicate_filter(
        connection_predicate(|c: &ClusterVendorConnection| ready_of(c.status.as_ref())),
        Default::default(),
    );
    Box::pin(
        controller
            .watches_stream(namespaced, move |c: VendorConnection| {
                referring(&namespaced_store, |o: &Organization| {
                    o.namespace() == c.namespace()
                        && uses(o, ConnectionKind::VendorConnection, &c.name_any())
                })
            })
            .watches_stream(cluster, move |c: ClusterVendorConnection| {
                referring(&cluster_store, |o: &Organization| {
                    uses(o, ConnectionKind::ClusterVendorConnection, &c.name_any())
                })
            })
            // Their template changed: every Organization copying it, now.
            .reconcile_on(ctx.templates.triggers(scope.clone()))
            .with_config(Config::default().concurrency(concurrency))
            .shutdown_on_signal()
            .run(
                organization::reconcile,
                organization::error_policy,
                ctx.clone(),
            )
            .for_each(drain),
    )
}

fn memberships(
    client: &Client,
    scope: &Option<String>,
    ctx: &Arc<context::Context>,
    concurrency: u16,
) -> Task {
    let controller = Controller::new(api_in::<OrgMembership>(client, scope), watch_config());
    let store = controller.store();
    ctx.watched.memberships.add(controller.store());
    Box::pin(
        controller
            // An Organization that changes (e.g. becomes Ready) brings its memberships back.
            .watches(
                api_in::<Organization>(client, scope),
                watch_config(),
                move |org: Organization| {
                    referring(&store, |m: &OrgMembership| {
                        m.namespace() == org.namespace()
                            && m.spec.organization_ref.name == org.name_any()
                    })
                },
            )
            .with_config(Config::default().concurrency(concurrency))
            .shutdown_on_signal()
            .run(membership::reconcile, membership::error_policy, ctx.clone())
            .for_each(drain),
    )
}
