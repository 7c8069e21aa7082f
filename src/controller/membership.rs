//! The OrgMembership controller: waits for its Organization to be Ready, then keeps one
//! person's access to it as specified; on deletion applies `deletionPolicy`.

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
use super::metrics::FailureLabels;
use super::organization::FINALIZER;
use crate::api::conditions::{ConditionSpec, merge, same_ignoring_time, status_of, types};
use crate::api::{
    DeletionPolicy, MembershipPhase, OrgMembership, OrgMembershipStatus, Organization,
};
use crate::engine::Mode;
use crate::engine::membership::{DesiredMembership, reconcile_member};
use crate::vendors::{MemberDesired, VendorClient};

const KIND: &str = "orgmembership";
const PARKED: Duration = Duration::from_secs(3600);

fn org_ready(org: &Organization) -> bool {
    org.status
        .as_ref()
        .and_then(|s| status_of(&s.conditions, types::READY))
        == Some("True")
}

/// The vendor client of the Organization `org` (through its connection); the inner error is a
/// problem only a human can fix.
async fn client_for(
    ctx: &Context,
    org: &Organization,
    cleanup: bool,
) -> Result<Result<Arc<dyn VendorClient>, ConnectionError>, Error> {
    match ctx
        .connections
        .for_organization(&ctx.client, org, cleanup)
        .await
    {
        Ok(c) => Ok(Ok(c.client)),
        Err(e) if e.is_permanent() => Ok(Err(e)),
        Err(e) => Err(Error::Transient {
            reason: e.reason().into(),
            message: e.to_string(),
        }),
    }
}

