//! What the trial judges: settled or not, what Ready resources claim at the vendor, and after
//! the namespace is gone, duplicates and access a Delete policy should have removed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;

use super::super::super::{ALL_KINDS, MARKER_KINDS, url_map};
use super::*;

impl Trial {
    /// Notes every resource's phase and Ready condition in the timeline.
    pub(super) fn snapshot(&mut self, orgs: &[Organization], members: &[OrgMembership]) {
        for o in orgs {
            let s = o.status.clone().unwrap_or_default();
            self.note(format!(
                "  org {} gen {:?} suspend {} phase {:?} id {:?} progress {:?} {}",
                o.name_any(),
                o.metadata.generation,
                o.spec.suspend,
                s.phase,
                s.external_id,
                s.progress,
                describe(ready(&s.conditions))
            ));
        }
        for m in members {
            let s = m.status.clone().unwrap_or_default();
            self.note(format!(
                "  orgm {} gen {:?} phase {:?} id {:?} {}",
                m.name_any(),
                m.metadata.generation,
                s.phase,
                s.external_id,
                describe(ready(&s.conditions))
            ));
        }
    }

    /// What is not settled yet, one line each.
    pub(super) async fn unsettled(
        &self,
        orgs: &[Organization],
        members: &[OrgMembership],
    ) -> Vec<String> {
        let mut out = Vec::new();
        let conn = if self.cluster_connection {
            Api::<ClusterVendorConnection>::all(self.client.clone())
                .get_opt(&self.connection)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.status)
        } else {
            Api::<VendorConnection>::namespaced(self.client.clone(), &self.ns)
                .get_opt(&self.connection)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.status)
        };
        let conn_ready = conn.as_ref().and_then(|s| ready(&s.conditions));
        if conn_ready.is_none_or(|c| c.status != "True") {
            out.push(format!(
                "connection {} not Ready: {}",
                self.connection,
                describe(conn_ready)
            ));
        }
        for plan in &self.orgs {
            let found = orgs.iter().find(|o| o.name_any() == plan.name);
            let Some(o) = found else {
                continue; // gone: deleted (checked below) or vanished (a lost check)
            };
            let conds = o
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or(&[]);
            let r = ready(conds);
            if plan.deleted.is_some() {
                let parked = plan.policy == "Delete"
                    && r.is_some_and(|c| c.status == "False" && c.reason == "DeleteUnsupported");
                if !parked {
                    out.push(format!(
                        "org {} deleted but still there: {}",
                        plan.name,
                        describe(r)
                    ));
                }
                continue;
            }
            if !current(o.metadata.generation, r) {
                out.push(format!(
                    "org {} generation {:?} not yet observed: {}",
                    plan.name,
                    o.metadata.generation,
                    describe(r)
                ));
                continue;
            }
            let Some(r) = r else { continue };
            let explained = r.status == "True"
                || (o.spec.suspend && ["Suspended", "DriftDetected"].contains(&r.reason.as_str()));
            if !explained {
                out.push(format!("org {}: {}", plan.name, describe(Some(r))));
            }
        }
        for plan in &self.members {
            let found = members.iter().find(|m| m.name_any() == plan.name);
            let Some(m) = found else { continue };
            let conds = m
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or(&[]);
            let r = ready(conds);
            if plan.deleted.is_some() {
                out.push(format!(
                    "orgm {} deleted but still there: {}",
                    plan.name,
                    describe(r)
                ));
                continue;
            }
            if !current(m.metadata.generation, r) {
                out.push(format!(
                    "orgm {} generation {:?} not yet observed: {}",
                    plan.name,
                    m.metadata.generation,
                    describe(r)
                ));
                continue;
            }
            let Some(r) = r else { continue };
            let org = orgs
                .iter()
                .find(|o| o.name_any() == self.orgs[plan.org].name);
            let org_ready = org.is_some_and(|o| {
                o.metadata.deletion_timestamp.is_none()
                    && ready(
                        o.status
                            .as_ref()
                            .map(|s| s.conditions.as_slice())
                            .unwrap_or(&[]),
                    )
                    .is_some_and(|c| c.status == "True")
            });
            let org_suspended = org.is_some_and(|o| o.spec.suspend);
            let explained = r.status == "True"
                || match r.reason.as_str() {
                    "WaitingForOrganization" => !org_ready,
                    "DriftDetected" => org_suspended,
                    "AccessBlocked" => self.user(&plan.email).is_some_and(|u| !u.2),
                    "RoleConflict" => true,
                    _ => false,
                };
            if !explained {
                out.push(format!("orgm {}: {}", plan.name, describe(Some(r))));
            }
        }
        out
    }

    /// What Ready resources claim that does not hold at the vendor, one line each (lost when
    /// it still does not hold at the end of the settle bound).
    pub(super) fn claims(&self, orgs: &[Organization], members: &[OrgMembership]) -> Vec<String> {
        let mut lost = Vec::new();
        let template = self.sim.org_id(TEMPLATE);
        for plan in &self.orgs {
            let Some(o) = orgs.iter().find(|o| o.name_any() == plan.name) else {
                if plan.deleted.is_none() {
                    lost.push(format!("org {} vanished without being deleted", plan.name));
                }
                continue;
            };
            if plan.deleted.is_some() {
                continue;
            }
            let status = o.status.clone().unwrap_or_default();
            if !is_ready(&status.conditions) {
                continue;
            }
            let Some(id) = status
                .external_id
                .as_deref()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                lost.push(format!("org {} Ready without an externalId", plan.name));
                continue;
            };
            let name = self
                .sim
                .with_db(|db| db.get("organizations", id).map(|r| r.value["name"].clone()));
            match name {
                None => lost.push(format!(
                    "org {} Ready, but vendor org {id} does not exist",
                    plan.name
                )),
                Some(n) if n != json!(o.spec.display_name) => lost.push(format!(
                    "org {} Ready, but vendor org {id} is named {n}, spec says {:?}",
                    plan.name, o.spec.display_name
                )),
                Some(_) => {}
            }
            if let (true, Some(t)) = (plan.template, template) {
                let map = url_map(&self.sim, t, id);
                let mut missing = Vec::new();
                let mut total = 0;
                for kind in ALL_KINDS {
                    for obj in self.sim.objects(kind, t) {
                        total += 1;
                        if !obj["url"].as_str().is_some_and(|u| map.contains_key(u)) {
                            missing.push(format!("{kind} {}", obj["name"]));
                        }
                    }
                }
                if !missing.is_empty() {
                    lost.push(format!(
                        "org {} Ready, but {}/{total} template objects have no copy in {id}: {}",
                        plan.name,
                        missing.len(),
                        missing.join(", ")
                    ));
                }
            }
        }
        for plan in &self.members {
            let Some(m) = members.iter().find(|m| m.name_any() == plan.name) else {
                continue;
            };
            if plan.deleted.is_some() {
                continue;
            }
            let conds = m
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or(&[]);
            if !is_ready(conds) {
                continue;
            }
            let org_id = orgs
                .iter()
                .find(|o| o.name_any() == self.orgs[plan.org].name)
                .and_then(|o| {
                    o.status
                        .as_ref()?
                        .external_id
                        .as_deref()?
                        .parse::<u64>()
                        .ok()
                });
            let access = org_id.and_then(|id| self.access(&plan.email, id));
            if access.is_none() || self.user(&plan.email).is_none_or(|u| !u.2) {
                lost.push(format!(
                    "orgm {} Ready, but {} has no active access to org {:?}",
                    plan.name, plan.email, org_id
                ));
            }
        }
        lost
    }

    /// `(id, primary org, active)` of the user named `email`.
    pub(super) fn user(&self, email: &str) -> Option<(u64, u64, bool)> {
        self.sim.with_db(|db| {
            db.all("users").into_iter().find_map(|u| {
                (u.value["username"] == email)
                    .then(|| (u.id, u.org, u.value["is_active"] == json!(true)))
            })
        })
    }

    /// How the vendor lets `email` into `org`: it is an active user's own organization, or
    /// there is a membership (which grants access again whenever the user is active).
    pub(super) fn access(&self, email: &str, org: u64) -> Option<&'static str> {
        let (id, primary, active) = self.user(email)?;
        if primary == org && active {
            return Some("the user's own organization, user active");
        }
        let member = self.sim.with_db(|db| {
            db.all("memberships").into_iter().any(|m| {
                url_id(&m.value["user"]) == Some(id)
                    && url_id(&m.value["organization"]) == Some(org)
            })
        });
        match (member, active) {
            (false, _) => None,
            (true, true) => Some("a membership, user active"),
            (true, false) => Some("a membership of the disabled user"),
        }
    }

    /// Vendor orgs of an Organization: its ownership marker, or any name it ever had.
    pub(super) fn vendor_orgs(&self, plan: &OrgPlan) -> Vec<u64> {
        let key = format!("{}/{}", self.ns, plan.name);
        self.sim.with_db(|db| {
            db.all("organizations")
                .into_iter()
                .filter(|o| {
                    o.value
                        .pointer("/metadata/orgops/owner")
                        .and_then(Value::as_str)
                        == Some(key.as_str())
                        || o.value["name"]
                            .as_str()
                            .is_some_and(|n| plan.names.iter().any(|x| x == n))
                })
                .map(|o| o.id)
                .collect()
        })
    }

    pub(super) fn vendor_checks(&mut self) {
        // Organizations.
        for plan in self.orgs.clone() {
            let ids = self.vendor_orgs(&plan);
            if ids.len() > 1 {
                for _ in 1..ids.len() {
                    self.result.duplicates.push(format!(
                        "org {}: {} vendor orgs {ids:?} (names {:?})",
                        plan.name,
                        ids.len(),
                        plan.names
                    ));
                }
            }
            if plan.template {
                for id in ids {
                    for d in self.copy_duplicates(id) {
                        self.result
                            .duplicates
                            .push(format!("org {} ({id}): {d}", plan.name));
                    }
                }
            }
        }
        // Users and memberships.
        let (users, memberships) = self.sim.with_db(|db| {
            let mut users: BTreeMap<String, u32> = BTreeMap::new();
            for u in db.all("users") {
                *users
                    .entry(u.value["username"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
            }
            let mut memberships: BTreeMap<(u64, u64), u32> = BTreeMap::new();
            for m in db.all("memberships") {
                let key = (
                    url_id(&m.value["user"]).unwrap_or(0),
                    url_id(&m.value["organization"]).unwrap_or(0),
                );
                *memberships.entry(key).or_default() += 1;
            }
            (users, memberships)
        });
        for (name, n) in users.into_iter().filter(|(_, n)| *n > 1) {
            for _ in 1..n {
                self.result
                    .duplicates
                    .push(format!("user {name}: {n} users"));
            }
        }
        for ((u, o), n) in memberships.into_iter().filter(|(_, n)| *n > 1) {
            for _ in 1..n {
                self.result
                    .duplicates
                    .push(format!("membership of user {u} in org {o}: {n}"));
            }
        }
        // Access that a Delete policy should have removed.
        for m in self.members.clone() {
            if m.policy != "Delete" {
                continue;
            }
            let org = &self.orgs[m.org];
            for id in self.vendor_orgs(org) {
                let Some(how) = self.access(&m.email, id) else {
                    continue;
                };
                let orphaned_first = org.policy == "Orphan"
                    && org.deleted.zip(m.deleted).is_some_and(|(o, d)| o < d);
                let when = if m.deleted == Some(self.seq) {
                    "with its namespace"
                } else {
                    "during the chaos"
                };
                let line = format!(
                    "orgm {} (Delete) deleted {when}, but {} still has access to org {id} ({how})",
                    m.name, m.email
                );
                if orphaned_first {
                    self.result.excused.push(format!(
                        "{line}; its Organization had been deleted with Orphan before"
                    ));
                } else {
                    self.result.lost.push(line);
                }
            }
        }
    }

    /// More than one copy of a template object in `org`.
    pub(super) fn copy_duplicates(&self, org: u64) -> Vec<String> {
        let mut groups: BTreeMap<String, u32> = BTreeMap::new();
        for kind in MARKER_KINDS {
            for o in self.sim.objects(kind, org) {
                if let Some(src) = o.pointer("/metadata/orgops/source") {
                    *groups
                        .entry(format!("{kind} copied from {src}"))
                        .or_default() += 1;
                }
            }
        }
        for kind in ["labels", "rules"] {
            for o in self.sim.objects(kind, org) {
                *groups
                    .entry(format!("{kind} named {}", o["name"]))
                    .or_default() += 1;
            }
        }
        for o in self.sim.objects("email_templates", org) {
            *groups
                .entry(format!(
                    "email_templates {} {} in {}",
                    o["name"], o["type"], o["queue"]
                ))
                .or_default() += 1;
        }
        groups
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .flat_map(|(what, n)| (1..n).map(move |_| format!("{n} × {what}")))
            .collect()
    }
}

fn url_id(v: &Value) -> Option<u64> {
    v.as_str()?
        .trim_end_matches('/')
        .rsplit('/')
        .next()?
        .parse()
        .ok()
}

/// The Ready condition is True.
fn is_ready(conditions: &[Condition]) -> bool {
    ready(conditions).is_some_and(|c| c.status == "True")
}

pub(super) fn ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == "Ready")
}

/// The Ready condition describes the object's current generation.
fn current(generation: Option<i64>, ready: Option<&Condition>) -> bool {
    ready.is_some_and(|c| c.observed_generation == generation)
}

pub(super) fn describe(c: Option<&Condition>) -> String {
    match c {
        None => "no Ready condition".into(),
        Some(c) => {
            let mut message = c.message.clone();
            if message.len() > 200 {
                let mut end = 200;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
                message.push('…');
            }
            format!("Ready={} {}: {message}", c.status, c.reason)
        }
    }
}
