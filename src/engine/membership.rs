//! Membership reconcile: observe the person and their access, decide (pure), act, report.
//!
//! The engine works on the vendor-neutral observation of [`MemberObserved`]: absent, invited or
//! active, with a set of roles and a set of scopes. How a vendor stores that (Rossum users and
//! organization-group memberships, OpenLattice members and role grants, Dataloop and
//! Rendered.ai invitations) stays inside its [`MemberClient`](crate::vendors::MemberClient).

use std::collections::BTreeSet;

use crate::api::MembershipPhase;
use crate::api::conditions::{ConditionSpec, ready_of, types};
use crate::engine::Mode;
use crate::engine::changes::Change;
use crate::vendors::{
    MemberChange, MemberDesired, MemberObserved, Presence, RoleModel, VendorClient,
};

/// The engine's view of an `OrgMembership`, checked at the boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredMembership {
    /// `namespace/name` of the Organization.
    pub organization: String,
    /// Organization resource name.
    pub organization_name: String,
    /// E-mail.
    pub email: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// `spec.role`.
    pub role: String,
    /// `spec.roles`: roles the organization defines.
    pub org_roles: BTreeSet<String>,
    /// `spec.scopes` and `spec.queues`; `None` when neither is set (scopes left as they are).
    pub scopes: Option<BTreeSet<String>>,
    /// Deletion policy.
    pub deletion_policy: crate::api::DeletionPolicy,
}

impl DesiredMembership {
    /// Converts a resource, checking what the schema checks (for the CLI path).
    pub fn from_resource(
        m: &crate::api::OrgMembership,
    ) -> Result<Self, crate::engine::InvalidSpec> {
        let ns = m
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let invalid = |field: &str, message: &str| crate::engine::InvalidSpec {
            field: field.into(),
            message: message.into(),
        };
        let email = m.spec.user.email.trim();
        let valid_email = email.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !email.contains(char::is_whitespace)
        });
        if !valid_email {
            return Err(invalid(
                "spec.user.email",
                "must be an e-mail address like george@example.com",
            ));
        }
        if m.spec.organization_ref.name.is_empty() {
            return Err(invalid("spec.organizationRef.name", "is required"));
        }
        if m.spec.role.trim().is_empty() {
            return Err(invalid("spec.role", "is required"));
        }
        Ok(Self {
            organization: format!("{ns}/{}", m.spec.organization_ref.name),
            organization_name: m.spec.organization_ref.name.clone(),
            email: email.to_string(),
            first_name: m.spec.user.first_name.clone(),
            last_name: m.spec.user.last_name.clone(),
            role: m.spec.role.trim().to_string(),
            org_roles: m.spec.roles.iter().map(|r| r.trim().to_string()).collect(),
            scopes: (m.spec.scopes.is_some() || m.spec.queues.is_some()).then(|| {
                m.spec
                    .scopes
                    .iter()
                    .flatten()
                    .chain(m.spec.queues.iter().flatten())
                    .map(|q| q.trim().to_string())
                    .collect()
            }),
            deletion_policy: m.spec.deletion_policy,
        })
    }

    /// The vendor-facing request, once the organization's id is known.
    pub fn member(&self, org_external_id: &str) -> MemberDesired {
        MemberDesired {
            org: org_external_id.to_string(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            roles: std::iter::once(self.role.clone())
                .chain(self.org_roles.iter().cloned())
                .collect(),
            scopes: self.scopes.clone(),
        }
    }
}

/// Condition type for roles the vendor cannot give through this organization.
pub const ROLE_CONFLICT: &str = "RoleConflict";

/// The plan for one membership.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MemberPlan {
    /// Changes in order.
    pub changes: Vec<MemberChange>,
    /// Why the roles cannot be what the spec asks, if so.
    pub role_conflict: Option<String>,
    /// Why access cannot be given here without undoing something else, if so.
    pub blocked: Option<String>,
}

/// A spec the vendor cannot accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidMember(pub String);

