//! Membership reconcile: observe the person and their access, decide (pure), act, report.

use crate::api::MembershipPhase;
use crate::api::conditions::{ConditionSpec, ready_of, types};
use crate::engine::Mode;
use crate::vendors::{Access, MemberAction, MemberDesired, MemberObserved, VendorClient};

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
    /// Role.
    pub role: String,
    /// Queue names.
    pub queues: Vec<String>,
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
            role: m.spec.role.clone(),
            queues: m.spec.queues.clone(),
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
            role: self.role.clone(),
            queues: self.queues.clone(),
        }
    }
}

/// Condition type for a role the vendor cannot give in this org.
pub const ROLE_CONFLICT: &str = "RoleConflict";

/// The plan for one membership.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MemberPlan {
    /// Actions in order.
    pub actions: Vec<MemberAction>,
    /// Why the role cannot be what the spec asks, if so.
    pub role_conflict: Option<String>,
    /// Why access cannot be given here without undoing something else, if so.
    pub blocked: Option<String>,
}

/// A spec the vendor cannot accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidMember(pub String);

/// Decides what to change. Pure.
pub fn plan_member(
    desired: &MemberDesired,
    observed: &MemberObserved,
    roles: &[&str],
    one_role_per_user: bool,
) -> Result<MemberPlan, InvalidMember> {
    if !roles.contains(&desired.role.as_str()) {
        return Err(InvalidMember(format!(
            "spec.role: {:?} is not a role of this vendor; use one of {}",
            desired.role,
            roles.join(", ")
        )));
    }
    let mut actions = Vec::new();
    let mut role_conflict = None;
    let mut want_queues = desired.queues.clone();
    want_queues.sort();
    let Some(person) = &observed.person else {
        return Ok(MemberPlan {
            actions: vec![MemberAction::CreateUser],
            ..MemberPlan::default()
        });
    };
    if !person.active {
        if !matches!(observed.access, Access::Primary { .. }) {
            // A disabled user lost their access to their own organization on purpose (its
            // OrgMembership was removed). Re-enabling them for this one would give that back.
            return Ok(MemberPlan {
                blocked: Some(format!(
                    "the user is disabled at the vendor (their access to their own organization {} was removed); re-enabling them for this organization would restore that access too. Give them access to organization {} again first, or remove this OrgMembership",
                    person.primary_org, person.primary_org
                )),
                ..MemberPlan::default()
            });
        }
        actions.push(MemberAction::Reactivate);
    }
    let has_role = person.roles.iter().any(|r| r == &desired.role);
    match &observed.access {
        Access::Primary { queues } => {
            if !has_role {
                actions.push(MemberAction::SetRole(desired.role.clone()));
            }
            if *queues != want_queues {
                actions.push(MemberAction::SetQueues(want_queues));
            }
        }
        Access::Membership { queues, .. } => {
            if *queues != want_queues {
                actions.push(MemberAction::SetQueues(want_queues));
            }
        }
        Access::None => actions.push(MemberAction::AddMembership),
    }
    if !matches!(observed.access, Access::Primary { .. }) && !has_role && one_role_per_user {
        // The role belongs to the user's primary organization: changing it here would change
        // it everywhere, and a second OrgMembership could flip it back. Say so; do not touch it.
        role_conflict = Some(format!(
            "the vendor keeps one role per user: this user's role is {} (set in organization {}), not {:?}; access is granted with that role",
            if person.roles.is_empty() {
                "none".to_string()
            } else {
                person.roles.join(", ")
            },
            person.primary_org,
            desired.role
        ));
    }
    Ok(MemberPlan {
        actions,
        role_conflict,
        blocked: None,
    })
}

