//! The rules of each Rossum object kind, one declaration per kind, and the one generic
//! create / update / delete / render that applies them.
//!
//! A kind declares what differs ([`KindRules`]: required fields, defaults, fields the client
//! may not set or that are never served, its own checks and side effects, its delete rule).
//! References between kinds are declared once, in [`REFS`]: the generic code checks that they
//! point inside the caller's organization, renders their reverse lists (`workspace.queues`,
//! `queue.hooks`, …), lets a write set a relation from its other side (`queue.hooks` sets
//! `hook.queues`: one many-to-many relation), and applies delete rules (409 while a live
//! object refers; or drop the reference). Id allocation, organization ownership and write
//! counting are in [`Db`].

mod accounts;
mod connectors;
mod email_templates;
mod hooks;
mod inboxes;
mod labels;
mod queues;
mod rules;
mod schemas;
mod triggers;
mod workspaces;

use serde_json::{Map, Value, json};

use super::db::{Db, Rec, id_in, now_iso};
use super::error::ApiError;

/// How the API serves a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// List, POST, GET, PATCH/PUT, DELETE through the generic routes.
    Crud,
    /// List and GET only (objects the vendor makes itself).
    ReadOnly,
    /// Routes of their own (organizations, users, groups, memberships).
    Custom,
}

/// A new object being created: its organization, id and URL.
#[derive(Clone, Debug)]
pub struct New {
    /// Owning organization.
    pub org: u64,
    /// Id.
    pub id: u64,
    /// Absolute URL.
    pub url: String,
}

/// What deleting an object does.
#[derive(Clone, Copy, Debug)]
pub enum Deletion {
    /// It is gone.
    Remove,
    /// It stays, changed by this function (Rossum only requests a queue's deletion).
    Soft(fn(&mut Value)),
}

/// The rules of one kind; every method but [`KindRules::name`] has the default of a kind with
/// no such rule.
pub trait KindRules: Sync {
    /// The collection name (`queues`).
    fn name(&self) -> &'static str;

    /// How the API serves it.
    fn api(&self) -> Api {
        Api::Crud
    }

    /// Fields a create must carry (not null, not empty).
    fn required(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the object carries its organization's URL as `organization`.
    fn sets_organization(&self) -> bool {
        false
    }

    /// Values of fields the client left out (on create, and again after every update).
    fn defaults(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// Fields only a create may set (an update ignores them).
    fn immutable(&self) -> &'static [&'static str] {
        &[]
    }

    /// Fields (`a/b` for a field of an object field) that are accepted and dropped: never
    /// stored, never served.
    fn discarded(&self) -> &'static [&'static str] {
        &[]
    }

    /// Fields that are kept apart and never served (write-only, like a hook's `secrets`).
    fn write_only(&self) -> &'static [&'static str] {
        &[]
    }

    /// Kind-specific checks and computed fields of a create, after required fields and
    /// defaults, before references are checked.
    fn prepare(&self, _db: &Db, _new: &New, _v: &mut Map<String, Value>) -> Result<(), ApiError> {
        Ok(())
    }

    /// Side effects once a new object is stored.
    fn created(&self, _db: &mut Db, _new: &New) {}

    /// Checks an update before anything else (`body` as the client sent it).
    fn check_update(&self, _current: Rec<'_>, _body: &Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// Whether the object counts as existing for references to it (a queue whose deletion was
    /// requested does not).
    fn live(&self, _v: &Value) -> bool {
        true
    }

    /// What deleting it does, or why it cannot be deleted.
    fn delete(&self, _rec: Rec<'_>) -> Result<Deletion, ApiError> {
        Ok(Deletion::Remove)
    }

    /// The fields [`KindRules::render`] sets (lists filter and order on stored objects, and
    /// render only what they serve, unless a query names one of these).
    fn computed(&self) -> &'static [&'static str] {
        &[]
    }

    /// Computed fields on render, beyond the reverse lists of [`REFS`].
    fn render(&self, _db: &Db, _rec: Rec<'_>, _v: &mut Value) {}
}

