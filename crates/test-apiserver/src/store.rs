//! Objects, resourceVersions, the event log watches replay from, and the write semantics of
//! the apiserver (optimistic concurrency, status subresource, generation, finalizers).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::registry::{self, ResourceType};
use crate::schema;
use crate::status::ApiError;

/// Events kept for watches that resume from an older resourceVersion.
const LOG_CAPACITY: usize = 100_000;

/// A change, as watches see it.
#[derive(Clone, Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Storage key (`group/plural`).
    pub key: String,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub kind: &'static str,
    /// The object after the change (before, for DELETED), shared with the store, the event
    /// log and every watch: a change is not copied once per watcher.
    pub object: Arc<Value>,
}

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them (the server would warn).
    Warn,
    /// Reject the request.
    Strict,
}

/// Per-request write options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOpts {
    /// `fieldValidation`.
    pub fields: FieldValidation,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
}

/// The whole state.
pub struct Store {
    /// Current resourceVersion.
    pub rv: u64,
    /// By (storage key, namespace, name); shared with the events that carry them.
    objects: BTreeMap<(String, String, String), Arc<Value>>,
    log: VecDeque<Event>,
    /// Events at or below this rv are gone (410).
    pub compacted: u64,
    /// Served resource types.
    pub registry: Vec<ResourceType>,
    /// New events, for live watches.
    pub tx: broadcast::Sender<Event>,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn uid() -> String {
    let h = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn name_of(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The object without `metadata` and `status`: what `generation` tracks.
fn spec_part(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    c
}

/// A Secret as stored: `stringData` is write-only, merged into `data` (base64), winning over
/// a `data` key of the same name.
fn merge_string_data(mut secret: Value) -> Value {
    use base64::Engine;
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return secret;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        secret["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
    secret
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A store with the built-in types and the `default`, `kube-system`, `kube-public` namespaces.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(16_384);
        let mut s = Self {
            rv: 1000,
            objects: BTreeMap::new(),
            log: VecDeque::new(),
            compacted: 0,
            registry: registry::builtins(),
            tx,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let rt = s.find("", "v1", "namespaces").cloned();
            if let Some(rt) = rt {
                let _ = s.create(
                    &rt,
                    "",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    WriteOpts {
                        fields: FieldValidation::Ignore,
                        dry_run: false,
                    },
                );
            }
        }
        for (plural, obj) in crate::rbac::bootstrap_policy() {
            let rt = s.find("rbac.authorization.k8s.io", "v1", plural).cloned();
            if let Some(rt) = rt {
                let _ = s.create(
                    &rt,
                    "",
                    obj,
                    WriteOpts {
                        fields: FieldValidation::Ignore,
                        dry_run: false,
                    },
                );
            }
        }
        s
    }

    /// The type served at group/version/plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.registry
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    fn record(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        kind: &'static str,
        object: Arc<Value>,
    ) {
        let e = Event {
            rv: self.rv,
            key: rt.storage_key(),
            namespace: namespace.to_string(),
            kind,
            object,
        };
        self.log.push_back(e.clone());
        while self.log.len() > LOG_CAPACITY {
            if let Some(old) = self.log.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.tx.send(e);
    }

    /// Drops the whole event log: every older resourceVersion becomes 410 Gone.
    pub fn compact(&mut self) {
        self.log.clear();
        self.compacted = self.rv;
    }

    /// Events after `rv` for `key` (in `namespace`, if given), or 410.
    pub fn events_since(
        &self,
        rv: u64,
        key: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Event>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::gone(rv, self.compacted));
        }
        Ok(self
            .log
            .iter()
            .filter(|e| e.rv > rv && e.key == key && namespace.is_none_or(|n| n == e.namespace))
            .cloned()
            .collect())
    }

    /// Renders a stored object as `rt`'s version.
    pub fn present(rt: &ResourceType, v: &Value) -> Value {
        let mut v = v.clone();
        v["apiVersion"] = json!(rt.api_version());
        v["kind"] = json!(rt.kind);
        v
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&(rt.storage_key(), ns.to_string(), name.to_string()))
            .map(|v| Self::present(rt, v))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Objects of `rt` (in `ns`, if given), sorted by namespace and name.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        self.stored(rt, ns).map(|v| Self::present(rt, v)).collect()
    }

    /// Objects of `rt` (in `ns`, if given) as stored (not yet [presented](Self::present)),
    /// sorted by namespace and name: a range of the store, so that a list costs what it
    /// returns, not the size of the whole store.
    pub fn stored<'a>(
        &'a self,
        rt: &ResourceType,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + use<'a> {
        let key = rt.storage_key();
        let from = (key.clone(), ns.unwrap_or("").to_string(), String::new());
        self.objects
            .range(from..)
            .take_while(move |((k, n, _), _)| *k == key && ns.is_none_or(|x| x == n))
            .map(|(_, v)| v.as_ref())
    }

