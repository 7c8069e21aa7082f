//! Memberships at Rossum (design/vendors/rossum.md §2): `username` is global, so a person who
//! already exists somewhere in the organization group gets an organization-group membership into
//! the target org; a person who exists nowhere becomes a user of the target org. The role is
//! the user's `groups` (role URLs, resolved by name in each org) — one role per user.

use std::collections::HashMap;

use serde_json::json;

use super::client::{RossumClient, Scope, id_from_url};
use super::models::{MembershipId, OrganizationGroupId, OrganizationId, UserId};
use crate::vendors::{
    Access, MemberAction, MemberClient, MemberDesired, MemberObserved, Person, VendorError,
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
    ) -> Result<Vec<String>, VendorError> {
        let by_id: HashMap<u64, String> = self
            .queues(org)
            .await?
            .into_iter()
            .map(|q| (q.id.0, q.name))
            .collect();
        let mut names: Vec<String> = urls
            .iter()
            .filter_map(|u| id_from_url(u))
            .filter_map(|id| by_id.get(&id).cloned())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn resolve_queues(
        &self,
        org: OrganizationId,
        names: &[String],
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

    async fn role_url(&self, org: OrganizationId, role: &str) -> Result<String, VendorError> {
        self.role(org, role).await?.map(|g| g.url).ok_or_else(|| {
            VendorError::Rejected(format!("organization {org} has no role {role:?}"))
        })
    }
}

#[async_trait::async_trait]
impl MemberClient for RossumClient {
    fn roles(&self) -> &'static [&'static str] {
        ROLES
    }

    fn one_role_per_user(&self) -> bool {
        true
    }

    async fn observe_member(&self, org: &str, email: &str) -> Result<MemberObserved, VendorError> {
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
            return Ok(MemberObserved {
                person: None,
                access: Access::None,
            });
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
        let mut roles: Vec<String> = detail["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().and_then(|u| role_names.get(u).cloned()))
            .collect();
        roles.sort();
        let person = Person {
            user_id: user.to_string(),
            primary_org: primary.to_string(),
            roles,
            active: detail["is_active"] != json!(false),
        };
        let access = if primary == target {
            let urls: Vec<String> = detail["queues"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|q| q.as_str().map(str::to_string))
                .collect();
            Access::Primary {
                queues: self.queue_names(target, &urls).await?,
            }
        } else {
            let user_s = user.to_string();
            let org_s = target.to_string();
            let memberships = self
                .memberships(group, &[("user", &user_s), ("organization", &org_s)])
                .await?;
            match memberships.into_iter().find(|m| {
                id_from_url(&m.user) == Some(user.0)
                    && id_from_url(&m.organization) == Some(target.0)
            }) {
                Some(m) => Access::Membership {
                    id: m.id.to_string(),
                    queues: self.queue_names(target, &m.queues).await?,
                },
                None => Access::None,
            }
        };
        Ok(MemberObserved {
            person: Some(person),
            access,
        })
    }

    async fn act_member(
        &self,
        desired: &MemberDesired,
        observed: &MemberObserved,
        action: &MemberAction,
    ) -> Result<(), VendorError> {
        let target = org_id(&desired.org)?;
        match action {
            MemberAction::CreateUser => {
                let role = self.role_url(target, &desired.role).await?;
                let queues = self.resolve_queues(target, &desired.queues).await?;
                let body = json!({
                    "organization": self.resource_url("organizations", target),
                    "username": desired.email, "email": desired.email,
                    "first_name": desired.first_name.clone().unwrap_or_default(),
                    "last_name": desired.last_name.clone().unwrap_or_default(),
                    "groups": [role], "queues": queues,
                });
                self.create_user(target, body).await.map(|_| ())
            }
            MemberAction::AddMembership => {
                let person = observed
                    .person
                    .as_ref()
                    .ok_or_else(|| VendorError::NotFound("no such user".into()))?;
                let group = self.group_id().await?;
                let queues = self.resolve_queues(target, &desired.queues).await?;
                let body = json!({
                    "user": self.resource_url("users", &person.user_id),
                    "organization": self.resource_url("organizations", target),
                    "queues": queues,
                });
                self.create_membership(group, body).await.map(|_| ())
            }
            MemberAction::SetRole(role) => {
                let person = observed
                    .person
                    .as_ref()
                    .ok_or_else(|| VendorError::NotFound("no such user".into()))?;
                let primary = org_id(&person.primary_org)?;
                let url = self.role_url(primary, role).await?;
                self.patch_raw(
                    Scope::Org(primary),
                    &format!("users/{}", person.user_id),
                    json!({"groups": [url]}),
                )
                .await
                .map(|_| ())
            }
            MemberAction::SetQueues(names) => {
                let person = observed
                    .person
                    .as_ref()
                    .ok_or_else(|| VendorError::NotFound("no such user".into()))?;
                let queues = self.resolve_queues(target, names).await?;
                match &observed.access {
                    Access::Membership { id, .. } => {
                        let group = self.group_id().await?;
                        let id: u64 = id.parse().unwrap_or_default();
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
                    _ => self
                        .patch_raw(
                            Scope::Org(target),
                            &format!("users/{}", person.user_id),
                            json!({"queues": queues}),
                        )
                        .await
                        .map(|_| ()),
                }
            }
            MemberAction::Reactivate => {
                let person = observed
                    .person
                    .as_ref()
                    .ok_or_else(|| VendorError::NotFound("no such user".into()))?;
                let primary = org_id(&person.primary_org)?;
                self.patch_raw(
                    Scope::Org(primary),
                    &format!("users/{}", person.user_id),
                    json!({"is_active": true}),
                )
                .await
                .map(|_| ())
            }
        }
    }

    async fn remove_member(&self, org: &str, observed: &MemberObserved) -> Result<(), VendorError> {
        let target = org_id(org)?;
        match (&observed.access, &observed.person) {
            (Access::Membership { id, .. }, _) => {
                let group = self.group_id().await?;
                self.delete_membership(group, MembershipId(id.parse().unwrap_or_default()))
                    .await
            }
            (Access::Primary { .. }, Some(p)) => {
                // Rossum users cannot be deleted, only disabled (DELETE is a soft delete).
                self.delete_raw(Scope::Org(target), &format!("users/{}", p.user_id))
                    .await
            }
            _ => Ok(()),
        }
    }
}
