//! The in-memory store: collections by kind of JSON objects with string ids, each owned by an
//! organization.
//!
//! Two kinds of change are kept apart. The vendor API changes objects through the counted
//! methods ([`Store::create`], [`Store::update`], [`Store::delete`]), so that tests can say
//! "re-applying wrote nothing" from counters rather than from sleeps. Tests change objects
//! behind the API's back (drift, lost state) through the `hand_*` methods, which count nothing.
//! Mutating *requests* are counted apart again ([`Store::note_write_request`]): a request that
//! fails still shows that a client tried to write.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::ids;

/// How [`Store::new_id`] makes ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdStyle {
    /// `"1"`, `"2"`, … across all kinds.
    Sequential,
    /// Version-4 UUIDs in text form.
    Uuid,
}

/// One stored object.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Id of the organization that owns it.
    pub org: String,
    /// The object.
    pub value: Value,
    /// Insertion sequence: listings come back in creation order, as vendors' default
    /// orderings mostly do.
    seq: u64,
}

/// Writes of one kind through the vendor API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Objects created.
    pub creates: u64,
    /// Objects changed (every counted update, even one that left the object as it was: the
    /// client still wrote).
    pub updates: u64,
    /// Objects deleted.
    pub deletes: u64,
}

impl WriteCounts {
    /// All writes.
    pub fn total(&self) -> u64 {
        self.creates + self.updates + self.deletes
    }
}

/// Why a store operation did nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No object with this id.
    #[error("no {kind} object with id {id:?}")]
    NotFound {
        /// Kind.
        kind: String,
        /// Id.
        id: String,
    },
    /// An object with this id exists already.
    #[error("a {kind} object with id {id:?} exists already")]
    Duplicate {
        /// Kind.
        kind: String,
        /// Id.
        id: String,
    },
    /// A hand patch that is not a JSON object.
    #[error("a patch must be a JSON object (a JSON merge patch)")]
    BadPatch,
}

/// Ids by the value of one field, in creation order: value → seq → id.
type FieldIndex = HashMap<String, BTreeMap<u64, String>>;

/// The objects of one kind, with the orders listings need kept as indexes, so that a
/// listing (or one organization's share of it) costs what it returns rather than a sort of
/// the whole kind: simulators serve thousands of organizations in benchmarks.
#[derive(Debug, Default)]
struct Table {
    records: HashMap<String, Record>,
    /// Creation order: seq → id.
    order: BTreeMap<u64, String>,
    /// Creation order within each organization: org → seq → id.
    by_org: HashMap<String, BTreeMap<u64, String>>,
    /// Declared string fields ([`Store::index_field`]), kept exact on every change.
    fields: BTreeMap<&'static str, FieldIndex>,
}

/// The value `field` of `v` has, when it is a string (the only values indexed).
fn field_key<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get(field).and_then(Value::as_str)
}

impl Table {
    fn insert(&mut self, id: &str, record: Record) {
        self.order.insert(record.seq, id.to_string());
        self.by_org
            .entry(record.org.clone())
            .or_default()
            .insert(record.seq, id.to_string());
        self.index_fields(id, &record, true);
        self.records.insert(id.to_string(), record);
    }

    fn remove(&mut self, id: &str) -> Option<Record> {
        let record = self.records.remove(id)?;
        self.order.remove(&record.seq);
        self.unindex_org(&record.org, record.seq);
        self.index_fields(id, &record, false);
        Some(record)
    }

    /// Adds `record` to (or takes it out of) the field indexes.
    fn index_fields(&mut self, id: &str, record: &Record, add: bool) {
        for (field, index) in &mut self.fields {
            let Some(key) = field_key(&record.value, field) else {
                continue;
            };
            if add {
                index
                    .entry(key.to_string())
                    .or_default()
                    .insert(record.seq, id.to_string());
            } else if let Some(ids) = index.get_mut(key) {
                ids.remove(&record.seq);
                if ids.is_empty() {
                    index.remove(key);
                }
            }
        }
    }

