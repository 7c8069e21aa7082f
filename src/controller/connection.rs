//! The connection controller (VendorConnection and ClusterVendorConnection): judges the
//! connection against the operator's policy (no request is made to an endpoint that is not
//! allowed), reads its Secret with GET, checks the credentials at the vendor, and reports what
//! they reach. Re-checked every `--connection-check-interval` and whenever the connection or
//! its Secret changes.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::connections::{ConnectionError, ConnectionObject};
use super::context::{Context, Seen};
use super::error::Error;
use super::finalizers;
use crate::api::conditions::{ConditionSpec, merge, same_ignoring_time, types};
use crate::api::{
    ClusterVendorConnection, ConnectionAccount, ConnectionKind, Organization, VendorConnection,
    VendorConnectionStatus,
};
use crate::vendors::VendorError;
use crate::vendors::connection::ConnectionProblem;

const KIND: &str = "connection";

/// Finalizer that keeps a VendorConnection while Organizations of its namespace use it, so
/// that deleting them — or the whole namespace, in any order — can still reach the vendor.
pub const IN_USE: &str = "orgops.io/connection-in-use";
/// Re-check period of a deletion waiting for its Organizations.
const IN_USE_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// What the controller needs of either connection kind.
pub trait ConnectionResource:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
    /// Whether deletion waits for the Organizations using it (a namespace's own connection;
    /// a cluster connection is not deleted with a namespace).
    const IN_USE_PROTECTION: bool;
    /// Its configuration and identity.
    fn object(&self) -> ConnectionObject;
    /// Its status.
    fn status(&self) -> Option<&VendorConnectionStatus>;
    /// The API of the object (namespaced or cluster).
    fn api_of(&self, client: kube::Client) -> Api<Self>;
}

