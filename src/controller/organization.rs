//! The Organization controller: a thin shell around the engine. It adds the finalizer before
//! anything reaches the vendor, resolves the connection, runs the engine, writes status,
//! publishes events, and on deletion applies `deletionPolicy`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::connections::ConnectionError;
use super::context::{Context, Seen};
use super::error::Error;
use super::metrics::{FailureLabels, KindLabels};
use super::sink::{ResourceSink, pending_create};
use crate::api::conditions::{ConditionSpec, merge, same_ignoring_time, types};
use crate::api::{OrgPhase, Organization, OrganizationStatus};
use crate::engine::status::organization_status;
use crate::engine::{DesiredOrg, OrgState, Requeue, reconcile_org};
use crate::vendors::http::in_flow;

/// The finalizer orgops puts on every Organization before touching the vendor.
pub const FINALIZER: &str = "orgops.io/cleanup";
const KIND: &str = "organization";
/// Re-check period of resources parked on a condition only a human can fix.
const PARKED: Duration = Duration::from_secs(3600);

/// Reconciles one Organization.
pub async fn reconcile(org: Arc<Organization>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.timer(KIND);
    let ns = org.namespace().ok_or(Error::NoNamespace)?;
    let name = org.name_any();
    let uid = org.uid().unwrap_or_default();
    let api: Api<Organization> = Api::namespaced(ctx.client.clone(), &ns);

    if org.meta().deletion_timestamp.is_some() {
        ctx.templates.unregister(&org);
        return super::deletion::cleanup(&org, &api, &ctx).await;
    }
    if !org.finalizers().iter().any(|f| f == FINALIZER) {
        // The finalizer exists before anything is created at the vendor.
        add_finalizer(&api, &org).await?;
        return Ok(Action::await_change());
    }

    let connection = ctx
        .connections
        .for_organization(&ctx.client, &org, false)
        .await;
    let dependency_version = connection.as_ref().ok().map(|c| c.version.clone());

    // Our own status writes come back as watch events: skip them while nothing we depend on
    // changed and no drift check is due.
    if let Some(seen) = ctx.seen(&uid)
        && seen.generation == org.metadata.generation
        && seen.dependency_version == dependency_version
        && let Some(wait) = seen.next_sync.checked_duration_since(Instant::now())
    {
        ctx.metrics.reconciled(KIND, "skipped");
        return Ok(Action::requeue(wait));
    }

    let desired = match DesiredOrg::from_resource(&org) {
        Ok(mut d) => {
            d.sync_interval =
                ctx.sync_interval(org.spec.sync_interval.is_some().then_some(d.sync_interval));
            d
        }
        Err(e) => {
            let c = ConditionSpec::new(types::READY, false, "InvalidSpec", e.to_string());
            park(
                &ctx,
                &api,
                &org,
                OrgPhase::Failed,
                vec![c],
                dependency_version,
                "InvalidSpec",
            )
            .await?;
            return Ok(Action::requeue(PARKED));
        }
    };
    let scope = connection
        .as_ref()
        .map(|c| format!("{} {}", c.config.id, c.version))
        .unwrap_or_default();
    let client = match connection {
        Ok(c) => c.client,
        Err(e) if e.is_permanent() => {
            park(
                &ctx,
                &api,
                &org,
                OrgPhase::Failed,
                connection_conditions(&e),
                None,
                e.reason(),
            )
            .await?;
            return Ok(Action::requeue(PARKED));
        }
        Err(e) => {
            return Err(Error::Transient {
                reason: e.reason().into(),
                message: e.to_string(),
            });
        }
    };

    let state = OrgState {
        external_id: org.status.as_ref().and_then(|s| s.external_id.clone()),
        pending_create: pending_create(&org),
        usage_observed_at: org
            .status
            .as_ref()
            .and_then(|s| s.usage_observed_time.as_deref())
            .and_then(|t| t.parse().ok()),
    };
    let was_ready = org
        .status
        .as_ref()
        .and_then(|s| crate::api::conditions::status_of(&s.conditions, types::READY))
        == Some("True");
    let sink = ResourceSink::new(api.clone(), &name, !was_ready)
        .with_claims(org.as_ref().clone(), ctx.watched.organizations.clone())
        .with_secrets(Api::namespaced(ctx.client.clone(), &ns));
    // One flow per Organization: a connection's requests are admitted round-robin across the
    // Organizations using it, so one big copy cannot starve the others.
    let engine = crate::engine::EngineOptions {
        templates: ctx.templates.source(&scope),
        ..ctx.engine.clone()
    };
    let report = in_flow(
        format!("{ns}/{name}"),
        reconcile_org(client.as_ref(), &desired, &state, &sink, &engine),
    )
    .await;
    if let Some(template) = &report.template_org {
        ctx.templates.register(
            &scope,
            template,
            client.clone(),
            &org,
            desired.sync_interval,
        );
    }
    let status = organization_status(
        &report,
        org.status.as_ref(),
        org.metadata.generation,
        jiff::Timestamp::now(),
    );
    let progress_written = sink.finish().await;
    write_status(&api, &org, status, progress_written).await?;
    publish_events(&ctx, &org, &report).await;
    if let Some(copy) = &report.copy {
        ctx.metrics
            .objects_copied
            .get_or_create(&KindLabels {
                kind: desired.vendor.to_string(),
            })
            .inc_by(u64::from(copy.created + copy.updated));
    }

    let now = Instant::now();
    match report.requeue {
        Requeue::After(d) => {
            ctx.metrics
                .reconciled(KIND, if report.ready { "ready" } else { "not_ready" });
            ctx.succeeded(&uid);
            ctx.remember(
                &uid,
                Some(Seen {
                    generation: org.metadata.generation,
                    dependency_version: dependency_version.clone(),
                    next_sync: now + d,
                }),
            );
            Ok(Action::requeue(jitter(d)))
        }
        Requeue::OnChange => {
            ctx.metrics.reconciled(KIND, "not_ready");
            ctx.metrics
                .failures
                .get_or_create(&FailureLabels {
                    kind: KIND.into(),
                    reason: report.ready_reason().to_string(),
                })
                .inc();
            ctx.succeeded(&uid);
            ctx.remember(
                &uid,
                Some(Seen {
                    generation: org.metadata.generation,
                    dependency_version,
                    next_sync: now + PARKED,
                }),
            );
            Ok(Action::requeue(PARKED))
        }
        Requeue::Backoff => {
            ctx.remember(&uid, None);
            Err(Error::Transient {
                reason: report.ready_reason().to_string(),
                message: report.ready_message().to_string(),
            })
        }
    }
}

