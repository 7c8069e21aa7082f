//! Memberships at Rossum (design/vendors/rossum.md §2): `username` is global, so a person who
//! already exists somewhere in the organization group gets an organization-group membership into
//! the target org; a person who exists nowhere becomes a user of the target org. The role is
//! the user's `groups` (role URLs, resolved by name in each org) — one role per user, so a
//! person reached through a membership has their roles fixed by their own organization.
//! Users cannot be deleted, only disabled: a disabled user is absent from their own
//! organization (adding them back re-enables them) and blocked everywhere else.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use super::client::{RossumClient, Scope, id_from_url};
use super::models::{MembershipId, OrganizationGroupId, OrganizationId, UserId};
use crate::vendors::{
    MemberChange, MemberClient, MemberDesired, MemberObserved, Presence, VendorError,
};

/// Role names Rossum lets the API assign (`organization_group_admin` it does not).
pub const ROLES: &[&str] = &[
    "viewer",
    "annotator",
    "annotator_limited",
    "annotator_embedded",
    "manager",
    "admin",
    "approver",
];

fn org_id(s: &str) -> Result<OrganizationId, VendorError> {
    s.parse()
        .map(OrganizationId)
        .map_err(|_| VendorError::NotFound(format!("{s:?} is not a Rossum organization id")))
}

impl RossumClient {
    async fn group_id(&self) -> Result<OrganizationGroupId, VendorError> {
        let id = self
            .group
            .get_or_try_init(|| async {
                let groups = self.organization_groups().await?;
                groups
                    .first()
                    .and_then(|g| g["id"].as_u64())
                    .map(OrganizationGroupId)
                    .ok_or_else(|| {
                        VendorError::Forbidden(
                            "no organization group is visible to these credentials".into(),
                        )
                    })
            })
            .await?;
        Ok(*id)
    }

    /// Queue URL by name in `org`.
    async fn queue_urls(
        &self,
        org: OrganizationId,
    ) -> Result<HashMap<String, String>, VendorError> {
        Ok(self
            .queues(org)
            .await?
            .into_iter()
            .map(|q| (q.name, q.url))
            .collect())
    }

    async fn queue_names(
        &self,
        org: OrganizationId,
        urls: &[String],
    ) -> Result<BTreeSet<String>, VendorError> {
        let by_id: HashMap<u64, String> = self
            .queues(org)
            .await?
            .into_iter()
            .map(|q| (q.id.0, q.name))
            .collect();
        Ok(urls
            .iter()
            .filter_map(|u| id_from_url(u))
            .filter_map(|id| by_id.get(&id).cloned())
            .collect())
    }

    async fn resolve_queues(
        &self,
        org: OrganizationId,
        names: &BTreeSet<String>,
    ) -> Result<Vec<String>, VendorError> {
        let urls = self.queue_urls(org).await?;
        names
            .iter()
            .map(|n| {
                urls.get(n).cloned().ok_or_else(|| {
                    VendorError::Rejected(format!(
                        "organization {org} has no queue named {n:?} (spec.queues)"
                    ))
                })
            })
            .collect()
    }

    async fn role_urls(
        &self,
        org: OrganizationId,
        roles: &BTreeSet<String>,
    ) -> Result<Vec<String>, VendorError> {
        let mut urls = Vec::new();
        for role in roles {
            let url = self.role(org, role).await?.map(|g| g.url).ok_or_else(|| {
                VendorError::Rejected(format!("organization {org} has no role {role:?}"))
            })?;
            urls.push(url);
        }
        Ok(urls)
    }
}

/// What [`MemberObserved::vendor_state`] holds for Rossum.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Held {
    /// The user, when the username exists in the organization group.
    user: Option<u64>,
    /// The user's own organization.
    primary: Option<u64>,
    /// The organization-group membership into the target org, if any.
    membership: Option<u64>,
    /// Not disabled.
    active: bool,
}

impl Held {
    fn of(observed: &MemberObserved) -> Held {
        serde_json::from_value(observed.vendor_state.clone()).unwrap_or_default()
    }

    fn user(&self) -> Result<UserId, VendorError> {
        self.user
            .map(UserId)
            .ok_or_else(|| VendorError::NotFound("the user was not observed".into()))
    }
}