    /// Changes the object `id` through `f`, keeping the field indexes exact.
    fn modify<T>(&mut self, id: &str, f: impl FnOnce(&mut Value) -> T) -> Option<T> {
        if self.fields.is_empty() {
            return self.records.get_mut(id).map(|r| f(&mut r.value));
        }
        let record = self.records.remove(id)?;
        self.index_fields(id, &record, false);
        let mut record = record;
        let out = f(&mut record.value);
        self.index_fields(id, &record, true);
        self.records.insert(id.to_string(), record);
        Some(out)
    }

    /// The objects whose `field` is the string `value`, in creation order.
    fn by_field<'a>(
        &'a self,
        field: &str,
        value: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Record)> + use<'a> {
        self.fields
            .get(field)
            .and_then(|index| index.get(value))
            .into_iter()
            .flat_map(|ids| ids.values())
            .filter_map(|id| self.records.get_key_value(id))
            .map(|(id, r)| (id.as_str(), r))
    }

    fn unindex_org(&mut self, org: &str, seq: u64) {
        if let Some(ids) = self.by_org.get_mut(org) {
            ids.remove(&seq);
            if ids.is_empty() {
                self.by_org.remove(org);
            }
        }
    }

    /// Every object, in creation order.
    fn iter(&self) -> impl Iterator<Item = (&str, &Record)> {
        self.order
            .values()
            .filter_map(|id| self.records.get_key_value(id))
            .map(|(id, r)| (id.as_str(), r))
    }

    /// The objects of `org`, in creation order.
    fn iter_org<'a>(&'a self, org: &str) -> impl Iterator<Item = (&'a str, &'a Record)> {
        self.by_org
            .get(org)
            .into_iter()
            .flat_map(|ids| ids.values())
            .filter_map(|id| self.records.get_key_value(id))
            .map(|(id, r)| (id.as_str(), r))
    }
}

/// Collections by kind; see the module docs.
#[derive(Debug)]
pub struct Store {
    ids: IdStyle,
    rng: fastrand::Rng,
    next_id: u64,
    next_numbers: BTreeMap<String, u64>,
    next_seq: u64,
    kinds: BTreeMap<String, Table>,
    counts: BTreeMap<String, WriteCounts>,
    write_requests: u64,
}

impl Store {
    /// An empty store whose generated ids follow `ids`.
    pub fn new(ids: IdStyle) -> Self {
        Self::with_seed(ids, fastrand::u64(..))
    }

    /// An empty store whose generated ids are reproducible from `seed`.
    pub fn with_seed(ids: IdStyle, seed: u64) -> Self {
        Self {
            ids,
            rng: fastrand::Rng::with_seed(seed),
            next_id: 0,
            next_numbers: BTreeMap::new(),
            next_seq: 0,
            kinds: BTreeMap::new(),
            counts: BTreeMap::new(),
            write_requests: 0,
        }
    }

    /// A fresh id (never one in use in any kind).
    pub fn new_id(&mut self) -> String {
        loop {
            let id = match self.ids {
                IdStyle::Sequential => {
                    self.next_id += 1;
                    self.next_id.to_string()
                }
                IdStyle::Uuid => ids::uuid_v4(&mut self.rng),
            };
            if !self.kinds.values().any(|t| t.records.contains_key(&id)) {
                return id;
            }
        }
    }