/// The conditions of an Organization whose connection cannot be used.
pub fn connection_conditions(e: &ConnectionError) -> Vec<ConditionSpec> {
    let message = e.to_string();
    let type_ = match e {
        ConnectionError::Vendor(_) => types::CREDENTIALS_VALID,
        _ => types::CONNECTION_READY,
    };
    vec![
        ConditionSpec::new(type_, false, e.reason(), message.clone()),
        ConditionSpec::new(types::READY, false, e.reason(), message),
    ]
}

/// Backs transient failures off per object; every failure counts in metrics.
pub fn error_policy(org: Arc<Organization>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconciled(KIND, "error");
    ctx.metrics
        .failures
        .get_or_create(&FailureLabels {
            kind: KIND.into(),
            reason: err.category().to_string(),
        })
        .inc();
    let delay = ctx.backoff(&org.uid().unwrap_or_default());
    tracing::warn!(org = %org.name_any(), namespace = ?org.namespace(), error = %err, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// ±10 % so that many resources do not re-check in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.9 + 0.2 * fastrand::f64())
}

async fn add_finalizer(api: &Api<Organization>, org: &Organization) -> Result<(), Error> {
    super::finalizers::add(api, org, FINALIZER).await
}

pub(super) async fn remove_finalizer(
    api: &Api<Organization>,
    org: &Organization,
) -> Result<(), Error> {
    super::finalizers::remove(api, org, FINALIZER).await
}

/// Writes `status` unless it says what the resource already says (timestamps aside) and
/// nothing else was written since the resource was read (`force`).
pub(super) async fn write_status(
    api: &Api<Organization>,
    org: &Organization,
    status: OrganizationStatus,
    force: bool,
) -> Result<(), Error> {
    if !force && let Some(old) = &org.status {
        let mut a = old.clone();
        let mut b = status.clone();
        a.last_sync_time = None;
        b.last_sync_time = None;
        let conditions_same = same_ignoring_time(&a.conditions, &b.conditions);
        a.conditions.clear();
        b.conditions.clear();
        if let (Some(ca), Some(cb)) = (a.copy.as_mut(), b.copy.as_mut()) {
            ca.started_at = None;
            cb.started_at = None;
            ca.completed_at = None;
            cb.completed_at = None;
        }
        if conditions_same && a == b {
            return Ok(());
        }
    }
    let mut patch = json!({"status": status});
    if status.plan.is_none() && org.status.as_ref().is_some_and(|s| s.plan.is_some()) {
        // A merge patch keeps what it does not name: a plan left from a suspension is removed.
        patch["status"]["plan"] = serde_json::Value::Null;
    }
    api.patch_status(
        &org.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Sets conditions and a phase for a resource that waits for a human, with one event.
async fn park(
    ctx: &Context,
    api: &Api<Organization>,
    org: &Organization,
    phase: OrgPhase,
    conditions: Vec<ConditionSpec>,
    dependency_version: Option<String>,
    reason: &str,
) -> Result<(), Error> {
    let previous = org.status.clone().unwrap_or_default();
    let status = OrganizationStatus {
        observed_generation: org.metadata.generation,
        phase: Some(phase),
        conditions: merge(
            &previous.conditions,
            &conditions,
            org.metadata.generation,
            jiff::Timestamp::now(),
        ),
        ..previous
    };
    let changed = org.status.as_ref().is_none_or(|s| {
        !same_ignoring_time(&s.conditions, &status.conditions) || s.phase != status.phase
    });
    write_status(api, org, status, false).await?;
    if changed && let Some(ready) = conditions.iter().find(|c| c.type_ == types::READY) {
        warn_event(ctx, org, reason, &ready.message).await;
    }
    ctx.metrics
        .failures
        .get_or_create(&FailureLabels {
            kind: KIND.into(),
            reason: reason.to_string(),
        })
        .inc();
    ctx.metrics.reconciled(KIND, "not_ready");
    let uid = org.uid().unwrap_or_default();
    ctx.remember(
        &uid,
        Some(Seen {
            generation: org.metadata.generation,
            dependency_version,
            next_sync: Instant::now() + PARKED,
        }),
    );
    Ok(())
}

pub(super) async fn warn_event(ctx: &Context, org: &Organization, reason: &str, note: &str) {
    publish(ctx, org, EventType::Warning, reason, note, "Reconcile").await;
}

pub(super) async fn publish(
    ctx: &Context,
    org: &Organization,
    type_: EventType,
    reason: &str,
    note: &str,
    action: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(note, 1000)),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &org.object_ref(&())).await {
        tracing::debug!(error = %e, "event not published");
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

async fn publish_events(ctx: &Context, org: &Organization, report: &crate::engine::OrgReport) {
    let was_ready = org
        .status
        .as_ref()
        .and_then(|s| {
            crate::api::conditions::status_of(&s.conditions, types::READY).map(|r| r == "True")
        })
        .unwrap_or(false);
    if report.org_created {
        let note = format!(
            "created organization {} at the vendor",
            report.external_id.as_deref().unwrap_or("?")
        );
        publish(ctx, org, EventType::Normal, "Created", &note, "Create").await;
    }
    if report.settings_updated {
        publish(
            ctx,
            org,
            EventType::Normal,
            "SettingsSynced",
            "updated name and settings at the vendor",
            "Update",
        )
        .await;
    }
    if let Some(c) = &report.copy
        && (c.created > 0 || c.updated > 0)
    {
        let note = format!(
            "template copy: {} created, {} updated",
            c.created, c.updated
        );
        publish(ctx, org, EventType::Normal, "TemplateCopied", &note, "Copy").await;
    }
    if report.ready && !was_ready {
        publish(
            ctx,
            org,
            EventType::Normal,
            "Ready",
            report.ready_message(),
            "Reconcile",
        )
        .await;
    }
    if !report.ready {
        warn_event(ctx, org, report.ready_reason(), report.ready_message()).await;
    }
}