#[async_trait::async_trait]
impl MemberClient for RossumClient {
    async fn observe_member(&self, desired: &MemberDesired) -> Result<MemberObserved, VendorError> {
        let (org, email) = (desired.org.as_str(), desired.email.as_str());
        let target = org_id(org)?;
        let group = self.group_id().await?;
        let found = self
            .list_raw(
                Scope::Primary,
                &format!("organization_groups/{group}/users"),
                &[("username", email)],
            )
            .await?;
        let Some(entry) = found
            .into_iter()
            .find(|u| u["username"].as_str() == Some(email))
        else {
            return Ok(MemberObserved::absent());
        };
        let user = UserId(entry["id"].as_u64().unwrap_or_default());
        let primary = entry["organization"]
            .as_str()
            .and_then(id_from_url)
            .map(OrganizationId)
            .unwrap_or(target);
        let detail = self
            .get_raw(Scope::Org(primary), &format!("users/{user}"))
            .await?
            .ok_or_else(|| VendorError::NotFound(format!("user {user} vanished")))?;
        let role_names: HashMap<String, String> = self
            .groups(primary)
            .await?
            .into_iter()
            .map(|g| (g.url, g.name))
            .collect();
        let roles: BTreeSet<String> = detail["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().and_then(|u| role_names.get(u).cloned()))
            .collect();
        let active = detail["is_active"] != json!(false);
        let mut held = Held {
            user: Some(user.0),
            primary: Some(primary.0),
            membership: None,
            active,
        };
        let mut observed = MemberObserved {
            roles,
            ..MemberObserved::absent()
        };
        if primary == target {
            if active {
                let urls: Vec<String> = detail["queues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|q| q.as_str().map(str::to_string))
                    .collect();
                observed.presence = Presence::Active;
                observed.id = Some(format!("user/{user}"));
                observed.scopes = self.queue_names(target, &urls).await?;
                // Removing a user from their own organization disables them everywhere.
                observed.removal_reaches_other_orgs = true;
            }
        } else {
            let user_s = user.to_string();
            let org_s = target.to_string();
            let memberships = self
                .memberships(group, &[("user", &user_s), ("organization", &org_s)])
                .await?;
            if let Some(m) = memberships.into_iter().find(|m| {
                id_from_url(&m.user) == Some(user.0)
                    && id_from_url(&m.organization) == Some(target.0)
            }) {
                observed.presence = Presence::Active;
                observed.id = Some(format!("membership/{}", m.id));
                observed.scopes = self.queue_names(target, &m.queues).await?;
                held.membership = Some(m.id.0);
            }
            observed.roles_fixed = Some(format!(
                "Rossum keeps one role per user, set in their own organization {primary}"
            ));
            if !active {
                // A disabled user lost their access to their own organization on purpose (its
                // OrgMembership was removed). Re-enabling them for this one would give that back.
                observed.blocked = Some(format!(
                    "the user is disabled at the vendor (their access to their own organization {primary} was removed); re-enabling them for this organization would restore that access too. Give them access to organization {primary} again first, or remove this OrgMembership"
                ));
            }
        }
        observed.vendor_state = serde_json::to_value(&held).unwrap_or(Value::Null);
        Ok(observed)
    }

    async fn change_member(
        &self,
        desired: &MemberDesired,
        observed: &MemberObserved,
        change: &MemberChange,
    ) -> Result<(), VendorError> {
        let target = org_id(&desired.org)?;
        let held = Held::of(observed);
        match change {
            MemberChange::Add => match (held.user, held.primary) {
                (None, _) => {
                    let roles = self.role_urls(target, &desired.roles).await?;
                    let queues = self
                        .resolve_queues(target, &desired.scopes_to_give())
                        .await?;
                    let body = json!({
                        "organization": self.resource_url("organizations", target),
                        "username": desired.email, "email": desired.email,
                        "first_name": desired.first_name.clone().unwrap_or_default(),
                        "last_name": desired.last_name.clone().unwrap_or_default(),
                        "groups": roles, "queues": queues,
                    });
                    self.create_user(target, body).await.map(|_| ())
                }
                // Their own organization asks for them again: re-enable them there.
                (Some(user), Some(primary)) if primary == target.0 => self
                    .patch_raw(
                        Scope::Org(target),
                        &format!("users/{}", UserId(user)),
                        json!({"is_active": true}),
                    )
                    .await
                    .map(|_| ()),
                (Some(user), _) => {
                    let group = self.group_id().await?;
                    let queues = self
                        .resolve_queues(target, &desired.scopes_to_give())
                        .await?;
                    let body = json!({
                        "user": self.resource_url("users", UserId(user)),
                        "organization": self.resource_url("organizations", target),
                        "queues": queues,
                    });
                    self.create_membership(group, body).await.map(|_| ())
                }
            },
            MemberChange::SetRoles { .. } => {
                let user = held.user()?;
                let primary = OrganizationId(held.primary.unwrap_or(target.0));
                let urls = self.role_urls(primary, &desired.roles).await?;
                self.patch_raw(
                    Scope::Org(primary),
                    &format!("users/{user}"),
                    json!({"groups": urls}),
                )
                .await
                .map(|_| ())
            }
            MemberChange::SetScopes => {
                let user = held.user()?;
                let queues = self
                    .resolve_queues(target, &desired.scopes_to_give())
                    .await?;
                match held.membership {
                    Some(id) => {
                        let group = self.group_id().await?;
                        self.patch_raw(
                            Scope::Primary,
                            &format!(
                                "organization_groups/{group}/memberships/{}",
                                MembershipId(id)
                            ),
                            json!({"queues": queues}),
                        )
                        .await
                        .map(|_| ())
                    }
                    None => self
                        .patch_raw(
                            Scope::Org(target),
                            &format!("users/{user}"),
                            json!({"queues": queues}),
                        )
                        .await
                        .map(|_| ()),
                }
            }
        }
    }

    async fn remove_member(&self, org: &str, observed: &MemberObserved) -> Result<(), VendorError> {
        let target = org_id(org)?;
        if !observed.holds_access() {
            return Ok(());
        }
        let held = Held::of(observed);
        match (held.membership, held.user) {
            (Some(id), _) => {
                let group = self.group_id().await?;
                self.delete_membership(group, MembershipId(id)).await
            }
            // Rossum users cannot be deleted, only disabled (DELETE is a soft delete).
            (None, Some(user)) => {
                self.delete_raw(Scope::Org(target), &format!("users/{}", UserId(user)))
                    .await
            }
            (None, None) => Ok(()),
        }
    }
}
