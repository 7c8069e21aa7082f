//! Deleting an Organization: what its `deletionPolicy` says, where it still can, and never a
//! deletion that waits forever without a reason.
//!
//! - OrgMemberships being deleted with it go first (they need it to reach the vendor).
//! - `Orphan` leaves the organization at the vendor.
//! - `Delete` deletes what orgops created — found by its recorded id, or, when a create never
//!   reported back, by its ownership marker or the pending create — and never an organization
//!   that was adopted (`spec.externalId`).
//! - When the vendor cannot delete, or the connection is unusable, the resource waits for a
//!   human (a condition says what to do) — unless its namespace is being deleted: nobody will
//!   come, so an Event says what was left at the vendor and the finalizer goes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::error::Error;
use super::organization::{
    FINALIZER, publish, remove_finalizer, truncate, warn_event, write_status,
};
use super::sink::pending_create;
use crate::api::conditions::{ConditionSpec, merge, types};
use crate::api::{
    ConnectionKind, DeletionPolicy, OrgMembership, OrgPhase, Organization, OrganizationStatus,
};
use crate::engine::org::created_org;
use crate::engine::{DesiredOrg, OrgState};
use crate::vendors::VendorError;

/// Re-check period while OrgMemberships remove their access first.
const MEMBERSHIPS_FIRST: Duration = Duration::from_secs(2);
/// Re-check period of a deletion waiting for a human: short, because its namespace may start
/// terminating meanwhile (which does not touch the object again), and then nobody will come.
pub const STUCK_DELETION: Duration = Duration::from_secs(20);

/// Applies `deletionPolicy` to a deleted Organization.
pub async fn cleanup(
    org: &Organization,
    api: &Api<Organization>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !org.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    // A terminating namespace takes no new Events: none are attempted there.
    let terminating = namespace_terminating(ctx, org).await;
    let note = |type_: EventType, reason: &'static str, text: String| async move {
        if !terminating {
            publish(ctx, org, type_, reason, &text, "Delete").await;
        }
    };
    let waiting = memberships_being_deleted(ctx, org).await?;
    if waiting > 0 {
        let message = format!(
            "waiting for {waiting} OrgMembership(s) of this organization to remove their access first"
        );
        let status = deleting(
            org,
            vec![ConditionSpec::new(
                types::READY,
                false,
                "WaitingForMemberships",
                message,
            )],
        );
        write_status(api, org, status, false).await?;
        return Ok(Action::requeue(MEMBERSHIPS_FIRST));
    }
    if org.spec.deletion_policy == DeletionPolicy::Orphan {
        let text = match org.status.as_ref().and_then(|s| s.external_id.as_ref()) {
            Some(id) => format!("deletionPolicy Orphan: organization {id} stays at the vendor"),
            None => "nothing was created at the vendor".to_string(),
        };
        note(EventType::Normal, "Orphaned", text).await;
        remove_finalizer(api, org).await?;
        return Ok(Action::await_change());
    }
    let state = OrgState {
        external_id: org.status.as_ref().and_then(|s| s.external_id.clone()),
        pending_create: pending_create(org),
        usage_observed_at: None,
    };
    if state.external_id.is_none() && state.pending_create.is_none() {
        // Nothing was ever asked of the vendor.
        remove_finalizer(api, org).await?;
        return Ok(Action::await_change());
    }
    let stuck = Stuck {
        org,
        api,
        ctx,
        terminating,
    };
    let client = match ctx
        .connections
        .for_organization(&ctx.client, org, true)
        .await
    {
        Ok(c) => c.client,
        Err(e) if e.is_permanent() => {
            return stuck
                .give_up(e.reason(), format!("cannot reach the vendor: {e}"), false)
                .await;
        }
        Err(e) => {
            return Err(Error::Transient {
                reason: e.reason().into(),
                message: e.to_string(),
            });
        }
    };
    let desired = match DesiredOrg::from_resource(org) {
        Ok(d) => d,
        Err(e) => {
            return stuck
                .give_up("InvalidSpec", format!("the spec is invalid: {e}"), false)
                .await;
        }
    };
    if desired.external_id.is_some() {
        let text = format!(
            "organization {} was adopted, not created by orgops: deletionPolicy Delete leaves it at the vendor",
            desired.external_id.as_deref().unwrap_or_default()
        );
        note(EventType::Normal, "Orphaned", text).await;
        remove_finalizer(api, org).await?;
        return Ok(Action::await_change());
    }
    let id = match created_org(client.as_ref(), &desired, &state, &ctx.engine).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            let text = "the pending create made no organization at the vendor: nothing to delete";
            note(EventType::Normal, "Deleted", text.to_string()).await;
            remove_finalizer(api, org).await?;
            return Ok(Action::await_change());
        }
        Err(e) => return stuck.vendor_failed(e).await,
    };
    match client.delete_org(&id).await {
        Ok(()) => {
            note(
                EventType::Normal,
                "Deleted",
                format!("deleted organization {id} at the vendor"),
            )
            .await;
            remove_finalizer(api, org).await?;
            Ok(Action::await_change())
        }
        Err(e @ VendorError::Unsupported { .. }) => {
            stuck
                .give_up("DeleteUnsupported", format!("organization {id}: {e}"), true)
                .await
        }
        Err(e) => stuck.vendor_failed(e).await,
    }
}

