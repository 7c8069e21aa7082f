//! `orgops run`: the operator. kube-rs controllers wired to the engine.
//!
//! - [`organization`]: the Organization reconciler and its error policy.
//! - [`membership`]: the OrgMembership reconciler (waits for its Organization to be Ready).
//! - [`context`]: state shared by reconciles (clients, recorder, metrics, backoff).
//! - [`sink`]: the engine's state written to the resource (create intent, id, progress).
//! - [`metrics`], [`http`]: Prometheus metrics and health endpoints.
//! - [`leader`]: leader election on a Lease.
//! - [`error`]: controller errors.

pub mod context;
pub mod error;
pub mod http;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod organization;
pub mod sink;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

pub use error::Error;

use crate::api::{OrgMembership, Organization};
use crate::engine::EngineOptions;
use crate::vendors::Endpoints;

/// Options of `orgops run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Requests per second per vendor endpoint by vendor name, `*` for all; absent: documented.
    pub vendor_rates: std::collections::HashMap<String, u32>,
    /// Default endpoint by vendor name.
    pub vendor_endpoints: std::collections::HashMap<String, String>,
    /// Vendor requests in flight per reconcile.
    pub copy_concurrency: usize,
    /// Drift re-check period for Organizations without `spec.syncInterval`.
    pub default_sync_interval: std::time::Duration,
    /// Leader election (`None`: this replica always acts).
    pub lease: Option<leader::LeaseConfig>,
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
    for name in ["organizations.orgops.io", "orgmemberships.orgops.io"] {
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
        ..EngineOptions::default()
    };
    let ctx = Arc::new(context::Context::new(
        client.clone(),
        endpoints,
        engine,
        opts.vendor_rates.clone(),
        opts.vendor_endpoints.clone(),
        opts.default_sync_interval,
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let bound = http::serve(
        opts.listen,
        http::Health {
            ctx: ctx.clone(),
            ready: ready.clone(),
        },
    )
    .await
    .map_err(|e| Error::Setup(format!("cannot listen on {}: {e}", opts.listen)))?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");

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
    if let Some((api, lease)) = &leases {
        tracing::info!(lease = %format!("{}/{}", lease.namespace, lease.name), identity = %lease.identity, "waiting for leadership");
        tokio::select! {
            r = leader::acquire(api, lease) => r?,
            _ = shutdown_signal() => return Ok(()),
        }
        tracing::info!("leading");
    }
    ctx.metrics.leader.set(1);

    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    let mut controllers = Vec::new();
    for scope in scopes {
        let (orgs, secrets): (Api<Organization>, Api<Secret>) = match &scope {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let controller = Controller::new(orgs, watcher::Config::default().any_semantic());
        let store = controller.store();
        let run = controller
            .watches(
                secrets,
                watcher::Config::default().any_semantic(),
                move |secret: Secret| {
                    let ns = secret.namespace().unwrap_or_default();
                    let name = secret.name_any();
                    store
                        .state()
                        .into_iter()
                        .filter(move |o| {
                            o.namespace().as_deref() == Some(ns.as_str())
                                && o.spec.connection.credentials_secret_ref.name == name
                        })
                        .map(|o| ObjectRef::from_obj(&*o))
                },
            )
            .with_config(Config::default().concurrency(opts.concurrency))
            .shutdown_on_signal()
            .run(
                organization::reconcile,
                organization::error_policy,
                ctx.clone(),
            )
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller event");
                }
            });
        controllers.push(
            Box::pin(run) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        );

        let (memberships, orgs): (Api<OrgMembership>, Api<Organization>) = match &scope {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let controller = Controller::new(memberships, watcher::Config::default().any_semantic());
        let store = controller.store();
        let run = controller
            // An Organization that changes (e.g. becomes Ready) brings its memberships back.
            .watches(
                orgs,
                watcher::Config::default().any_semantic(),
                move |org: Organization| {
                    let ns = org.namespace().unwrap_or_default();
                    let name = org.name_any();
                    store
                        .state()
                        .into_iter()
                        .filter(move |m| {
                            m.namespace().as_deref() == Some(ns.as_str())
                                && m.spec.organization_ref.name == name
                        })
                        .map(|m| ObjectRef::from_obj(&*m))
                },
            )
            .with_config(Config::default().concurrency(opts.concurrency))
            .shutdown_on_signal()
            .run(membership::reconcile, membership::error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller event");
                }
            });
        controllers.push(Box::pin(run));
    }
    tracing::info!("orgops controllers running");
    let result = match &leases {
        Some((api, lease)) => {
            tokio::select! {
                _ = futures::future::join_all(controllers) => {
                    leader::release(api, lease).await;
                    Ok(())
                }
                lost = leader::keep(api, lease) => Err(lost),
            }
        }
        None => {
            futures::future::join_all(controllers).await;
            Ok(())
        }
    };
    ctx.metrics.leader.set(0);
    tracing::info!("orgops stopped");
    result
}