    /// A fresh numeric id for an object of `kind`, for vendors whose ids are integers counted
    /// per collection (Rossum). Each kind counts from its own offset, derived from its name, so
    /// that ids of different kinds rarely coincide and a client that mixes kinds up is caught,
    /// as it would be at a real deployment. Never one in use in `kind`.
    pub fn new_numeric_id(&mut self, kind: &str) -> u64 {
        let start =
            1000 + 1000 * (kind.len() as u64 % 7) + kind.bytes().map(u64::from).sum::<u64>();
        let n = self.next_numbers.entry(kind.to_string()).or_insert(start);
        loop {
            *n += 1;
            let taken = self
                .kinds
                .get(kind)
                .is_some_and(|t| t.records.contains_key(&n.to_string()));
            if !taken {
                return *n;
            }
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn count(&mut self, kind: &str) -> &mut WriteCounts {
        self.counts.entry(kind.to_string()).or_default()
    }

    /// Stores a new object (counted as a create). `id` absent: a generated one. Returns the id.
    pub fn create(
        &mut self,
        kind: &str,
        id: Option<String>,
        org: &str,
        value: Value,
    ) -> Result<String, StoreError> {
        let id = match id {
            Some(id) => id,
            None => self.new_id(),
        };
        self.insert_raw(kind, &id, org, value)?;
        self.count(kind).creates += 1;
        Ok(id)
    }

    fn insert_raw(
        &mut self,
        kind: &str,
        id: &str,
        org: &str,
        value: Value,
    ) -> Result<(), StoreError> {
        if self.get(kind, id).is_some() {
            return Err(StoreError::Duplicate {
                kind: kind.into(),
                id: id.into(),
            });
        }
        let seq = self.seq();
        self.kinds.entry(kind.to_string()).or_default().insert(
            id,
            Record {
                org: org.to_string(),
                value,
                seq,
            },
        );
        Ok(())
    }

    /// Object `id` of `kind`.
    pub fn get(&self, kind: &str, id: &str) -> Option<&Record> {
        self.kinds.get(kind)?.records.get(id)
    }

    /// Whether object `id` of `kind` exists.
    pub fn contains(&self, kind: &str, id: &str) -> bool {
        self.get(kind, id).is_some()
    }

    /// All objects of `kind` with their ids, in creation order.
    pub fn list(&self, kind: &str) -> Vec<(&str, &Record)> {
        self.iter(kind).collect()
    }

    /// All objects of `kind` with their ids, in creation order, without collecting them.
    pub fn iter(&self, kind: &str) -> impl Iterator<Item = (&str, &Record)> {
        self.kinds.get(kind).into_iter().flat_map(Table::iter)
    }

    /// Objects of `kind` owned by `org`, in creation order (from an index: the cost is the
    /// organization's objects, not the kind's).
    pub fn in_org(&self, kind: &str, org: &str) -> Vec<(&str, &Record)> {
        self.iter_org(kind, org).collect()
    }

    /// Objects of `kind` owned by `org`, in creation order, without collecting them.
    pub fn iter_org<'a>(
        &'a self,
        kind: &str,
        org: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Record)> {
        self.kinds
            .get(kind)
            .into_iter()
            .flat_map(move |t| t.iter_org(org))
    }

    /// The first object of `kind` (in creation order) that `pred` accepts.
    pub fn find(
        &self,
        kind: &str,
        mut pred: impl FnMut(&str, &Record) -> bool,
    ) -> Option<(&str, &Record)> {
        self.iter(kind).find(|(id, r)| pred(id, r))
    }

    /// Keeps an index of the string values of `field` in objects of `kind` (a username, an
    /// inbox address), so that [`Store::by_field`] answers without a scan. Every change goes
    /// through the store, so the index is exact; objects stored before the call are indexed
    /// too.
    pub fn index_field(&mut self, kind: &str, field: &'static str) {
        let table = self.kinds.entry(kind.to_string()).or_default();
        if table.fields.contains_key(field) {
            return;
        }
        let mut index = FieldIndex::new();
        for (id, r) in table.iter() {
            if let Some(key) = field_key(&r.value, field) {
                index
                    .entry(key.to_string())
                    .or_default()
                    .insert(r.seq, id.to_string());
            }
        }
        table.fields.insert(field, index);
    }

    /// Objects of `kind` whose `field` is the string `value`, in creation order: from the index
    /// when [`Store::index_field`] declared one, else by a scan (the same answer).
    pub fn by_field<'a>(
        &'a self,
        kind: &str,
        field: &'a str,
        value: &'a str,
    ) -> Vec<(&'a str, &'a Record)> {
        let Some(table) = self.kinds.get(kind) else {
            return Vec::new();
        };
        if table.fields.contains_key(field) {
            return table.by_field(field, value).collect();
        }
        table
            .iter()
            .filter(|(_, r)| field_key(&r.value, field) == Some(value))
            .collect()
    }

    /// Changes object `id` through `f` (counted as an update).
    pub fn update<T>(
        &mut self,
        kind: &str,
        id: &str,
        f: impl FnOnce(&mut Value) -> T,
    ) -> Result<T, StoreError> {
        let out = self.update_uncounted(kind, id, f)?;
        self.count(kind).updates += 1;
        Ok(out)
    }

