//! Per-namespace mode: the operator's rights in a tenant namespace come from its RoleBinding in
//! that namespace, which Kubernetes deletes along with everything else when the namespace is
//! deleted — possibly before the operator has released its own finalizers there, which then
//! could never be released, and the namespace would hang. The guard keeps a finalizer on that
//! RoleBinding while the namespace lives and removes it once the namespace is terminating and
//! nothing in it holds an orgops finalizer any more.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use super::connection::IN_USE;
use super::error::Error;
use super::finalizers;
use super::organization::FINALIZER;
use crate::api::{OrgMembership, Organization, VendorConnection};

/// Finalizer on the operator's RoleBinding in a watched namespace.
pub const KEEP_ACCESS: &str = "orgops.io/keep-access";
const RECHECK: Duration = Duration::from_secs(2);

struct Guard {
    client: Client,
    namespaces: Vec<String>,
    binding: String,
}

/// Guards the RoleBinding `binding` in each of `namespaces` until the operator is stopped.
pub async fn run(client: Client, namespaces: Vec<String>, binding: String) {
    let guard = Arc::new(Guard {
        client: client.clone(),
        namespaces,
        binding,
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, guard)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "access guard event");
            }
        })
        .await;
}

async fn reconcile(ns: Arc<Namespace>, guard: Arc<Guard>) -> Result<Action, Error> {
    let name = ns.name_any();
    if !guard.namespaces.contains(&name) {
        return Ok(Action::await_change());
    }
    let bindings: Api<RoleBinding> = Api::namespaced(guard.client.clone(), &name);
    let Some(binding) = bindings.get_opt(&guard.binding).await? else {
        tracing::warn!(namespace = %name, binding = %guard.binding, "the operator's RoleBinding is missing");
        return Ok(Action::await_change());
    };
    let held = binding.finalizers().iter().any(|f| f == KEEP_ACCESS);
    if ns.meta().deletion_timestamp.is_none() {
        if !held {
            finalizers::add(&bindings, &binding, KEEP_ACCESS).await?;
        }
        return Ok(Action::await_change());
    }
    if held && !holds_finalizers(&guard.client, &name).await? {
        finalizers::remove(&bindings, &binding, KEEP_ACCESS).await?;
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(RECHECK))
}

fn error_policy(_: Arc<Namespace>, err: &Error, _: Arc<Guard>) -> Action {
    tracing::warn!(error = %err, "access guard failed");
    Action::requeue(RECHECK)
}

/// True while anything in `ns` still carries one of orgops' finalizers.
async fn holds_finalizers(client: &Client, ns: &str) -> Result<bool, Error> {
    let ours = |f: &[String]| f.iter().any(|f| f == FINALIZER || f == IN_USE);
    let lp = ListParams::default();
    let orgs = Api::<Organization>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?;
    let memberships = Api::<OrgMembership>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?;
    let connections = Api::<VendorConnection>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?;
    Ok(orgs.items.iter().any(|o| ours(o.finalizers()))
        || memberships.items.iter().any(|m| ours(m.finalizers()))
        || connections.items.iter().any(|c| ours(c.finalizers())))
}