    fn validate(
        &self,
        rt: &ResourceType,
        obj: Value,
        old: Option<&Value>,
        fv: FieldValidation,
    ) -> Result<Value, ApiError> {
        if rt.group.is_empty() && rt.plural == "secrets" {
            return Ok(merge_string_data(obj));
        }
        if rt.plural == "customresourcedefinitions" && rt.group == "apiextensions.k8s.io" {
            registry::from_crd(&obj).map_err(|m| {
                let (field, message) = m
                    .split_once(": ")
                    .map(|(f, m)| (f.to_string(), m.to_string()))
                    .unwrap_or((String::new(), m.clone()));
                ApiError::invalid(
                    &rt.kind,
                    &rt.group,
                    &name_of(&obj),
                    vec![crate::status::Cause {
                        reason: "FieldValueInvalid",
                        message,
                        field,
                    }],
                )
            })?;
            return Ok(obj);
        }
        let Some(schema) = rt.schema.as_ref().filter(|_| rt.custom) else {
            return Ok(obj);
        };
        let checked = schema::check(schema, &obj, old);
        if !checked.causes.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                &name_of(&obj),
                checked.causes,
            ));
        }
        if fv == FieldValidation::Strict && !checked.unknown.is_empty() {
            let fields: Vec<String> = checked
                .unknown
                .iter()
                .map(|u| format!("unknown field \"{u}\""))
                .collect();
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.version,
                rt.kind,
                fields.join(", ")
            )));
        }
        Ok(checked.object)
    }

    /// Creates `obj` (POST, or the create half of server-side apply).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        if rt.namespaced
            && !self.objects.contains_key(&(
                "/namespaces".to_string(),
                String::new(),
                ns.to_string(),
            ))
        {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        if rt.namespaced && self.terminating(ns) {
            return Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.plural
            )));
        }
        let meta = obj["metadata"].as_object().cloned().unwrap_or_default();
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) => {
                    name = format!(
                        "{prefix}{}",
                        fastrand::u32(..)
                            .to_string()
                            .chars()
                            .take(5)
                            .collect::<String>()
                    )
                }
                None => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        &rt.group,
                        "",
                        vec![crate::status::Cause {
                            reason: "FieldValueRequired",
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ));
                }
            }
        }
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && rt.namespaced
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let key = (
            rt.storage_key(),
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.status && rt.custom {
            // Writes to the main resource ignore status.
            obj.as_object_mut().map(|m| m.remove("status"));
        }
        let mut obj = self.validate(rt, obj, None, opts.fields)?;
        if rt.plural == "events" {
            fill_event_views(&mut obj);
        }
        let m = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        m.insert("name".into(), json!(name));
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uid()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.remove("deletionTimestamp");
        m.remove("managedFields");
        if rt.custom || rt.plural == "customresourcedefinitions" {
            m.insert("generation".into(), json!(1));
        }
        if rt.plural == "namespaces" && rt.group.is_empty() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        if rt.plural == "customresourcedefinitions" {
            obj["status"] = crd_status(&obj);
        }
        if opts.dry_run {
            return Ok(Self::present(rt, &obj));
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let stored = Arc::new(Self::present(rt, &obj));
        self.objects.insert(key, stored.clone());
        self.record(rt, &stored_ns(&stored), "ADDED", stored.clone());
        if rt.plural == "customresourcedefinitions" {
            self.register_crd(&stored);
        }
        Ok(Arc::unwrap_or_clone(stored))
    }

    /// Replaces an object (PUT), on the main resource or the `status` subresource.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut new: Value,
        status_only: bool,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        let key = (
            rt.storage_key(),
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let old_shared = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let old: &Value = &old_shared;
        if !new.is_object() || !new["metadata"].is_object() {
            return Err(ApiError::bad_request(
                "the body must be an object with metadata",
            ));
        }
        let body_name = name_of(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            && Some(rv)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        if status_only {
            // The status subresource changes status only.
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if merged["status"].is_null() {
                merged.as_object_mut().map(|m| m.remove("status"));
            }
            new = merged;
        } else if rt.status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        // Server-owned metadata survives every write.
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old["metadata"].get(k) {
                Some(v) => new["metadata"][k] = v.clone(),
                None => {
                    new["metadata"].as_object_mut().map(|m| m.remove(k));
                }
            }
        }
        new["metadata"]
            .as_object_mut()
            .map(|m| m.remove("managedFields"));
        if let Some(old_finalizers) = old.pointer("/metadata/finalizers")
            && old["metadata"].get("deletionTimestamp").is_some()
        {
            // While deleting, finalizers may only be removed.
            let keep: Vec<Value> = new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let added = keep
                .iter()
                .any(|f| !old_finalizers.as_array().is_some_and(|o| o.contains(f)));
            if added {
                return Err(ApiError::invalid(&rt.kind, &rt.group, name, vec![crate::status::Cause {
                    reason: "FieldValueForbidden",
                    message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                    field: "metadata.finalizers".into(),
                }]));
            }
        }
        let mut new = self.validate(rt, new, Some(old), opts.fields)?;
        if rt.plural == "events" {
            fill_event_views(&mut new);
        }
        if (rt.custom || rt.plural == "customresourcedefinitions")
            && spec_part(&new) != spec_part(old)
        {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if rt.plural == "customresourcedefinitions" {
            new["status"] = old
                .get("status")
                .cloned()
                .unwrap_or_else(|| crd_status(&new));
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        let new = Self::present(rt, &new);
        if new == Self::present(rt, old) {
            // A no-op write changes nothing: same resourceVersion, no event.
            return Ok(new);
        }
        if opts.dry_run {
            return Ok(new);
        }
        let finalized = new["metadata"].get("deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
        self.rv += 1;
        let mut new = new;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let new = Arc::new(new);
        if finalized {
            self.objects.remove(&key);
            self.record(rt, &stored_ns(&new), "DELETED", new.clone());
            self.after_delete(rt, &new);
            return Ok(Arc::unwrap_or_clone(new));
        }
        self.objects.insert(key, new.clone());
        self.record(rt, &stored_ns(&new), "MODIFIED", new.clone());
        if rt.plural == "customresourcedefinitions" {
            self.register_crd(&new);
        }
        Ok(Arc::unwrap_or_clone(new))
    }

    /// Deletes an object: with finalizers it only gets a deletionTimestamp.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = (
            rt.storage_key(),
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let old_shared = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let old: &Value = &old_shared;
        if let Some(rv) = precondition_rv
            && Some(rv)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        if dry_run {
            return Ok(old.clone());
        }
        if rt.plural == "namespaces" && rt.group.is_empty() {
            return Ok(self.terminate_namespace(rt, key, old.clone()));
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old["metadata"].get("deletionTimestamp").is_some() {
                return Ok(old.clone());
            }
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            self.rv += 1;
            new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            let new = Arc::new(new);
            self.objects.insert(key, new.clone());
            self.record(rt, &stored_ns(&new), "MODIFIED", new.clone());
            return Ok(Arc::unwrap_or_clone(new));
        }
        self.objects.remove(&key);
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let gone = Arc::new(gone);
        self.record(rt, &stored_ns(&gone), "DELETED", gone.clone());
        self.after_delete(rt, &gone);
        Ok(Arc::unwrap_or_clone(gone))
    }

    /// Namespace deletion as the namespace controller does it: the namespace turns
    /// `Terminating` (no new content), everything in it is deleted in no particular order
    /// (objects with finalizers stay until those are removed), and the namespace goes once it
    /// is empty.
    fn terminate_namespace(
        &mut self,
        rt: &ResourceType,
        key: (String, String, String),
        old: Value,
    ) -> Value {
        let ns = key.2.clone();
        let current = if old["metadata"].get("deletionTimestamp").is_some() {
            old
        } else {
            let mut new = old;
            new["metadata"]["deletionTimestamp"] = json!(now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            new["status"]["phase"] = json!("Terminating");
            self.rv += 1;
            new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            let shared = Arc::new(new.clone());
            self.objects.insert(key, shared.clone());
            self.record(rt, "", "MODIFIED", shared);
            new
        };
        let mut doomed: Vec<(String, String, String)> = self
            .objects
            .keys()
            .filter(|(_, n, _)| *n == ns)
            .cloned()
            .collect();
        fastrand::shuffle(&mut doomed);
        for k in doomed {
            let Some(rt) = self
                .registry
                .iter()
                .find(|r| r.storage_key() == k.0)
                .cloned()
            else {
                continue;
            };
            let _ = self.delete(&rt, &k.1, &k.2, None, false);
        }
        self.finish_namespace(&ns);
        self.objects
            .get(&("/namespaces".to_string(), String::new(), ns))
            .map(|n| Value::clone(n))
            .unwrap_or(current)
    }

    /// Removes a terminating namespace once nothing is left in it.
    fn finish_namespace(&mut self, ns: &str) {
        let key = ("/namespaces".to_string(), String::new(), ns.to_string());
        let terminating = self
            .objects
            .get(&key)
            .is_some_and(|n| n["metadata"].get("deletionTimestamp").is_some());
        if !terminating || self.objects.keys().any(|(_, n, _)| n == ns) {
            return;
        }
        let Some(rt) = self.find("", "v1", "namespaces").cloned() else {
            return;
        };
        if let Some(gone) = self.objects.remove(&key) {
            let mut gone = Arc::unwrap_or_clone(gone);
            self.rv += 1;
            gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            gone["spec"]["finalizers"] = json!([]);
            self.record(&rt, "", "DELETED", Arc::new(gone));
        }
    }

    /// True when `ns` is being deleted: it accepts no new objects.
    pub fn terminating(&self, ns: &str) -> bool {
        self.objects
            .get(&("/namespaces".to_string(), String::new(), ns.to_string()))
            .is_some_and(|n| n["metadata"].get("deletionTimestamp").is_some())
    }

    fn after_delete(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.namespaced {
            self.finish_namespace(&stored_ns(obj));
        }
        if rt.plural == "customresourcedefinitions" {
            let Ok(types) = registry::from_crd(obj) else {
                return;
            };
            let Some(first) = types.first().cloned() else {
                return;
            };
            let key = first.storage_key();
            let doomed: Vec<(String, String, String)> = self
                .objects
                .keys()
                .filter(|(k, _, _)| *k == key)
                .cloned()
                .collect();
            for k in doomed {
                if let Some(v) = self.objects.remove(&k) {
                    self.rv += 1;
                    let mut v = Arc::unwrap_or_clone(v);
                    v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                    self.record(&first, &k.1, "DELETED", Arc::new(v));
                }
            }
            self.registry
                .retain(|r| r.storage_key() != key || !r.custom);
        }
    }

    fn register_crd(&mut self, crd: &Value) {
        let Ok(types) = registry::from_crd(crd) else {
            return;
        };
        if let Some(first) = types.first() {
            let key = first.storage_key();
            self.registry
                .retain(|r| !(r.custom && r.storage_key() == key));
        }
        self.registry.extend(types);
    }
}

/// Fills both Event shapes (core `v1` and `events.k8s.io/v1`) from whichever was written, so the
/// one stored object reads correctly through either API.
fn fill_event_views(e: &mut Value) {
    let Some(m) = e.as_object_mut() else { return };
    let pairs = [
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("deprecatedCount", "count"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("reportingController", "reportingComponent"),
    ];
    for (new, old) in pairs {
        match (m.get(new).cloned(), m.get(old).cloned()) {
            (Some(v), None) => {
                m.insert(old.into(), v);
            }
            (None, Some(v)) => {
                m.insert(new.into(), v);
            }
            _ => {}
        }
    }
    if let Some(series) = m.get("series").cloned() {
        if let Some(c) = series.get("count") {
            m.insert("count".into(), c.clone());
        }
        if let Some(t) = series.get("lastObservedTime").and_then(Value::as_str) {
            let secs = t
                .split('.')
                .next()
                .unwrap_or(t)
                .trim_end_matches('Z')
                .to_string()
                + "Z";
            m.insert("lastTimestamp".into(), json!(secs));
        }
    }
    if !m.contains_key("source")
        && let Some(c) = m.get("reportingController").cloned()
    {
        m.insert("source".into(), json!({"component": c}));
    }
    if !m.contains_key("lastTimestamp")
        && let Some(t) = m.get("eventTime").and_then(Value::as_str)
    {
        // Core Events carry second precision.
        let secs = t
            .split('.')
            .next()
            .unwrap_or(t)
            .trim_end_matches('Z')
            .to_string()
            + "Z";
        m.insert("lastTimestamp".into(), json!(secs));
        m.entry("firstTimestamp").or_insert(json!(secs));
    }
}

fn stored_ns(v: &Value) -> String {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn crd_status(crd: &Value) -> Value {
    let now = now();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let versions: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: WriteOpts = WriteOpts {
        fields: FieldValidation::Ignore,
        dry_run: false,
    };

    fn names(list: Vec<Value>) -> Vec<String> {
        list.iter()
            .map(|o| format!("{}/{}", stored_ns(o), name_of(o)))
            .collect()
    }

    #[test]
    fn a_list_holds_its_kind_and_namespace_only() {
        // Lists read a range of the store; neighbours in key order must stay out.
        let mut s = Store::new();
        let namespaces = s.find("", "v1", "namespaces").cloned().unwrap();
        let config_maps = s.find("", "v1", "configmaps").cloned().unwrap();
        let secrets = s.find("", "v1", "secrets").cloned().unwrap();
        for ns in ["a", "a-b", "ab", "b"] {
            s.create(&namespaces, "", json!({"metadata": {"name": ns}}), OPTS)
                .unwrap();
            for name in ["y", "x"] {
                for rt in [&config_maps, &secrets] {
                    s.create(rt, ns, json!({"metadata": {"name": name}}), OPTS)
                        .unwrap();
                }
            }
        }
        assert_eq!(names(s.list(&config_maps, Some("a"))), ["a/x", "a/y"]);
        assert_eq!(names(s.list(&secrets, Some("ab"))), ["ab/x", "ab/y"]);
        assert!(s.list(&config_maps, Some("a-")).is_empty());
        let all = s.list(&config_maps, None);
        assert_eq!(
            names(all.clone()),
            ["a/x", "a/y", "a-b/x", "a-b/y", "ab/x", "ab/y", "b/x", "b/y"]
        );
        assert!(all.iter().all(|o| o["kind"] == "ConfigMap"));
        let cluster = names(s.list(&namespaces, None));
        assert_eq!(
            cluster,
            [
                "/a",
                "/a-b",
                "/ab",
                "/b",
                "/default",
                "/kube-public",
                "/kube-system"
            ]
        );
    }
}