    /// Changes object `id` through `f` without counting it: what the vendor changes by itself
    /// as a consequence of another write (the other side of a relation, a last-login time), or
    /// the parts of one write that reach more than one object. The client wrote once, and that
    /// one write is counted where it was addressed.
    pub fn update_uncounted<T>(
        &mut self,
        kind: &str,
        id: &str,
        f: impl FnOnce(&mut Value) -> T,
    ) -> Result<T, StoreError> {
        self.kinds
            .get_mut(kind)
            .and_then(|t| t.modify(id, f))
            .ok_or_else(|| StoreError::NotFound {
                kind: kind.into(),
                id: id.into(),
            })
    }

    /// Marks object `id` deleted through `f` and keeps it (vendors that delete asynchronously,
    /// or keep deleted users around), counted as a delete.
    pub fn soft_delete<T>(
        &mut self,
        kind: &str,
        id: &str,
        f: impl FnOnce(&mut Value) -> T,
    ) -> Result<T, StoreError> {
        let out = self.update_uncounted(kind, id, f)?;
        self.count(kind).deletes += 1;
        Ok(out)
    }

    /// Moves object `id` to organization `org`, uncounted: vendors that let an object change
    /// organization (a Dataloop project) move its record, and what hangs off it, with it. The
    /// client's one write (the move) is counted where it was addressed.
    pub fn reassign(&mut self, kind: &str, id: &str, org: &str) -> Result<(), StoreError> {
        let table = self
            .kinds
            .get_mut(kind)
            .filter(|t| t.records.contains_key(id))
            .ok_or_else(|| StoreError::NotFound {
                kind: kind.into(),
                id: id.into(),
            })?;
        if let Some(mut rec) = table.remove(id) {
            rec.org = org.to_string();
            table.insert(id, rec);
        }
        Ok(())
    }

    /// Stores a new object without counting it: what the vendor makes by itself as part of
    /// another write (a project's creator becoming its first member). `id` absent: a generated
    /// one. Returns the id.
    pub fn create_uncounted(
        &mut self,
        kind: &str,
        id: Option<String>,
        org: &str,
        value: Value,
    ) -> Result<String, StoreError> {
        let id = match id {
            Some(id) => id,
            None => self.new_id(),
        };
        self.insert_raw(kind, &id, org, value)?;
        Ok(id)
    }

    /// Deletes every object of `kind` that `pred` accepts without counting: the vendor's own
    /// cascade of a delete counted where the client addressed it. Returns how many.
    pub fn delete_where_uncounted(
        &mut self,
        kind: &str,
        mut pred: impl FnMut(&str, &Record) -> bool,
    ) -> usize {
        let ids: Vec<String> = self
            .list(kind)
            .into_iter()
            .filter(|(id, r)| pred(id, r))
            .map(|(id, _)| id.to_string())
            .collect();
        if let Some(t) = self.kinds.get_mut(kind) {
            for id in &ids {
                t.remove(id);
            }
        }
        ids.len()
    }

    /// Deletes object `id` (counted as a delete when it existed).
    pub fn delete(&mut self, kind: &str, id: &str) -> Option<Record> {
        let removed = self.kinds.get_mut(kind)?.remove(id)?;
        self.count(kind).deletes += 1;
        Some(removed)
    }

    /// Deletes every object of `kind` that `pred` accepts (each counted); returns how many.
    pub fn delete_where(
        &mut self,
        kind: &str,
        mut pred: impl FnMut(&str, &Record) -> bool,
    ) -> usize {
        let ids: Vec<String> = self
            .list(kind)
            .into_iter()
            .filter(|(id, r)| pred(id, r))
            .map(|(id, _)| id.to_string())
            .collect();
        for id in &ids {
            self.delete(kind, id);
        }
        ids.len()
    }

    /// Records one mutating request received by the vendor API, whatever its outcome.
    pub fn note_write_request(&mut self) {
        self.write_requests += 1;
    }

    /// Mutating requests received (see [`Store::note_write_request`]).
    pub fn write_requests(&self) -> u64 {
        self.write_requests
    }