/// Every field of `kind` that rendering sets: the reverse lists of [`REFS`] and the kind's own
/// [`KindRules::computed`]. Every other field is served as stored.
pub fn computed_fields(kind: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = REFS
        .iter()
        .filter(|r| r.to == kind)
        .flat_map(|r| r.reverse.iter().copied())
        .collect();
    out.extend(rules(kind).map(|k| k.computed()).unwrap_or_default());
    out
}

/// What happens to a reference when the object it points to is deleted.
#[derive(Clone, Copy, Debug)]
pub enum OnDelete {
    /// Nothing: the reference stays.
    Keep,
    /// The delete fails with 409 and this detail while a live object refers.
    Restrict(&'static str),
    /// The reference is dropped from every list that holds it.
    Unlink,
}

/// A reference from objects of one kind to objects of another, by absolute URL.
#[derive(Clone, Copy, Debug)]
pub struct Ref {
    /// Kind that holds the reference.
    pub from: &'static str,
    /// Field that holds it (a URL, or a list of URLs when `many`).
    pub field: &'static str,
    /// Kind referred to.
    pub to: &'static str,
    /// Whether `field` is a list.
    pub many: bool,
    /// Fields of the referred object that list its (live) referrers, computed on render.
    pub reverse: &'static [&'static str],
    /// Whether a write of the referred object may set its referrers through `reverse` (the
    /// list sent replaces the set; when several aliases are sent, the last one listed wins).
    pub reverse_writable: bool,
    /// Delete rule.
    pub on_delete: OnDelete,
}

/// Every reference the simulator checks, in the order their errors are reported.
pub const REFS: &[Ref] = &[
    Ref {
        from: "queues",
        field: "schema",
        to: "schemas",
        many: false,
        reverse: &["queues"],
        reverse_writable: false,
        on_delete: OnDelete::Restrict("Schema is still linked to a queue."),
    },
    Ref {
        from: "queues",
        field: "workspace",
        to: "workspaces",
        many: false,
        reverse: &["queues"],
        reverse_writable: false,
        on_delete: OnDelete::Restrict("Workspace still contains queues."),
    },
    Ref {
        from: "queues",
        field: "connector",
        to: "connectors",
        many: false,
        reverse: &["queues"],
        reverse_writable: false,
        on_delete: OnDelete::Keep,
    },
    // One many-to-many relation, stored on the hook: `queue.hooks` (and its deprecated alias
    // `webhooks`, which Rossum prefers when both are sent) is the same list seen from the queue.
    Ref {
        from: "hooks",
        field: "queues",
        to: "queues",
        many: true,
        reverse: &["hooks", "webhooks"],
        reverse_writable: true,
        on_delete: OnDelete::Keep,
    },
    Ref {
        from: "hooks",
        field: "run_after",
        to: "hooks",
        many: true,
        reverse: &[],
        reverse_writable: false,
        on_delete: OnDelete::Unlink,
    },
    Ref {
        from: "rules",
        field: "queues",
        to: "queues",
        many: true,
        reverse: &["rules"],
        reverse_writable: false,
        on_delete: OnDelete::Keep,
    },
    Ref {
        from: "email_templates",
        field: "queue",
        to: "queues",
        many: false,
        reverse: &[],
        reverse_writable: false,
        on_delete: OnDelete::Keep,
    },
];

/// Every kind, in the order the simulator lists them.
static KINDS: &[&dyn KindRules] = &[
    &accounts::Organizations,
    &accounts::Users,
    &accounts::Groups,
    &accounts::Memberships,
    &workspaces::Workspaces,
    &schemas::Schemas,
    &connectors::Connectors,
    &queues::Queues,
    &inboxes::Inboxes,
    &hooks::Hooks,
    &email_templates::EmailTemplates,
    &labels::Labels,
    &rules::Rules,
    &triggers::Triggers,
];

/// The rules of `kind`, if the simulator has it.
pub fn rules(kind: &str) -> Option<&'static dyn KindRules> {
    KINDS.iter().copied().find(|k| k.name() == kind)
}

/// Every kind's name.
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name()).collect()
}