/// Reconciles one OrgMembership.
pub async fn reconcile(m: Arc<OrgMembership>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.timer(KIND);
    let ns = m.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<OrgMembership> = Api::namespaced(ctx.client.clone(), &ns);
    let orgs: Api<Organization> = Api::namespaced(ctx.client.clone(), &ns);
    let org = orgs.get_opt(&m.spec.organization_ref.name).await?;

    if m.meta().deletion_timestamp.is_some() {
        return cleanup(&m, &api, org.as_ref(), &ctx).await;
    }
    if !m.finalizers().iter().any(|f| f == FINALIZER) {
        // Other controllers' finalizers stay; the resourceVersion makes the write conditional.
        let mut finalizers = m.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": m.resource_version()}});
        api.patch(
            &m.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        return Ok(Action::await_change());
    }
    let desired = match DesiredMembership::from_resource(&m) {
        Ok(d) => d,
        Err(e) => {
            return park(
                &ctx,
                &api,
                &m,
                MembershipPhase::Failed,
                "InvalidSpec",
                &e.to_string(),
                None,
            )
            .await;
        }
    };
    let Some(org) = org.filter(org_ready) else {
        let message = format!("Organization {} is not Ready yet", desired.organization);
        write(
            &api,
            &m,
            MembershipPhase::WaitingForOrganization,
            None,
            vec![ConditionSpec::new(
                types::READY,
                false,
                "WaitingForOrganization",
                message,
            )],
        )
        .await?;
        ctx.metrics.reconciled(KIND, "waiting");
        // The Organization watch brings this back as soon as it changes.
        return Ok(Action::requeue(PARKED));
    };
    if let Some(older) = older_duplicate(&ctx, &m, &desired).await? {
        let message = format!(
            "OrgMembership {older} already manages {} in {}; remove one of them",
            desired.email, desired.organization
        );
        return park(
            &ctx,
            &api,
            &m,
            MembershipPhase::Failed,
            "Conflict",
            &message,
            None,
        )
        .await;
    }

    // Skip echoes of our own writes and of the Organization's progress updates.
    let uid = format!("m/{}", m.uid().unwrap_or_default());
    // A re-check asked for by another OrgMembership's removal counts as a change on every
    // replica, not only on the one that asked (leadership may have moved since).
    let recheck = m
        .annotations()
        .get(RECHECK)
        .map(String::as_str)
        .unwrap_or("");
    let org_version = format!(
        "{:?}/{}/{recheck}",
        org.metadata.generation,
        org_ready(&org)
    );
    if let Some(seen) = ctx.seen(&uid)
        && seen.generation == m.metadata.generation
        && seen.dependency_version.as_deref() == Some(org_version.as_str())
        && let Some(wait) = seen.next_sync.checked_duration_since(Instant::now())
    {
        ctx.metrics.reconciled(KIND, "skipped");
        return Ok(Action::requeue(wait));
    }
    let client = match client_for(&ctx, &org, false).await? {
        Ok(c) => c,
        Err(e) => {
            let message = format!(
                "the connection of Organization {}: {e}",
                desired.organization
            );
            return park(
                &ctx,
                &api,
                &m,
                MembershipPhase::Failed,
                e.reason(),
                &message,
                Some(org_version),
            )
            .await;
        }
    };
    let Some(org_id) = org.status.as_ref().and_then(|s| s.external_id.clone()) else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let mode = if org.spec.suspend {
        Mode::ObserveOnly
    } else {
        Mode::Apply
    };
    let report = crate::vendors::http::in_flow(
        format!("{ns}/{}", m.name_any()),
        reconcile_member(client.as_ref(), &desired.member(&org_id), mode),
    )
    .await;
    write(
        &api,
        &m,
        report.phase,
        report.external_id.clone(),
        report.conditions.clone(),
    )
    .await?;
    if report.changed {
        publish(
            &ctx,
            &m,
            EventType::Normal,
            "AccessGranted",
            &format!(
                "{} has the specified access to {}",
                desired.email, desired.organization
            ),
        )
        .await;
    }
    if report.transient {
        ctx.remember(&uid, None);
        return Err(Error::Transient {
            reason: report.ready_reason().into(),
            message: report.ready_message().into(),
        });
    }
    if !report.ready {
        publish(
            &ctx,
            &m,
            EventType::Warning,
            report.ready_reason(),
            report.ready_message(),
        )
        .await;
    }
    ctx.metrics
        .reconciled(KIND, if report.ready { "ready" } else { "not_ready" });
    ctx.succeeded(&uid);
    let sync = ctx.sync_interval(
        crate::engine::DesiredOrg::from_resource(&org)
            .ok()
            .filter(|_| org.spec.sync_interval.is_some())
            .map(|d| d.sync_interval),
    );
    // An invitation is accepted at the vendor, with no event here: it is looked at again on
    // the sync interval, like a Ready membership, so Ready follows acceptance within one.
    let next = if report.ready || report.phase == MembershipPhase::Invited {
        sync
    } else {
        PARKED
    };
    ctx.remember(
        &uid,
        Some(Seen {
            generation: m.metadata.generation,
            dependency_version: Some(org_version),
            next_sync: Instant::now() + next,
        }),
    );
    Ok(Action::requeue(next))
}

/// Backs transient failures off per object.
pub fn error_policy(m: Arc<OrgMembership>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconciled(KIND, "error");
    ctx.metrics
        .failures
        .get_or_create(&FailureLabels {
            kind: KIND.into(),
            reason: err.category().to_string(),
        })
        .inc();
    let delay = ctx.backoff(&format!("m/{}", m.uid().unwrap_or_default()));
    tracing::warn!(membership = %m.name_any(), error = %err, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Another OrgMembership of the same person and organization, created earlier.
async fn older_duplicate(
    ctx: &Context,
    m: &OrgMembership,
    desired: &DesiredMembership,
) -> Result<Option<String>, Error> {
    let api: Api<OrgMembership> =
        Api::namespaced(ctx.client.clone(), &m.namespace().unwrap_or_default());
    let all = api.list(&Default::default()).await?;
    let key = |x: &OrgMembership| {
        (
            x.metadata.creation_timestamp.clone().map(|t| t.0),
            x.name_any(),
        )
    };
    Ok(all
        .items
        .iter()
        .filter(|o| o.name_any() != m.name_any() && o.meta().deletion_timestamp.is_none())
        .filter(|o| {
            o.spec.organization_ref.name == m.spec.organization_ref.name
                && o.spec.user.email.eq_ignore_ascii_case(&desired.email)
        })
        .filter(|o| key(o) < key(m))
        .map(|o| o.name_any())
        .next())
}

async fn write(
    api: &Api<OrgMembership>,
    m: &OrgMembership,
    phase: MembershipPhase,
    external_id: Option<String>,
    conditions: Vec<ConditionSpec>,
) -> Result<(), Error> {
    let old = m.status.clone().unwrap_or_default();
    let status = OrgMembershipStatus {
        observed_generation: m.metadata.generation,
        external_id: external_id.or(old.external_id.clone()),
        phase: Some(phase),
        conditions: merge(
            &old.conditions,
            &conditions,
            m.metadata.generation,
            jiff::Timestamp::now(),
        ),
    };
    let same = m.status.as_ref().is_some_and(|s| {
        s.phase == status.phase
            && s.external_id == status.external_id
            && s.observed_generation == status.observed_generation
            && same_ignoring_time(&s.conditions, &status.conditions)
    });
    if !same {
        api.patch_status(
            &m.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn park(
    ctx: &Context,
    api: &Api<OrgMembership>,
    m: &OrgMembership,
    phase: MembershipPhase,
    reason: &str,
    message: &str,
    org_version: Option<String>,
) -> Result<Action, Error> {
    let changed = m.status.as_ref().is_none_or(|s| s.phase != Some(phase));
    write(
        api,
        m,
        phase,
        None,
        vec![ConditionSpec::new(types::READY, false, reason, message)],
    )
    .await?;
    if changed {
        publish(ctx, m, EventType::Warning, reason, message).await;
    }
    ctx.metrics.reconciled(KIND, "not_ready");
    ctx.remember(
        &format!("m/{}", m.uid().unwrap_or_default()),
        Some(Seen {
            generation: m.metadata.generation,
            dependency_version: org_version,
            next_sync: Instant::now() + PARKED,
        }),
    );
    Ok(Action::requeue(PARKED))
}

async fn publish(ctx: &Context, m: &OrgMembership, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &m.object_ref(&())).await {
        tracing::debug!(error = %e, "event not published");
    }
}

async fn remove_finalizer(api: &Api<OrgMembership>, m: &OrgMembership) -> Result<(), Error> {
    let rest: Vec<String> = m
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": m.resource_version()}});
    match api
        .patch(
            &m.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn cleanup(
    m: &OrgMembership,
    api: &Api<OrgMembership>,
    org: Option<&Organization>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !m.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if m.spec.deletion_policy == DeletionPolicy::Orphan {
        remove_finalizer(api, m).await?;
        return Ok(Action::await_change());
    }
    let email = m.spec.user.email.trim();
    let Some(org) = org else {
        // Removed past its finalizer by hand: nothing is left to reach the vendor with.
        let note = format!(
            "Organization {} no longer exists: {email}'s access at the vendor (if any) was not checked or removed; remove it there by hand",
            m.spec.organization_ref.name
        );
        publish(ctx, m, EventType::Warning, "AccessNotRemoved", &note).await;
        remove_finalizer(api, m).await?;
        return Ok(Action::await_change());
    };
    let Some(org_id) = org.status.as_ref().and_then(|s| s.external_id.clone()) else {
        // The organization never existed at the vendor: no access can have been granted.
        remove_finalizer(api, m).await?;
        return Ok(Action::await_change());
    };
    let client = match client_for(ctx, org, true).await? {
        Ok(c) => c,
        Err(e) if super::deletion::namespace_terminating(ctx, m).await => {
            // Nobody will fix the connection of a namespace being deleted (which takes no new
            // Events: the log says it).
            tracing::warn!(
                membership = %m.name_any(),
                namespace = ?m.namespace(),
                "the namespace is being deleted and the connection cannot be used ({e}): {email}'s access at the vendor was not removed"
            );
            remove_finalizer(api, m).await?;
            return Ok(Action::await_change());
        }
        Err(e) => {
            let message = format!(
                "cannot remove {email}'s access at the vendor: {e}; fix the connection or set deletionPolicy: Orphan"
            );
            write(
                api,
                m,
                MembershipPhase::Deleting,
                None,
                vec![ConditionSpec::new(
                    types::READY,
                    false,
                    e.reason(),
                    message.clone(),
                )],
            )
            .await?;
            publish(ctx, m, EventType::Warning, e.reason(), &message).await;
            return Ok(Action::requeue(super::deletion::STUCK_DELETION));
        }
    };
    let Some(members) = client.members() else {
        remove_finalizer(api, m).await?;
        return Ok(Action::await_change());
    };
    let transient = |e: crate::vendors::VendorError| Error::Transient {
        reason: e.category().into(),
        message: e.to_string(),
    };
    // Observed by e-mail, not by a stored id: a create whose response was lost left none, and
    // the finalizer stays until the vendor is seen to grant nothing. Only the person matters
    // here (the spec may not even be valid): no scopes are read, `remove_member` ends whatever
    // access the vendor holds.
    let who = MemberDesired {
        org: org_id.clone(),
        email: email.to_string(),
        first_name: None,
        last_name: None,
        roles: Default::default(),
        scopes: None,
    };
    let observed = members.observe_member(&who).await.map_err(transient)?;
    if observed.holds_access() {
        members
            .remove_member(&org_id, &observed)
            .await
            .map_err(transient)?;
        let after = members.observe_member(&who).await.map_err(transient)?;
        if after.holds_access() {
            return Err(Error::Transient {
                reason: "AccessStillGranted".into(),
                message: format!("the vendor still grants {email} access to {org_id}"),
            });
        }
        if observed.removal_reaches_other_orgs {
            // The removal ended their other access too (Rossum disables the user): those
            // OrgMemberships say so now, not at their next drift check.
            recheck_others(ctx, m, email).await;
        }
        if !super::deletion::namespace_terminating(ctx, m).await {
            publish(
                ctx,
                m,
                EventType::Normal,
                "AccessRemoved",
                &format!("removed {email}'s access to organization {org_id}"),
            )
            .await;
        }
    }
    remove_finalizer(api, m).await?;
    Ok(Action::await_change())
}

/// Makes the other OrgMemberships of `email` in `m`'s namespace reconcile again (not skipped as
/// echoes): their access changed at the vendor although nothing in the cluster did.
async fn recheck_others(ctx: &Context, m: &OrgMembership, email: &str) {
    let ns = m.namespace().unwrap_or_default();
    let api: Api<OrgMembership> = Api::namespaced(ctx.client.clone(), &ns);
    let Ok(all) = api.list(&Default::default()).await else {
        return;
    };
    for other in all.items.iter().filter(|o| {
        o.uid() != m.uid()
            && o.meta().deletion_timestamp.is_none()
            && o.spec.user.email.trim().eq_ignore_ascii_case(email)
    }) {
        ctx.remember(&format!("m/{}", other.uid().unwrap_or_default()), None);
        let patch =
            json!({"metadata": {"annotations": {RECHECK: jiff::Timestamp::now().to_string()}}});
        if let Err(e) = api
            .patch(
                &other.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::debug!(error = %e, "recheck not requested");
        }
    }
}

/// Annotation that asks for a membership to be reconciled again.
const RECHECK: &str = "orgops.io/recheck";