    /// Writes of `kind` through the API so far.
    pub fn writes(&self, kind: &str) -> WriteCounts {
        self.counts.get(kind).copied().unwrap_or_default()
    }

    /// Writes of every kind through the API so far.
    pub fn total_writes(&self) -> u64 {
        self.counts.values().map(WriteCounts::total).sum()
    }

    /// Sets every counter back to zero (after seeding, so that tests count from there).
    pub fn reset_counters(&mut self) {
        self.counts.clear();
        self.write_requests = 0;
    }

    /// Kinds that hold or held objects.
    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// Test hand edit: stores an object (uncounted).
    pub fn hand_insert(
        &mut self,
        kind: &str,
        id: &str,
        org: &str,
        value: Value,
    ) -> Result<(), StoreError> {
        self.insert_raw(kind, id, org, value)
    }

    /// Test hand edit: applies a JSON merge patch (RFC 7386: `null` removes a key) to object
    /// `id` (uncounted).
    pub fn hand_patch(&mut self, kind: &str, id: &str, patch: &Value) -> Result<(), StoreError> {
        if !patch.is_object() {
            return Err(StoreError::BadPatch);
        }
        self.kinds
            .get_mut(kind)
            .and_then(|t| t.modify(id, |v| json_patch::merge(v, patch)))
            .ok_or_else(|| StoreError::NotFound {
                kind: kind.into(),
                id: id.into(),
            })
    }