/// The outcome of a membership reconcile.
#[derive(Clone, Debug)]
pub struct MemberReport {
    /// The user id (membership id where access is a membership).
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

fn external_id(o: &MemberObserved) -> Option<String> {
    match (&o.access, &o.person) {
        (Access::Membership { id, .. }, _) => Some(format!("membership/{id}")),
        (_, Some(p)) => Some(format!("user/{}", p.user_id)),
        _ => None,
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
    if let Err(e) = vendor.verify_credentials().await {
        return MemberReport::failed(e.category(), e.to_string(), e.is_transient());
    }
    let mut changed = false;
    let mut last_error: Option<(String, String, bool)> = None;
    // A create whose outcome is unknown — or that lost a race with another reconcile of the
    // same person — is resolved by observing again, never by re-sending blindly.
    for _round in 0..3 {
        let observed = match members.observe_member(&desired.org, &desired.email).await {
            Ok(o) => o,
            Err(e) => return MemberReport::failed(e.category(), e.to_string(), e.is_transient()),
        };
        let plan = match plan_member(
            desired,
            &observed,
            members.roles(),
            members.one_role_per_user(),
        ) {
            Ok(p) => p,
            Err(e) => return MemberReport::failed("InvalidSpec", e.0, false),
        };
        if plan.actions.is_empty() || mode == Mode::ObserveOnly {
            return finish(&observed, &plan, changed, mode);
        }
        for action in &plan.actions {
            match members.act_member(desired, &observed, action).await {
                Ok(()) => changed = true,
                Err(e) => {
                    let creates = matches!(
                        action,
                        MemberAction::CreateUser | MemberAction::AddMembership
                    );
                    let retry = e.is_outcome_unknown() || e.is_transient() || creates;
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

fn finish(observed: &MemberObserved, plan: &MemberPlan, changed: bool, mode: Mode) -> MemberReport {
    let mut conditions = Vec::new();
    let drift = !plan.actions.is_empty();
    match &plan.role_conflict {
        Some(msg) => conditions.push(ConditionSpec::new(
            ROLE_CONFLICT,
            true,
            "OneRolePerUser",
            msg.clone(),
        )),
        None => conditions.push(ConditionSpec::new(
            ROLE_CONFLICT,
            false,
            "NoConflict",
            "the role is as specified",
        )),
    }
    let (ready, reason, message) = if let Some(why) = &plan.blocked {
        (false, "UserDisabled", why.clone())
    } else if drift && mode == Mode::ObserveOnly {
        (
            false,
            "DriftDetected",
            "access differs from the spec; not repaired because the Organization is suspended"
                .to_string(),
        )
    } else if let Some(msg) = &plan.role_conflict {
        (false, "RoleConflict", msg.clone())
    } else {
        (
            true,
            "Ready",
            "the user has the specified access".to_string(),
        )
    };
    conditions.push(ConditionSpec::new(types::READY, ready, reason, message));
    MemberReport {
        external_id: external_id(observed),
        phase: if ready {
            MembershipPhase::Ready
        } else {
            MembershipPhase::Failed
        },
        conditions,
        ready,
        changed,
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::Person;

    fn desired(role: &str, queues: &[&str]) -> MemberDesired {
        MemberDesired {
            org: "2".into(),
            email: "george@example.com".into(),
            first_name: None,
            last_name: None,
            role: role.into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
        }
    }

    fn person(org: &str, role: &str) -> Option<Person> {
        Some(Person {
            user_id: "7".into(),
            primary_org: org.into(),
            roles: vec![role.into()],
            active: true,
        })
    }

    const ROLES: &[&str] = &["admin", "annotator"];

    #[test]
    fn unknown_people_are_created() {
        let o = MemberObserved {
            person: None,
            access: Access::None,
        };
        assert_eq!(
            plan_member(&desired("admin", &[]), &o, ROLES, true)
                .unwrap()
                .actions,
            vec![MemberAction::CreateUser]
        );
    }

    #[test]
    fn people_of_other_orgs_get_a_membership_and_a_role_conflict_is_reported_not_fixed() {
        let o = MemberObserved {
            person: person("1", "annotator"),
            access: Access::None,
        };
        let plan = plan_member(&desired("admin", &[]), &o, ROLES, true).unwrap();
        assert_eq!(plan.actions, vec![MemberAction::AddMembership]);
        assert!(plan.role_conflict.unwrap().contains("one role per user"));
        let same_role = plan_member(&desired("annotator", &[]), &o, ROLES, true).unwrap();
        assert!(same_role.role_conflict.is_none());
    }

    #[test]
    fn primary_users_get_role_and_queues_repaired() {
        let o = MemberObserved {
            person: person("2", "annotator"),
            access: Access::Primary {
                queues: vec!["A".into()],
            },
        };
        let plan = plan_member(&desired("admin", &["B", "A"]), &o, ROLES, true).unwrap();
        assert_eq!(
            plan.actions,
            vec![
                MemberAction::SetRole("admin".into()),
                MemberAction::SetQueues(vec!["A".into(), "B".into()])
            ]
        );
        let in_sync = MemberObserved {
            person: person("2", "admin"),
            access: Access::Primary {
                queues: vec!["A".into(), "B".into()],
            },
        };
        assert!(
            plan_member(&desired("admin", &["A", "B"]), &in_sync, ROLES, true)
                .unwrap()
                .actions
                .is_empty()
        );
    }

    #[test]
    fn a_disabled_user_is_re_enabled_only_through_their_own_organization() {
        let disabled = |org: &str| {
            let mut p = person(org, "admin");
            if let Some(p) = p.as_mut() {
                p.active = false;
            }
            p
        };
        // Through a membership: re-enabling would undo the removal of their primary access.
        let elsewhere = MemberObserved {
            person: disabled("1"),
            access: Access::Membership {
                id: "5".into(),
                queues: vec![],
            },
        };
        let plan = plan_member(&desired("admin", &[]), &elsewhere, ROLES, true).unwrap();
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert!(plan.blocked.unwrap().contains("organization 1"));
        let no_access = MemberObserved {
            access: Access::None,
            ..elsewhere
        };
        let plan = plan_member(&desired("admin", &[]), &no_access, ROLES, true).unwrap();
        assert!(plan.actions.is_empty() && plan.blocked.is_some());
        // Their own organization asks for them again: that may re-enable them.
        let own = MemberObserved {
            person: disabled("2"),
            access: Access::Primary { queues: vec![] },
        };
        let plan = plan_member(&desired("admin", &[]), &own, ROLES, true).unwrap();
        assert_eq!(plan.actions, vec![MemberAction::Reactivate]);
        assert!(plan.blocked.is_none());
    }

    #[test]
    fn unknown_roles_are_invalid() {
        let o = MemberObserved {
            person: None,
            access: Access::None,
        };
        let e = plan_member(&desired("overlord", &[]), &o, ROLES, true).unwrap_err();
        assert!(e.0.contains("spec.role") && e.0.contains("admin"));
    }
}