/// Checks the desired roles and scopes against what the vendor's memberships have. Pure.
pub fn check_desired(desired: &MemberDesired, model: &RoleModel) -> Result<(), InvalidMember> {
    if !desired
        .roles
        .iter()
        .any(|r| model.roles.contains(&r.as_str()))
    {
        return Err(InvalidMember(format!(
            "spec.role: {} is not a role of this vendor; use one of {}",
            desired
                .roles
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            model.roles.join(", ")
        )));
    }
    let extra: Vec<&String> = desired
        .roles
        .iter()
        .filter(|r| !model.roles.contains(&r.as_str()))
        .collect();
    if !extra.is_empty() && !model.org_roles {
        return Err(InvalidMember(format!(
            "spec.roles: this vendor has no roles defined per organization (got {}); use spec.role with one of {}",
            extra
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            model.roles.join(", ")
        )));
    }
    if desired.scopes.as_ref().is_some_and(|s| !s.is_empty()) && model.scopes.is_none() {
        return Err(InvalidMember(
            "spec.scopes: this vendor's memberships have no scopes; remove them".into(),
        ));
    }
    Ok(())
}

/// Decides what to change. Pure.
pub fn plan_member(desired: &MemberDesired, observed: &MemberObserved) -> MemberPlan {
    if let Some(why) = &observed.blocked {
        return MemberPlan {
            blocked: Some(why.clone()),
            ..MemberPlan::default()
        };
    }
    if observed.presence == Presence::Absent {
        return MemberPlan {
            changes: vec![MemberChange::Add],
            ..MemberPlan::default()
        };
    }
    let mut plan = MemberPlan::default();
    let grant: BTreeSet<String> = desired.roles.difference(&observed.roles).cloned().collect();
    let revoke: BTreeSet<String> = observed.roles.difference(&desired.roles).cloned().collect();
    if !grant.is_empty() || !revoke.is_empty() {
        match &observed.roles_fixed {
            // Changing the roles here would change them everywhere (and a second OrgMembership
            // could flip them back): report, do not touch.
            Some(why) => {
                plan.role_conflict = Some(format!(
                    "{why}: the roles are {}, not {}",
                    list(&observed.roles),
                    list(&desired.roles)
                ))
            }
            None => plan.changes.push(MemberChange::SetRoles { grant, revoke }),
        }
    }
    // Scopes (Dataloop project roles) are access of their own: granted only once the person
    // has accepted the invitation, as the Invited condition says access starts then.
    // Unset scopes are not managed: access given at the vendor by other means stays.
    if desired
        .scopes
        .as_ref()
        .is_some_and(|scopes| &observed.scopes != scopes)
        && observed.presence != Presence::Invited
    {
        plan.changes.push(MemberChange::SetScopes);
    }
    plan
}