    /// Test hand edit: removes object `id` (uncounted).
    pub fn hand_remove(&mut self, kind: &str, id: &str) -> Result<Record, StoreError> {
        self.kinds
            .get_mut(kind)
            .and_then(|t| t.remove(id))
            .ok_or_else(|| StoreError::NotFound {
                kind: kind.into(),
                id: id.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn api_writes_are_counted_per_kind_and_hand_edits_are_not() {
        let mut s = Store::with_seed(IdStyle::Sequential, 1);
        let a = s
            .create("roles", None, "o1", json!({"title": "A"}))
            .unwrap();
        let b = s
            .create("roles", Some("fixed".into()), "o2", json!({"title": "B"}))
            .unwrap();
        assert_eq!(b, "fixed");
        s.update("roles", &a, |v| v["title"] = json!("A2")).unwrap();
        assert!(s.delete("roles", &b).is_some());
        assert!(
            s.delete("roles", &b).is_none(),
            "a second delete is no write"
        );
        assert_eq!(
            s.writes("roles"),
            WriteCounts {
                creates: 2,
                updates: 1,
                deletes: 1
            }
        );
        assert_eq!(s.total_writes(), 4);

        s.hand_insert("roles", "h", "o1", json!({"title": "H"}))
            .unwrap();
        s.hand_patch("roles", "h", &json!({"title": "H2", "extra": 1}))
            .unwrap();
        s.hand_patch("roles", "h", &json!({"extra": null})).unwrap();
        assert_eq!(s.get("roles", "h").unwrap().value, json!({"title": "H2"}));
        s.hand_remove("roles", "h").unwrap();
        assert_eq!(s.total_writes(), 4, "hand edits count nothing");
        assert_eq!(s.writes("users"), WriteCounts::default());
    }

    #[test]
    fn listings_keep_creation_order_and_filter_by_org() {
        let mut s = Store::with_seed(IdStyle::Uuid, 2);
        let ids: Vec<String> = (0..20)
            .map(|i| {
                let org = if i % 2 == 0 { "even" } else { "odd" };
                s.create("things", None, org, json!({ "i": i })).unwrap()
            })
            .collect();
        let listed: Vec<&str> = s.list("things").into_iter().map(|(id, _)| id).collect();
        assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
        let odd: Vec<i64> = s
            .in_org("things", "odd")
            .into_iter()
            .map(|(_, r)| r.value["i"].as_i64().unwrap())
            .collect();
        assert_eq!(odd, vec![1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
        assert!(ids.iter().all(|id| super::ids::is_uuid(id)));
        assert_eq!(
            s.find("things", |_, r| r.value["i"] == 4).map(|(id, _)| id),
            Some(ids[4].as_str())
        );
        assert_eq!(s.delete_where("things", |_, r| r.org == "even"), 10);
        assert_eq!(s.list("things").len(), 10);
        assert_eq!(s.writes("things").deletes, 10);
    }

    #[test]
    fn duplicates_and_missing_objects_are_errors() {
        let mut s = Store::with_seed(IdStyle::Sequential, 3);
        let id = s.create("k", None, "o", json!({})).unwrap();
        assert_eq!(
            s.create("k", Some(id.clone()), "o", json!({})),
            Err(StoreError::Duplicate {
                kind: "k".into(),
                id: id.clone()
            })
        );
        assert!(matches!(
            s.update("k", "nope", |_| ()),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            s.hand_patch("k", &id, &json!([1])),
            Err(StoreError::BadPatch)
        );
        assert!(s.hand_remove("k", "nope").is_err());
        assert_eq!(s.writes("k").creates, 1, "failed writes count nothing");
        // Generated ids never collide with ids chosen by clients.
        s.create("k", Some("2".into()), "o", json!({})).unwrap();
        let next = s.new_id();
        assert_ne!(next, "2");
        assert!(!s.contains("k", &next));
    }

    #[test]
    fn numeric_ids_count_per_kind_from_their_own_offsets() {
        let mut s = Store::with_seed(IdStyle::Sequential, 5);
        let q1 = s.new_numeric_id("queues");
        let q2 = s.new_numeric_id("queues");
        let h1 = s.new_numeric_id("hooks");
        assert_eq!(q2, q1 + 1);
        assert_ne!(h1, q1, "kinds start apart");
        assert!(q1 > 1000 && h1 > 1000);
        // An id a caller chose is never handed out again.
        s.create("queues", Some((q2 + 1).to_string()), "o", json!({}))
            .unwrap();
        assert_eq!(s.new_numeric_id("queues"), q2 + 2);
    }

    #[test]
    fn side_effects_and_soft_deletes_are_counted_as_the_vendor_would() {
        let mut s = Store::with_seed(IdStyle::Sequential, 6);
        let id = s
            .create("users", None, "o", json!({"active": true}))
            .unwrap();
        s.update_uncounted("users", &id, |v| v["last_login"] = json!("now"))
            .unwrap();
        assert_eq!(s.writes("users").updates, 0, "bookkeeping is no write");
        s.soft_delete("users", &id, |v| v["active"] = json!(false))
            .unwrap();
        assert_eq!(
            s.get("users", &id).unwrap().value,
            json!({"active": false, "last_login": "now"}),
            "kept"
        );
        assert_eq!(s.writes("users").deletes, 1);
        assert!(s.update_uncounted("users", "nope", |_| ()).is_err());
        assert!(s.soft_delete("users", "nope", |_| ()).is_err());
        assert_eq!(s.writes("users").deletes, 1);
    }

    #[test]
    fn moves_creates_and_cascades_of_a_counted_write_count_nothing() {
        let mut s = Store::with_seed(IdStyle::Sequential, 7);
        let id = s
            .create("projects", None, "o1", json!({"name": "p"}))
            .unwrap();
        s.reassign("projects", &id, "o2").unwrap();
        assert!(s.in_org("projects", "o1").is_empty());
        assert_eq!(s.in_org("projects", "o2").len(), 1);
        assert!(matches!(
            s.reassign("projects", "nope", "o2"),
            Err(StoreError::NotFound { .. })
        ));
        let m = s
            .create_uncounted("members", Some(format!("{id}/a")), "o2", json!({"p": id}))
            .unwrap();
        s.create_uncounted("members", None, "o2", json!({"p": "other"}))
            .unwrap();
        assert!(
            s.create_uncounted("members", Some(m), "o2", json!({}))
                .is_err()
        );
        assert_eq!(
            s.delete_where_uncounted("members", |_, r| r.value["p"] == id.as_str()),
            1
        );
        assert_eq!(s.list("members").len(), 1);
        assert_eq!(
            s.writes("projects"),
            WriteCounts {
                creates: 1,
                updates: 0,
                deletes: 0
            }
        );
        assert_eq!(s.writes("members"), WriteCounts::default());
    }

    #[test]
    fn indexes_follow_every_change_of_membership_and_order() {
        let mut s = Store::with_seed(IdStyle::Sequential, 8);
        let ids: Vec<String> = (0..30)
            .map(|i| {
                let org = ["a", "b", "c"][i % 3];
                s.create("things", None, org, json!({ "i": i })).unwrap()
            })
            .collect();
        s.delete("things", &ids[3]);
        s.hand_remove("things", &ids[4]).unwrap();
        s.delete_where_uncounted("things", |_, r| r.value["i"] == 5);
        s.delete_where("things", |_, r| r.value["i"] == 6);
        s.reassign("things", &ids[0], "c").unwrap();
        s.reassign("things", &ids[29], "a").unwrap();
        s.hand_insert("things", "late", "b", json!({"i": 30}))
            .unwrap();
        // What the indexes answer must be what a scan of every object in creation order says.
        let all: Vec<i64> = s
            .list("things")
            .into_iter()
            .map(|(_, r)| r.value["i"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (0..31).filter(|i| !(3..=6).contains(i)).collect();
        assert_eq!(all, expected);
        for org in ["a", "b", "c", "none"] {
            let indexed: Vec<&str> = s
                .in_org("things", org)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let scanned: Vec<&str> = s
                .list("things")
                .into_iter()
                .filter(|(_, r)| r.org == org)
                .map(|(id, _)| id)
                .collect();
            assert_eq!(indexed, scanned, "{org}");
        }
        assert_eq!(
            s.in_org("things", "c").first().map(|(id, _)| *id),
            Some(ids[0].as_str())
        );
        assert_eq!(
            s.in_org("things", "a").last().map(|(id, _)| *id),
            Some(ids[29].as_str())
        );
        assert!(s.in_org("things", "none").is_empty());
    }

    #[test]
    fn field_indexes_answer_what_a_scan_answers_through_every_change() {
        let mut indexed = Store::with_seed(IdStyle::Sequential, 9);
        let mut scanned = Store::with_seed(IdStyle::Sequential, 9);
        indexed
            .create("users", None, "o", json!({"username": "early"}))
            .unwrap();
        scanned
            .create("users", None, "o", json!({"username": "early"}))
            .unwrap();
        // Declared after an object exists: that object is indexed too.
        indexed.index_field("users", "username");
        for s in [&mut indexed, &mut scanned] {
            let a = s
                .create("users", None, "o", json!({"username": "a"}))
                .unwrap();
            let b = s
                .create("users", None, "o", json!({"username": "b"}))
                .unwrap();
            let c = s
                .create("users", None, "p", json!({"username": "a"}))
                .unwrap();
            s.create("users", None, "p", json!({"username": 7}))
                .unwrap();
            s.update("users", &b, |v| v["username"] = json!("a"))
                .unwrap();
            s.update_uncounted("users", &a, |v| v["username"] = json!("z"))
                .unwrap();
            s.hand_patch("users", &c, &json!({"username": null}))
                .unwrap();
            s.hand_patch("users", &c, &json!({"username": "c"}))
                .unwrap();
            s.reassign("users", &c, "o").unwrap();
            s.soft_delete("users", &a, |v| v["deleted"] = json!(true))
                .unwrap();
            s.hand_insert("users", "h", "o", json!({"username": "a"}))
                .unwrap();
            s.delete("users", "h");
            s.hand_insert("users", "h2", "o", json!({"username": "a"}))
                .unwrap();
        }
        for name in ["early", "a", "b", "c", "z", "7", "missing"] {
            let ids = |s: &Store| -> Vec<String> {
                s.by_field("users", "username", name)
                    .into_iter()
                    .map(|(id, _)| id.to_string())
                    .collect()
            };
            assert_eq!(ids(&indexed), ids(&scanned), "{name}");
        }
        assert_eq!(indexed.by_field("users", "username", "a").len(), 2);
        assert!(indexed.by_field("nothing", "username", "a").is_empty());
    }

    #[test]
    fn write_requests_are_counted_apart() {
        let mut s = Store::with_seed(IdStyle::Sequential, 4);
        s.note_write_request();
        s.note_write_request();
        assert_eq!(s.write_requests(), 2);
        assert_eq!(s.total_writes(), 0);
    }
}