/// The rules of `kind` if the generic routes serve it with `api`.
pub fn served(kind: &str, api: Api) -> Option<&'static dyn KindRules> {
    rules(kind).filter(|k| k.api() == api)
}

/// Fields the server sets: dropped from a create.
const CREATE_READ_ONLY: &[&str] = &[
    "id",
    "url",
    "counts",
    "status",
    "modified_at",
    "modified_by",
    "created_at",
    "created_by",
];

/// Fields the server sets or that only a create may set: dropped from an update.
const UPDATE_READ_ONLY: &[&str] = &[
    "id",
    "url",
    "counts",
    "status",
    "organization",
    "modified_at",
    "modified_by",
    "created_at",
    "created_by",
    "inbox",
    "email",
    "triggers",
];

const METADATA_LIMIT: usize = 4096;

/// Referrers to set through a writable reverse field: the relation and the referrer ids.
type Links = Vec<(&'static Ref, Vec<u64>)>;

impl Db {
    /// Validates and completes a new object of a setup kind, then stores it and runs its side
    /// effects; the object as served.
    pub fn create_object(&mut self, kind: &str, org: u64, body: Value) -> Result<Value, ApiError> {
        let Some(rules) = served(kind, Api::Crud) else {
            return Err(ApiError::method_not_allowed());
        };
        let kind = rules.name();
        let Value::Object(mut v) = body else {
            return Err(ApiError::non_field("Invalid data. Expected a dictionary."));
        };
        for ro in CREATE_READ_ONLY {
            v.remove(*ro);
        }
        check_metadata(&v)?;
        let id = self.next_id(kind);
        let new = New {
            org,
            id,
            url: self.url(kind, id),
        };
        v.insert("id".into(), json!(id));
        v.insert("url".into(), json!(new.url));
        require(&v, rules.required())?;
        self.complete(rules, org, &mut v);
        let write_only = take(&mut v, rules.write_only());
        discard(&mut v, rules.discarded());
        rules.prepare(self, &new, &mut v)?;
        self.check_refs(kind, &v, org)?;
        let links = self.take_links(kind, &mut v, org)?;
        self.insert(kind, org, id, Value::Object(v));
        if !write_only.is_empty() {
            self.write_only.insert((kind, id), write_only);
        }
        self.set_links(&new.url, org, &links);
        rules.created(self, &new);
        Ok(self.render(kind, id).unwrap_or(Value::Null))
    }

    /// Applies a PATCH (or PUT, which the simulator treats the same way) to a setup object;
    /// the object as served.
    pub fn update_object(
        &mut self,
        kind: &str,
        id: u64,
        org: u64,
        body: Value,
    ) -> Result<Value, ApiError> {
        let Some(rules) = served(kind, Api::Crud) else {
            return Err(ApiError::method_not_allowed());
        };
        let kind = rules.name();
        let current = self.get(kind, id).ok_or_else(ApiError::not_found)?;
        rules.check_update(current, &body)?;
        let Value::Object(mut patch) = body else {
            return Err(ApiError::non_field("Invalid data. Expected a dictionary."));
        };
        check_metadata(&patch)?;
        for ro in UPDATE_READ_ONLY.iter().chain(rules.immutable()) {
            patch.remove(*ro);
        }
        let write_only = take(&mut patch, rules.write_only());
        discard(&mut patch, rules.discarded());
        self.check_refs(kind, &patch, org)?;
        let links = self.take_links(kind, &mut patch, org)?;
        let mut v = self
            .get(kind, id)
            .and_then(|r| r.value.as_object().cloned())
            .unwrap_or_default();
        v.extend(patch);
        v.insert("modified_at".into(), json!(now_iso()));
        self.complete(rules, org, &mut v);
        self.update(kind, id, |stored| *stored = Value::Object(v))?;
        if !write_only.is_empty() {
            self.write_only
                .entry((kind, id))
                .or_default()
                .extend(write_only);
        }
        self.set_links(&self.url(kind, id), org, &links);
        self.render(kind, id).ok_or_else(ApiError::not_found)
    }

    /// Deletes a setup object following its kind's rules and the delete rules of references
    /// to it.
    pub fn delete_object(&mut self, kind: &str, id: u64) -> Result<(), ApiError> {
        let Some(rules) = served(kind, Api::Crud) else {
            return Err(ApiError::method_not_allowed());
        };
        let kind = rules.name();
        let url = self.url(kind, id);
        let refs = || REFS.iter().filter(move |r| r.to == kind);
        for r in refs() {
            if let OnDelete::Restrict(detail) = r.on_delete
                && !self.referrers(r, &url, None).is_empty()
            {
                return Err(ApiError::conflict(detail));
            }
        }
        let current = self.get(kind, id).ok_or_else(ApiError::not_found)?;
        let owner = current.org;
        let deletion = rules.delete(current)?;
        for r in refs().filter(|r| matches!(r.on_delete, OnDelete::Unlink)) {
            // As in `set_links`: only the organization's objects can hold the reference.
            let holders: Vec<u64> = self.in_org(r.from, owner).iter().map(|h| h.id).collect();
            for h in holders {
                // The referrer did not change by itself: not counted.
                self.update_uncounted(r.from, h, |v| {
                    if let Some(list) = v[r.field].as_array_mut() {
                        list.retain(|u| u.as_str() != Some(&url));
                    }
                });
            }
        }
        match deletion {
            Deletion::Remove => {
                self.remove(kind, id);
                self.write_only.remove(&(kind, id));
            }
            Deletion::Soft(f) => self.soft_delete(kind, id, f),
        }
        Ok(())
    }

    /// Object `id` of `kind` as served, with computed fields filled in.
    pub fn render(&self, kind: &str, id: u64) -> Option<Value> {
        Some(self.render_rec(kind, self.get(kind, id)?))
    }

    /// `rec` of `kind` as served.
    pub fn render_rec(&self, kind: &str, rec: Rec<'_>) -> Value {
        let mut v = rec.value.clone();
        let url = self.url(kind, rec.id);
        for r in REFS
            .iter()
            .filter(|r| r.to == kind && !r.reverse.is_empty())
        {
            let list: Vec<Value> = self
                .referrers(r, &url, Some(rec.org))
                .into_iter()
                .map(|id| json!(self.url(r.from, id)))
                .collect();
            for name in r.reverse {
                v[*name] = json!(list);
            }
        }
        if let Some(rules) = rules(kind) {
            rules.render(self, rec, &mut v);
        }
        v
    }

    /// Ids of the live objects that refer to `url` through `r` (in `org`, when given).
    fn referrers(&self, r: &Ref, url: &str, org: Option<u64>) -> Vec<u64> {
        let from = rules(r.from);
        let objects = match org {
            Some(org) => self.in_org(r.from, org),
            None => self.all(r.from),
        };
        objects
            .into_iter()
            .filter(|o| refers(&o.value[r.field], url))
            .filter(|o| from.is_none_or(|k| k.live(o.value)))
            .map(|o| o.id)
            .collect()
    }

    /// Sets the organization and the defaults of fields left out.
    fn complete(&self, rules: &dyn KindRules, org: u64, v: &mut Map<String, Value>) {
        if rules.sets_organization() {
            v.insert("organization".into(), json!(self.url("organizations", org)));
        }
        for (k, d) in rules.defaults() {
            v.entry(k).or_insert(d);
        }
    }

    /// Checks that the references `v` holds (those of [`REFS`] from `kind`) point to objects
    /// of the right kind in `org`.
    fn check_refs(&self, kind: &str, v: &Map<String, Value>, org: u64) -> Result<(), ApiError> {
        let invalid =
            |field: &str| ApiError::field(field, "Invalid hyperlink - Object does not exist.");
        let in_org = |to: &str, u: &Value| {
            u.as_str()
                .and_then(id_in)
                .and_then(|id| self.get(to, id))
                .is_some_and(|r| r.org == org)
        };
        for r in REFS.iter().filter(|r| r.from == kind) {
            let Some(x) = v.get(r.field) else { continue };
            if r.many {
                let Some(items) = x.as_array() else {
                    return Err(ApiError::field(r.field, "Expected a list of items."));
                };
                if !items.iter().all(|u| in_org(r.to, u)) {
                    return Err(invalid(r.field));
                }
            } else {
                match x {
                    Value::Null => {}
                    Value::String(_) if in_org(r.to, x) => {}
                    Value::String(_) => return Err(invalid(r.field)),
                    _ => {
                        return Err(ApiError::field(
                            r.field,
                            "Incorrect type. Expected URL string.",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes the reverse fields of [`REFS`] to `kind` out of `v`; for writable ones, the
    /// referrers to set, each checked to be in `org`.
    fn take_links(
        &self,
        kind: &str,
        v: &mut Map<String, Value>,
        org: u64,
    ) -> Result<Links, ApiError> {
        let mut links = Links::new();
        for r in REFS.iter().filter(|r| r.to == kind) {
            let sent: Vec<Value> = r.reverse.iter().filter_map(|f| v.remove(*f)).collect();
            if !r.reverse_writable {
                continue;
            }
            // Items that are not URLs are ignored, as is a value that is not a list.
            let Some(list) = sent.last().and_then(Value::as_array) else {
                continue;
            };
            let ids: Vec<u64> = list
                .iter()
                .filter_map(|u| u.as_str().and_then(id_in))
                .collect();
            if ids
                .iter()
                .any(|id| self.get(r.from, *id).is_none_or(|o| o.org != org))
            {
                return Err(ApiError::field(
                    r.reverse[0],
                    "Invalid hyperlink - Object does not exist.",
                ));
            }
            links.push((r, ids));
        }
        Ok(links)
    }

    /// Makes exactly the `links` referrers refer to `url`, an object of `org` (the other side
    /// of a relation: not counted as writes of the referrers).
    fn set_links(&mut self, url: &str, org: u64, links: &Links) {
        // Only objects of the organization can hold the reference (writes check that every
        // reference stays inside it, and render lists referrers of the organization only), so
        // only those are visited: a write costs the organization's size, not the fleet's.
        for (r, wanted) in links {
            let holders: Vec<u64> = self.in_org(r.from, org).iter().map(|h| h.id).collect();
            for h in holders {
                let want = wanted.contains(&h);
                self.update_uncounted(r.from, h, |v| {
                    let Some(list) = v[r.field].as_array_mut() else {
                        return;
                    };
                    let has = list.iter().any(|q| q.as_str() == Some(url));
                    if want && !has {
                        list.push(json!(url));
                    } else if !want && has {
                        list.retain(|q| q.as_str() != Some(url));
                    }
                });
            }
        }
    }
}

/// Whether `field` (a URL or a list of URLs) holds `url`.
fn refers(field: &Value, url: &str) -> bool {
    match field {
        Value::String(s) => s == url,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(url)),
        _ => false,
    }
}

fn require(v: &Map<String, Value>, fields: &[&str]) -> Result<(), ApiError> {
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| {
            v.get(*f)
                .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::fields(&missing, "This field is required."))
    }
}

/// Removes `fields` from `v` and returns those that were there.
fn take(v: &mut Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| v.remove(*f).map(|x| (f.to_string(), x)))
        .collect()
}

/// Removes `paths` (`a` or `a/b`) from `v`.
fn discard(v: &mut Map<String, Value>, paths: &[&str]) {
    for p in paths {
        match p.split_once('/') {
            None => {
                v.remove(*p);
            }
            Some((outer, inner)) => {
                if let Some(o) = v.get_mut(outer).and_then(Value::as_object_mut) {
                    o.remove(inner);
                }
            }
        }
    }
}

/// Metadata must be a JSON object of at most 4 kB (every kind, every write).
pub fn check_metadata(v: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(m) = v.get("metadata") {
        if !m.is_object() && !m.is_null() {
            return Err(ApiError::field(
                "metadata",
                "Value must be valid JSON object.",
            ));
        }
        if m.to_string().len() > METADATA_LIMIT {
            return Err(ApiError::field(
                "metadata",
                "Metadata must not exceed 4 kB.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