/// A deletion that cannot do what its policy says.
struct Stuck<'a> {
    org: &'a Organization,
    api: &'a Api<Organization>,
    ctx: &'a Context,
    terminating: bool,
}

impl Stuck<'_> {
    async fn vendor_failed(&self, e: VendorError) -> Result<Action, Error> {
        if e.is_transient() {
            return Err(Error::Transient {
                reason: e.category().into(),
                message: e.to_string(),
            });
        }
        self.give_up(e.category(), e.to_string(), false).await
    }

    /// In a namespace being deleted: an Event says what stays at the vendor, and the finalizer
    /// goes. Otherwise the resource waits for a human, with a condition saying what to do.
    async fn give_up(
        &self,
        reason: &str,
        what: String,
        unsupported: bool,
    ) -> Result<Action, Error> {
        let (org, ctx) = (self.org, self.ctx);
        if self.terminating {
            let note = format!(
                "Organization {}/{} was deleted with its namespace and left at the vendor: {what}",
                org.namespace().unwrap_or_default(),
                org.name_any()
            );
            left_behind(ctx, org, reason, &note).await;
            remove_finalizer(self.api, org).await?;
            return Ok(Action::await_change());
        }
        let message = format!(
            "cannot delete the organization at the vendor: {what}; fix that or set deletionPolicy: Orphan"
        );
        let mut conds = vec![ConditionSpec::new(
            types::READY,
            false,
            reason,
            message.clone(),
        )];
        if unsupported {
            conds.push(ConditionSpec::new(
                types::UNSUPPORTED,
                true,
                reason,
                message.clone(),
            ));
        }
        write_status(self.api, org, deleting(org, conds), false).await?;
        warn_event(ctx, org, reason, &message).await;
        Ok(Action::requeue(STUCK_DELETION))
    }
}

/// Says what the deletion of an Organization in a terminating namespace could not do. That
/// namespace takes no new Events, so the Event goes to the ClusterVendorConnection the
/// Organization used (which outlives it), and to the log.
async fn left_behind(ctx: &Context, org: &Organization, reason: &str, note: &str) {
    tracing::warn!(org = %org.name_any(), namespace = ?org.namespace(), reason, "{note}");
    if let Some(r) = &org.spec.connection_ref
        && r.kind == ConnectionKind::ClusterVendorConnection
    {
        let connection = ObjectReference {
            api_version: Some("orgops.io/v1alpha1".into()),
            kind: Some("ClusterVendorConnection".into()),
            name: Some(r.name.clone()),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(truncate(note, 1000)),
            action: "Delete".into(),
            secondary: Some(org.object_ref(&())),
        };
        if let Err(e) = ctx.recorder.publish(&event, &connection).await {
            tracing::debug!(error = %e, "event not published");
        }
    }
}

fn deleting(org: &Organization, conds: Vec<ConditionSpec>) -> OrganizationStatus {
    let previous = org.status.clone().unwrap_or_default();
    OrganizationStatus {
        phase: Some(OrgPhase::Deleting),
        conditions: merge(
            &previous.conditions,
            &conds,
            org.metadata.generation,
            jiff::Timestamp::now(),
        ),
        ..previous
    }
}

/// OrgMemberships of `org` that are being deleted and still hold orgops' finalizer.
async fn memberships_being_deleted(ctx: &Context, org: &Organization) -> Result<usize, Error> {
    let ns = org.namespace().ok_or(Error::NoNamespace)?;
    let all = Api::<OrgMembership>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    Ok(all
        .items
        .iter()
        .filter(|m| {
            m.spec.organization_ref.name == org.name_any()
                && m.meta().deletion_timestamp.is_some()
                && m.finalizers().iter().any(|f| f == FINALIZER)
                && m.spec.deletion_policy == DeletionPolicy::Delete
        })
        .count())
}

/// True when the object's namespace is being deleted (false when that cannot be read).
pub async fn namespace_terminating<K: Resource>(ctx: &Context, obj: &K) -> bool {
    let Some(ns) = obj.meta().namespace.as_deref() else {
        return false;
    };
    match Api::<Namespace>::all(ctx.client.clone()).get_opt(ns).await {
        Ok(Some(n)) => {
            n.metadata.deletion_timestamp.is_some()
                || n.status.and_then(|s| s.phase).as_deref() == Some("Terminating")
        }
        Ok(None) => true,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the namespace");
            false
        }
    }
}