impl ConnectionResource for VendorConnection {
    const IN_USE_PROTECTION: bool = true;
    fn object(&self) -> ConnectionObject {
        self.into()
    }
    fn status(&self) -> Option<&VendorConnectionStatus> {
        self.status.as_ref()
    }
    fn api_of(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl ConnectionResource for ClusterVendorConnection {
    const IN_USE_PROTECTION: bool = false;
    fn object(&self) -> ConnectionObject {
        self.into()
    }
    fn status(&self) -> Option<&VendorConnectionStatus> {
        self.status.as_ref()
    }
    fn api_of(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }
}

/// The outcome of one check, as conditions and account.
struct Check {
    conditions: Vec<ConditionSpec>,
    endpoint: Option<String>,
    account: Option<ConnectionAccount>,
    checked: bool,
}

/// Reconciles one connection of either kind.
pub async fn reconcile<K: ConnectionResource>(
    conn: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.timer(KIND);
    let object = conn.object();
    let uid = format!("c/{}", object.uid);
    if K::IN_USE_PROTECTION {
        let api = conn.api_of(ctx.client.clone());
        let held = conn.finalizers().iter().any(|f| f == IN_USE);
        if conn.meta().deletion_timestamp.is_none() && !held {
            finalizers::add(&api, conn.as_ref(), IN_USE).await?;
            return Ok(Action::await_change());
        }
        if conn.meta().deletion_timestamp.is_none() {
            protect_secret(&ctx, &api, conn.as_ref(), Some(&object.config.secret.name)).await?;
        }
        if conn.meta().deletion_timestamp.is_some() && held {
            let users = users(&ctx, conn.as_ref()).await?;
            if !users.is_empty() {
                let message = format!(
                    "deletion waits until no Organization uses this connection: {}",
                    users.join(", ")
                );
                let check = Check {
                    conditions: vec![ConditionSpec::new(types::READY, false, "InUse", message)],
                    endpoint: conn.status().and_then(|s| s.endpoint.clone()),
                    account: conn.status().and_then(|s| s.account.clone()),
                    checked: false,
                };
                write_status(&ctx, conn.as_ref(), &object, check).await?;
                return Ok(Action::requeue(IN_USE_RECHECK));
            }
            protect_secret(&ctx, &api, conn.as_ref(), None).await?;
            finalizers::remove(&api, conn.as_ref(), IN_USE).await?;
        }
    }
    if conn.meta().deletion_timestamp.is_some() {
        ctx.connections.forget(&object.config.id);
        ctx.remember(&uid, None);
        return Ok(Action::await_change());
    }
    let resolved = ctx.connections.refresh(&ctx.client, &object).await;
    let version = resolved.as_ref().ok().map(|r| r.version.clone());
    if let Some(seen) = ctx.seen(&uid)
        && seen.generation == object.generation
        && seen.dependency_version == version
        && let Some(wait) = seen.next_sync.checked_duration_since(Instant::now())
    {
        ctx.metrics.reconciled(KIND, "skipped");
        return Ok(Action::requeue(wait));
    }

    let check = match resolved {
        Ok(r) => match r.client.describe_account().await {
            Ok(account) => {
                let reached = format!("{} reaches {}", r.endpoint, account.summary);
                Check {
                    conditions: checked(&object, Ok(reached)),
                    endpoint: Some(r.endpoint),
                    account: Some(ConnectionAccount {
                        summary: account.summary,
                        details: account.details,
                    }),
                    checked: true,
                }
            }
            Err(e) if e.is_transient() => {
                ctx.remember(&uid, None);
                return Err(Error::Transient {
                    reason: e.category().into(),
                    message: e.to_string(),
                });
            }
            Err(e) => Check {
                conditions: checked(&object, Err(&e)),
                endpoint: Some(r.endpoint),
                account: None,
                checked: true,
            },
        },
        Err(ConnectionError::Kube(e)) => return Err(e.into()),
        Err(e) => {
            ctx.connections.retire(&object.config.id);
            problem_check(&e)
        }
    };
    let ready = check
        .conditions
        .iter()
        .any(|c| c.type_ == types::READY && c.status);
    write_status(&ctx, conn.as_ref(), &object, check).await?;
    ctx.metrics
        .reconciled(KIND, if ready { "ready" } else { "not_ready" });
    ctx.succeeded(&uid);
    let next = ctx.connection_check_interval;
    ctx.remember(
        &uid,
        Some(Seen {
            generation: object.generation,
            dependency_version: version,
            next_sync: Instant::now() + next,
        }),
    );
    Ok(Action::requeue(next.mul_f64(0.9 + 0.2 * fastrand::f64())))
}

/// Conditions after asking the vendor: what the credentials reach, or why they were rejected.
fn checked(object: &ConnectionObject, outcome: Result<String, &VendorError>) -> Vec<ConditionSpec> {
    let allowed = ConditionSpec::new(
        types::ENDPOINT_ALLOWED,
        true,
        "Allowed",
        allowed_message(object),
    );
    match outcome {
        Ok(reached) => vec![
            allowed,
            ConditionSpec::new(
                types::CREDENTIALS_VALID,
                true,
                "Authenticated",
                format!(
                    "the vendor accepts the credentials in Secret {}",
                    object.config.secret
                ),
            ),
            ConditionSpec::new(types::READY, true, "Authenticated", reached),
        ],
        Err(e) => vec![
            allowed,
            ConditionSpec::new(types::CREDENTIALS_VALID, false, e.category(), e.to_string()),
            ConditionSpec::new(types::READY, false, e.category(), e.to_string()),
        ],
    }
}

/// Annotation on a VendorConnection naming the Secret that carries its [`IN_USE`] finalizer.
const PROTECTED_SECRET: &str = "orgops.io/protected-secret";

/// Keeps `want` (the connection's Secret, same namespace) from being deleted while the
/// connection is, with the [`IN_USE`] finalizer, and releases the Secret protected before (the
/// reference changed, or `want` is `None`: the connection is going). A namespace deleted in
/// any order then still holds the credentials its Organizations' cleanup needs.
async fn protect_secret<K: ConnectionResource>(
    ctx: &Context,
    api: &Api<K>,
    conn: &K,
    want: Option<&str>,
) -> Result<(), Error> {
    let ns = conn.meta().namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let recorded = conn.annotations().get(PROTECTED_SECRET).cloned();
    if let Some(old) = recorded.as_deref().filter(|old| Some(*old) != want)
        && let Some(secret) = secrets.get_opt(old).await?
    {
        finalizers::remove(&secrets, &secret, IN_USE).await?;
    }
    if recorded.as_deref() != want {
        // Recorded before the finalizer is added: a crash in between leaves nothing untracked.
        let patch = json!({"metadata": {"annotations": {PROTECTED_SECRET: want}}});
        api.patch(
            &conn.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    if let Some(name) = want
        && let Some(secret) = secrets.get_opt(name).await?
        && secret.meta().deletion_timestamp.is_none()
        && !secret.finalizers().iter().any(|f| f == IN_USE)
    {
        finalizers::add(&secrets, &secret, IN_USE).await?;
    }
    Ok(())
}

/// The Organizations of the connection's namespace that still use it (`namespace/name`).
async fn users<K: ConnectionResource>(ctx: &Context, conn: &K) -> Result<Vec<String>, Error> {
    let ns = conn.meta().namespace.clone().unwrap_or_default();
    let name = conn.name_any();
    let orgs = Api::<Organization>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    Ok(orgs
        .items
        .iter()
        .filter(|o| {
            o.spec
                .connection_ref
                .as_ref()
                .is_some_and(|r| r.kind == ConnectionKind::VendorConnection && r.name == name)
        })
        // One being deleted without orgops' finalizer is about to vanish: it needs nothing.
        .filter(|o| {
            o.meta().deletion_timestamp.is_none()
                || o.finalizers()
                    .iter()
                    .any(|f| f == super::organization::FINALIZER)
        })
        .map(|o| format!("{ns}/{}", o.name_any()))
        .collect())
}

fn allowed_message(object: &ConnectionObject) -> String {
    if object.config.trusted {
        "a cluster connection: its endpoint is the platform admin's".into()
    } else {
        "the endpoint is on the operator's allow-list".into()
    }
}

/// Conditions for a connection the policy refuses or whose Secret is unusable.
fn problem_check(e: &ConnectionError) -> Check {
    let message = e.to_string();
    let endpoint_refused = matches!(
        e,
        ConnectionError::Problem(
            ConnectionProblem::EndpointNotAllowed { .. }
                | ConnectionProblem::InvalidEndpoint { .. }
        )
    );
    let mut conditions = vec![ConditionSpec::new(
        types::READY,
        false,
        e.reason(),
        message.clone(),
    )];
    if endpoint_refused {
        conditions.push(ConditionSpec::new(
            types::ENDPOINT_ALLOWED,
            false,
            e.reason(),
            message,
        ));
    } else {
        conditions.push(ConditionSpec::new(
            types::CREDENTIALS_VALID,
            false,
            e.reason(),
            message,
        ));
    }
    Check {
        conditions,
        endpoint: None,
        account: None,
        checked: false,
    }
}

async fn write_status<K: ConnectionResource>(
    ctx: &Context,
    conn: &K,
    object: &ConnectionObject,
    check: Check,
) -> Result<(), Error> {
    let previous = conn.status().cloned().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let status = VendorConnectionStatus {
        observed_generation: object.generation,
        endpoint: check.endpoint,
        conditions: merge(
            &previous.conditions,
            &check.conditions,
            object.generation,
            now,
        ),
        account: check.account,
        last_checked_time: if check.checked {
            Some(now.to_string())
        } else {
            previous.last_checked_time.clone()
        },
    };
    let changed = !same_ignoring_time(&previous.conditions, &status.conditions);
    if !changed && !check.checked && previous == status {
        return Ok(());
    }
    let api = conn.api_of(ctx.client.clone());
    api.patch_status(
        &conn.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await?;
    // A connection being deleted is usually in a terminating namespace, which takes no Events;
    // its status says why it waits.
    let deleting = conn.meta().deletion_timestamp.is_some();
    if changed
        && !deleting
        && let Some(ready) = check_ready(&status)
    {
        let (type_, reason) = if ready.status == "True" {
            (EventType::Normal, "Ready".to_string())
        } else {
            (EventType::Warning, ready.reason.clone())
        };
        let event = Event {
            type_,
            reason,
            note: Some(super::organization::truncate(&ready.message, 1000)),
            action: "Check".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &conn.object_ref(&())).await {
            tracing::debug!(error = %e, "event not published");
        }
    }
    Ok(())
}

fn check_ready(
    status: &VendorConnectionStatus,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status.conditions.iter().find(|c| c.type_ == types::READY)
}

/// Backs transient failures off per object.
pub fn error_policy<K: ConnectionResource>(conn: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconciled(KIND, "error");
    let delay = ctx.backoff(&format!("c/{}", conn.uid().unwrap_or_default()));
    tracing::warn!(connection = %conn.name_any(), error = %err, ?delay, "connection check failed");
    Action::requeue(delay)
}