fn list(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The outcome of a membership reconcile.
#[derive(Clone, Debug)]
pub struct MemberReport {
    /// The vendor id of the access (user, membership or invitation).
    pub external_id: Option<String>,
    /// Phase.
    pub phase: MembershipPhase,
    /// Conditions.
    pub conditions: Vec<ConditionSpec>,
    /// Ready.
    pub ready: bool,
    /// Something was changed at the vendor.
    pub changed: bool,
    /// A failure retrying may fix.
    pub transient: bool,
    /// Observe-only: what applying would change.
    pub changes: Vec<Change>,
}

impl MemberReport {
    fn failed(reason: &str, message: String, transient: bool) -> Self {
        Self {
            external_id: None,
            phase: MembershipPhase::Failed,
            conditions: vec![ConditionSpec::new(types::READY, false, reason, message)],
            ready: false,
            changed: false,
            transient,
            changes: Vec::new(),
        }
    }

    /// The Ready condition's reason.
    pub fn ready_reason(&self) -> &str {
        ready_of(&self.conditions)
            .map(|c| c.reason.as_str())
            .unwrap_or("")
    }

    /// The Ready condition's message.
    pub fn ready_message(&self) -> &str {
        ready_of(&self.conditions)
            .map(|c| c.message.as_str())
            .unwrap_or("")
    }
}

/// Reconciles one person's access to one organization.
pub async fn reconcile_member(
    vendor: &dyn VendorClient,
    desired: &MemberDesired,
    mode: Mode,
) -> MemberReport {
    let Some(members) = vendor.members() else {
        return MemberReport::failed(
            "Unsupported",
            format!("{} memberships are not supported", vendor.vendor()),
            false,
        );
    };
    if let Some(model) = vendor.capabilities().members
        && let Err(e) = check_desired(desired, &model)
    {
        return MemberReport::failed("InvalidSpec", e.0, false);
    }
    if let Err(e) = vendor.verify_credentials().await {
        return MemberReport::failed(e.category(), e.to_string(), e.is_transient());
    }
    let mut changed = false;
    let mut last_error: Option<(String, String, bool)> = None;
    // An add whose outcome is unknown — or that lost a race with another reconcile of the
    // same person — is resolved by observing again, never by re-sending blindly.
    for _round in 0..3 {
        let observed = match members.observe_member(desired).await {
            Ok(o) => o,
            Err(e) => return MemberReport::failed(e.category(), e.to_string(), e.is_transient()),
        };
        let plan = plan_member(desired, &observed);
        if plan.changes.is_empty() || mode == Mode::ObserveOnly {
            let mut report = finish(&observed, &plan, changed, mode);
            if mode == Mode::ObserveOnly {
                report.changes = planned_changes(desired, &plan.changes);
            }
            return report;
        }
        for change in &plan.changes {
            match members.change_member(desired, &observed, change).await {
                Ok(()) => changed = true,
                Err(e) => {
                    let adds = matches!(change, MemberChange::Add);
                    let retry = e.is_outcome_unknown() || e.is_transient() || adds;
                    last_error = Some((
                        e.category().to_string(),
                        e.to_string(),
                        e.is_transient() || e.is_outcome_unknown(),
                    ));
                    if !retry {
                        return MemberReport::failed(e.category(), e.to_string(), false);
                    }
                    break;
                }
            }
        }
    }
    match last_error {
        Some((reason, message, transient)) => MemberReport::failed(&reason, message, transient),
        None => MemberReport::failed(
            "VendorUnavailable",
            "the access did not settle; retrying".into(),
            true,
        ),
    }
}

/// The changes `plan` would make, as plan lines. Pure.
pub fn planned_changes(desired: &MemberDesired, plan: &[MemberChange]) -> Vec<Change> {
    plan.iter()
        .map(|c| match c {
            MemberChange::Add => Change::AddMember {
                email: desired.email.clone(),
                roles: desired.roles.clone(),
                scopes: desired.scopes.clone(),
            },
            MemberChange::SetRoles { grant, revoke } => Change::SetRoles {
                email: desired.email.clone(),
                grant: grant.clone(),
                revoke: revoke.clone(),
            },
            MemberChange::SetScopes => Change::SetScopes {
                email: desired.email.clone(),
                scopes: desired.scopes_to_give(),
            },
        })
        .collect()
}

fn finish(observed: &MemberObserved, plan: &MemberPlan, changed: bool, mode: Mode) -> MemberReport {
    let mut conditions = Vec::new();
    let drift = !plan.changes.is_empty();
    match &plan.role_conflict {
        Some(msg) => conditions.push(ConditionSpec::new(
            ROLE_CONFLICT,
            true,
            "RolesFixedByVendor",
            msg.clone(),
        )),
        None => conditions.push(ConditionSpec::new(
            ROLE_CONFLICT,
            false,
            "NoConflict",
            "the roles are as specified",
        )),
    }
    let (phase, ready, reason, message) = if let Some(why) = &plan.blocked {
        (MembershipPhase::Failed, false, "AccessBlocked", why.clone())
    } else if drift && mode == Mode::ObserveOnly {
        (
            MembershipPhase::Failed,
            false,
            "DriftDetected",
            "access differs from the spec; not repaired because the Organization is suspended"
                .to_string(),
        )
    } else if let Some(msg) = &plan.role_conflict {
        (MembershipPhase::Failed, false, "RoleConflict", msg.clone())
    } else if observed.presence == Presence::Invited {
        (
            MembershipPhase::Invited,
            false,
            "Invited",
            "invited; access starts when the person accepts the invitation".to_string(),
        )
    } else {
        (
            MembershipPhase::Ready,
            true,
            "Ready",
            "the user has the specified access".to_string(),
        )
    };
    conditions.push(ConditionSpec::new(types::READY, ready, reason, message));
    MemberReport {
        external_id: observed.id.clone(),
        phase,
        conditions,
        ready,
        changed,
        transient: false,
        changes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn desired(roles: &[&str], scopes: &[&str]) -> MemberDesired {
        MemberDesired {
            org: "2".into(),
            email: "george@example.com".into(),
            first_name: None,
            last_name: None,
            roles: set(roles),
            scopes: Some(set(scopes)),
        }
    }

    fn active(roles: &[&str], scopes: &[&str]) -> MemberObserved {
        MemberObserved {
            presence: Presence::Active,
            id: Some("user/7".into()),
            roles: set(roles),
            scopes: set(scopes),
            ..MemberObserved::absent()
        }
    }

    const MODEL: RoleModel = RoleModel {
        roles: &["admin", "annotator"],
        org_roles: false,
        scopes: Some("queues"),
    };

    #[test]
    fn unset_scopes_are_left_as_the_vendor_has_them() {
        let unmanaged = MemberDesired {
            scopes: None,
            ..desired(&["annotator"], &[])
        };
        let plan = plan_member(&unmanaged, &active(&["annotator"], &["Invoices"]));
        assert!(plan.changes.is_empty(), "{plan:?}");
        // `[]` is managed: none.
        let plan = plan_member(
            &desired(&["annotator"], &[]),
            &active(&["annotator"], &["Invoices"]),
        );
        assert_eq!(plan.changes, [MemberChange::SetScopes]);
    }

    #[test]
    fn absent_people_are_added_with_everything_at_once() {
        let plan = plan_member(&desired(&["admin"], &["A"]), &MemberObserved::absent());
        assert_eq!(plan.changes, vec![MemberChange::Add]);
    }

    #[test]
    fn roles_are_granted_and_revoked_and_scopes_set() {
        let plan = plan_member(
            &desired(&["member", "analysts"], &["A", "B"]),
            &active(&["member", "auditors"], &["A"]),
        );
        assert_eq!(
            plan.changes,
            vec![
                MemberChange::SetRoles {
                    grant: set(&["analysts"]),
                    revoke: set(&["auditors"])
                },
                MemberChange::SetScopes
            ]
        );
        let in_sync = plan_member(
            &desired(&["admin"], &["A", "B"]),
            &active(&["admin"], &["B", "A"]),
        );
        assert!(in_sync.changes.is_empty() && in_sync.role_conflict.is_none());
    }

    #[test]
    fn fixed_roles_are_reported_not_changed() {
        let mut o = active(&["annotator"], &[]);
        o.roles_fixed = Some("the vendor keeps one role per user".into());
        let plan = plan_member(&desired(&["admin"], &[]), &o);
        assert!(plan.changes.is_empty());
        let why = plan.role_conflict.unwrap();
        assert!(why.contains("one role per user") && why.contains("annotator"));
        assert!(
            plan_member(&desired(&["annotator"], &[]), &o)
                .role_conflict
                .is_none()
        );
    }

    #[test]
    fn blocked_access_changes_nothing() {
        let o = MemberObserved {
            blocked: Some("re-enable them in organization 1 first".into()),
            ..MemberObserved::absent()
        };
        let plan = plan_member(&desired(&["admin"], &[]), &o);
        assert!(plan.changes.is_empty());
        assert!(plan.blocked.unwrap().contains("organization 1"));
    }

    #[test]
    fn an_invitation_is_not_ready_and_not_a_failure() {
        let o = MemberObserved {
            presence: Presence::Invited,
            id: Some("invitation/9".into()),
            roles: set(&["admin"]),
            ..MemberObserved::absent()
        };
        let plan = plan_member(&desired(&["admin"], &[]), &o);
        assert!(plan.changes.is_empty());
        let r = finish(&o, &plan, false, Mode::Apply);
        assert_eq!(r.phase, MembershipPhase::Invited);
        assert!(!r.ready && !r.transient);
        assert_eq!(r.ready_reason(), "Invited");
    }

    #[test]
    fn scopes_wait_until_the_invitation_is_accepted() {
        let mut o = MemberObserved {
            presence: Presence::Invited,
            id: Some("invitation/9".into()),
            roles: set(&["member"]),
            ..MemberObserved::absent()
        };
        let want = desired(&["member"], &["Traffic cameras:annotator"]);
        assert!(plan_member(&want, &o).changes.is_empty());
        o.presence = Presence::Active;
        assert_eq!(
            plan_member(&want, &o).changes,
            vec![MemberChange::SetScopes]
        );
    }

    #[test]
    fn unknown_roles_org_roles_and_scopes_are_invalid_where_the_vendor_lacks_them() {
        let e = check_desired(&desired(&["overlord"], &[]), &MODEL).unwrap_err();
        assert!(e.0.contains("spec.role") && e.0.contains("admin"));
        let e = check_desired(&desired(&["admin", "analysts"], &[]), &MODEL).unwrap_err();
        assert!(e.0.contains("spec.roles") && e.0.contains("analysts"));
        let with_org_roles = RoleModel {
            org_roles: true,
            scopes: None,
            ..MODEL
        };
        assert!(check_desired(&desired(&["admin", "analysts"], &[]), &with_org_roles).is_ok());
        let e = check_desired(&desired(&["admin"], &["A"]), &with_org_roles).unwrap_err();
        assert!(e.0.contains("spec.scopes"));
        assert!(check_desired(&desired(&["admin"], &["A"]), &MODEL).is_ok());
    }
}
