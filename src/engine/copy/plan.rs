//! Pure deep-copy decisions: what a copy of a template object should look like, which target
//! object is its copy, and what to do about the difference. No IO.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Map, Value, json};

use crate::vendors::{CopyFields, Embedded, Identity, KindSpec, MarkerAt, RefCodec, RefTarget};

/// Fields that identify an object at its vendor and never copy, whatever a kind declares.
const ALWAYS_DROPPED: &[&str] = &["id", "url"];

/// Key of the marker inside an object's metadata.
pub const MARKER_KEY: &str = "orgops";

/// Template object id → copy id, per kind.
#[derive(Clone, Debug, Default)]
pub struct IdMap {
    map: HashMap<&'static str, HashMap<String, String>>,
}

impl IdMap {
    /// Records that `source` of `kind` was copied as `target`.
    pub fn insert(&mut self, kind: &'static str, source: String, target: String) {
        self.map.entry(kind).or_default().insert(source, target);
    }

    /// The copy of `source` of `kind`.
    pub fn get(&self, kind: &str, source: &str) -> Option<&str> {
        self.map.get(kind)?.get(source).map(String::as_str)
    }

    /// Every mapping of one kind.
    pub fn get_kind(&self, kind: &str) -> Option<&HashMap<String, String>> {
        self.map.get(kind)
    }

    /// Number of mapped objects.
    pub fn len(&self) -> usize {
        self.map.values().map(HashMap::len).sum()
    }

    /// True when nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a plan needs besides the objects.
pub struct CopyContext<'a> {
    /// The vendor's reference encoding.
    pub codec: &'a dyn RefCodec,
    /// Owner key written into markers.
    pub owner: &'a str,
    /// Template organization id.
    pub template_org: &'a str,
    /// Target organization id.
    pub target_org: &'a str,
    /// Copies made so far.
    pub ids: &'a IdMap,
}

/// Which references a pass sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Create and update everything except deferred references.
    First,
    /// Set deferred references (e.g. `run_after`) once every object of the kind exists.
    Deferred,
}

/// What to do about one template object.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// No copy exists: create it from this body.
    Create(Value),
    /// The copy differs: patch these fields.
    Update {
        /// The copy's id.
        target_id: String,
        /// The fields that differ.
        patch: Value,
    },
    /// The copy matches.
    InSync {
        /// The copy's id.
        target_id: String,
    },
    /// The copy cannot be made (a dependency has no copy, or the vendor cannot create it).
    Blocked(String),
}

/// The decision for one template object.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// The template object's id.
    pub source_id: String,
    /// What to do.
    pub action: Action,
}

/// The marker written into a copy's metadata map ([`MarkerAt::Map`]).
pub fn marker(ctx: &CopyContext<'_>, kind: &KindSpec, source_id: &str) -> Value {
    json!({
        "owner": ctx.owner,
        "template": ctx.template_org,
        "kind": kind.name,
        "source": source_id,
    })
}

/// Prefix of a marker tag ([`MarkerAt::Tag`]).
const TAG_PREFIX: &str = "orgops:";

/// The marker tag of a copy: `orgops:<template org>:<kind>:<source id>`.
pub fn marker_tag(ctx: &CopyContext<'_>, kind: &KindSpec, source_id: &str) -> String {
    format!("{TAG_PREFIX}{}:{}:{source_id}", ctx.template_org, kind.name)
}

/// The body a copy of `source` should have in the target org, or why it cannot be made.
pub fn desired_copy(
    kind: &KindSpec,
    source: &Value,
    ctx: &CopyContext<'_>,
    pass: Pass,
) -> Result<Value, String> {
    let Value::Object(src) = source else {
        return Err("template object is not a JSON object".into());
    };
    let source_id = ctx.codec.object_id(source).unwrap_or_default();
    let mut body: Map<String, Value> = src
        .iter()
        .filter(|(k, _)| !ALWAYS_DROPPED.contains(&k.as_str()))
        .filter(|(k, _)| match kind.fields {
            CopyFields::Only(keep) => keep.contains(&k.as_str()),
            CopyFields::AllExcept(drop) => !drop.contains(&k.as_str()),
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for r in kind.refs {
        let top = r.path.split('.').next().unwrap_or(r.path);
        if r.deferred && pass == Pass::First {
            body.remove(top);
            continue;
        }
        let Some(field) = body.get_mut(top) else {
            continue;
        };
        let rest: Vec<&str> = r.path.split('.').skip(1).collect();
        match r.embedded {
            None => rewrite_at(field, &rest, &mut |v| rewrite_ref(v, r.target, ctx))?,
            Some(find) => rewrite_at(field, &rest, &mut |v| {
                rewrite_embedded(v, find, r.target, ctx)
            })?,
        }
    }
    match kind.identity {
        Identity::Marker(MarkerAt::Map(field)) => {
            let mut metadata = match body.remove(field) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            // Copies of copies carry someone's marker: ours is overwritten, never merged.
            metadata.insert(MARKER_KEY.into(), marker(ctx, kind, &source_id));
            body.insert(field.into(), Value::Object(metadata));
        }
        Identity::Marker(MarkerAt::Tag(field)) => {
            let mut tags: Vec<Value> = match body.remove(field) {
                Some(Value::Array(tags)) => tags
                    .into_iter()
                    .filter(|t| !t.as_str().is_some_and(|t| t.starts_with(TAG_PREFIX)))
                    .collect(),
                _ => Vec::new(),
            };
            tags.push(Value::String(marker_tag(ctx, kind, &source_id)));
            body.insert(field.into(), Value::Array(tags));
        }
        Identity::NaturalKey(_) => {}
    }
    Ok(Value::Object(body))
}

fn rewrite_at(
    value: &mut Value,
    path: &[&str],
    f: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    match path.split_first() {
        None => f(value),
        Some((&"*", rest)) => match value {
            Value::Array(items) => items.iter_mut().try_for_each(|i| rewrite_at(i, rest, f)),
            _ => Ok(()),
        },
        // Every scalar at any depth (references embedded in free-form JSON).
        Some((&"**", _)) => match value {
            Value::Array(items) => items.iter_mut().try_for_each(|i| rewrite_at(i, path, f)),
            Value::Object(map) => map.values_mut().try_for_each(|i| rewrite_at(i, path, f)),
            scalar => f(scalar),
        },
        Some((key, rest)) => match value.get_mut(*key) {
            Some(inner) => rewrite_at(inner, rest, f),
            None => Ok(()),
        },
    }
}

fn rewrite_ref(value: &mut Value, target: RefTarget, ctx: &CopyContext<'_>) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let Some(id) = ctx.codec.decode_ref(value) else {
        return Ok(());
    };
    let Some(mapped) = map_id(&id, target, ctx)? else {
        return Ok(());
    };
    *value = ctx.codec.encode_ref(target, &mapped);
    Ok(())
}

/// The id a reference to `id` of `target` has in the copy; `None`: kept as it is (shared).
fn map_id(id: &str, target: RefTarget, ctx: &CopyContext<'_>) -> Result<Option<String>, String> {
    match target {
        RefTarget::Organization if id == ctx.template_org => Ok(Some(ctx.target_org.to_string())),
        RefTarget::Organization => Err(format!(
            "references organization {id}, which is not the template"
        )),
        RefTarget::Kind(k) => match ctx.ids.get(k, id) {
            Some(t) => Ok(Some(t.to_string())),
            None => Err(format!("depends on {k}/{id}, which has no copy")),
        },
        RefTarget::Shared => Ok(None),
    }
}

/// Rewrites the id inside a string that embeds a reference; other values are left alone.
fn rewrite_embedded(
    value: &mut Value,
    find: Embedded,
    target: RefTarget,
    ctx: &CopyContext<'_>,
) -> Result<(), String> {
    let Value::String(text) = value else {
        return Ok(());
    };
    let Some(range) = find(text).filter(|r| text.get(r.clone()).is_some()) else {
        return Ok(());
    };
    if let Some(mapped) = map_id(&text[range.clone()], target, ctx)? {
        text.replace_range(range, &mapped);
    }
    Ok(())
}

/// The fields of `desired` that `observed` does not match, as a patch; `None` when in sync.
/// Lists of references compare as sets (vendors do not keep their order).
pub fn diff(kind: &KindSpec, desired: &Value, observed: &Value) -> Option<Value> {
    let Value::Object(want) = desired else {
        return None;
    };
    let unordered: Vec<&str> = kind
        .refs
        .iter()
        .filter_map(|r| r.path.strip_suffix(".*"))
        .filter(|p| !p.contains('.'))
        .collect();
    let mut patch = Map::new();
    for (k, v) in want {
        let have = observed.get(k).unwrap_or(&Value::Null);
        let same = if unordered.contains(&k.as_str()) {
            sorted(v) == sorted(have)
        } else {
            v == have
        };
        if !same {
            patch.insert(k.clone(), v.clone());
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Value::Array(items) => items.iter().map(|i| i.to_string()).collect(),
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    };
    out.sort();
    out
}

fn marker_source<'v>(
    kind: &KindSpec,
    at: MarkerAt,
    template_org: &str,
    v: &'v Value,
) -> Option<&'v str> {
    match at {
        MarkerAt::Map(field) => {
            let m = v.get(field)?.get(MARKER_KEY)?;
            if m.get("kind")?.as_str()? != kind.name || m.get("template")?.as_str()? != template_org
            {
                return None;
            }
            m.get("source")?.as_str()
        }
        MarkerAt::Tag(field) => v.get(field)?.as_array()?.iter().find_map(|t| {
            let rest = t.as_str()?.strip_prefix(TAG_PREFIX)?;
            let rest = rest.strip_prefix(template_org)?.strip_prefix(':')?;
            rest.strip_prefix(kind.name)?.strip_prefix(':')
        }),
    }
}

/// Decides, for every template object of one kind, what to do in the target org.
pub fn plan_kind(
    kind: &KindSpec,
    sources: &[Value],
    targets: &[Value],
    ctx: &CopyContext<'_>,
    pass: Pass,
) -> Vec<Planned> {
    let live = |v: &&Value| kind.skip.is_none_or(|skip| !skip(v));
    let mut sources: Vec<&Value> = sources.iter().filter(live).collect();
    sources.sort_by_key(|v| id_sort_key(ctx, v));
    let mut targets: Vec<&Value> = targets.iter().filter(live).collect();
    targets.sort_by_key(|v| id_sort_key(ctx, v));

    // Marker kinds: copy by recorded source. Natural-key kinds: queue per key, first come first.
    let mut by_marker: HashMap<&str, &Value> = HashMap::new();
    let mut by_key: BTreeMap<String, VecDeque<&Value>> = BTreeMap::new();
    match kind.identity {
        Identity::Marker(at) => {
            for t in &targets {
                if let Some(src) = marker_source(kind, at, ctx.template_org, t) {
                    by_marker.entry(src).or_insert(t);
                }
            }
        }
        Identity::NaturalKey(key) => {
            for t in &targets {
                if let Some(k) = key(t) {
                    by_key.entry(k).or_default().push_back(t);
                }
            }
        }
    }

    let mut out = Vec::with_capacity(sources.len());
    for (n, source) in sources.into_iter().enumerate() {
        let Some(source_id) = ctx.codec.object_id(source) else {
            // Counted and reported, never skipped in silence (a 0/0 "copied" would be a lie).
            out.push(Planned {
                source_id: format!("#{n}"),
                action: Action::Blocked("the template object has no id".into()),
            });
            continue;
        };
        let action = match desired_copy(kind, source, ctx, pass) {
            Err(reason) => Action::Blocked(reason),
            Ok(body) => {
                let existing = match kind.identity {
                    Identity::Marker(_) => by_marker.get(source_id.as_str()).copied(),
                    Identity::NaturalKey(key) => {
                        key(&body).and_then(|k| by_key.get_mut(&k).and_then(VecDeque::pop_front))
                    }
                };
                match existing {
                    Some(target) => {
                        let target_id = ctx.codec.object_id(target).unwrap_or_default();
                        match diff(kind, &body, target) {
                            Some(patch) => Action::Update { target_id, patch },
                            None => Action::InSync { target_id },
                        }
                    }
                    None if pass == Pass::Deferred => continue,
                    None => match kind.creatable.map(|c| c(&body)) {
                        Some(Err(reason)) => Action::Blocked(reason.to_string()),
                        _ => Action::Create(body),
                    },
                }
            }
        };
        out.push(Planned { source_id, action });
    }
    out
}

/// Why a copy is pruned: its template object is gone.
pub const GONE: &str = "its template object is gone";
/// The copies `spec.template.prune` deletes, each with why: copies made from this template
/// by this owner whose template object is gone (or skipped, e.g. deleted there). A second
/// object carrying the marker of a live template object is left alone: it may be a tenant's
/// duplicate of a copy, and which one orgops made cannot be told. Only kinds whose copies
/// carry a marker: an object found by its natural key carries no proof that orgops made it,
/// so it is never deleted. Pure.
pub fn prune_candidates<'t>(
    kind: &KindSpec,
    sources: &[Value],
    targets: &'t [Value],
    ctx: &CopyContext<'_>,
) -> Vec<(&'t Value, &'static str)> {
    let Identity::Marker(at) = kind.identity else {
        return Vec::new();
    };
    let live = |v: &&Value| kind.skip.is_none_or(|skip| !skip(v));
    let wanted: std::collections::HashSet<String> = sources
        .iter()
        .filter(live)
        .filter_map(|s| ctx.codec.object_id(s))
        .collect();
    let mut targets: Vec<&Value> = targets.iter().filter(live).collect();
    targets.sort_by_key(|v| id_sort_key(ctx, v));
    let mut out = Vec::new();
    for t in targets {
        let Some(source) = marker_source(kind, at, ctx.template_org, t) else {
            continue;
        };
        if !marked_by(at, ctx.owner, t) {
            continue;
        }
        if !wanted.contains(source) {
            out.push((t, GONE));
        }
    }
    out
}

/// Whether `owner` wrote the marker: a map marker names its owner; a tag marker lives in an
/// organization that only its one owner copies into.
fn marked_by(at: MarkerAt, owner: &str, v: &Value) -> bool {
    match at {
        MarkerAt::Map(field) => {
            v.get(field)
                .and_then(|m| m.get(MARKER_KEY))
                .and_then(|m| m.get("owner"))
                .and_then(Value::as_str)
                == Some(owner)
        }
        MarkerAt::Tag(_) => true,
    }
}

fn id_sort_key(ctx: &CopyContext<'_>, v: &Value) -> (u64, String) {
    let id = ctx.codec.object_id(v).unwrap_or_default();
    (id.parse().unwrap_or(u64::MAX), id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::RefField;
    use crate::vendors::rossum::kinds;

    /// References look like `kind/id`, as a minimal vendor encoding.
    struct Codec;
    impl RefCodec for Codec {
        fn decode_ref(&self, v: &Value) -> Option<String> {
            v.as_str()?.rsplit('/').next().map(str::to_string)
        }
        fn encode_ref(&self, t: RefTarget, id: &str) -> Value {
            match t {
                RefTarget::Organization => json!(format!("organizations/{id}")),
                RefTarget::Kind(k) => json!(format!("{k}/{id}")),
                RefTarget::Shared => json!(id),
            }
        }
    }

    /// `"<volume id>:/path"`, as Rendered.ai graph nodes reference volume files.
    fn volume_path(s: &str) -> Option<std::ops::Range<usize>> {
        let end = s.find(":/")?;
        (end > 0 && !s[..end].contains(char::is_whitespace)).then_some(0..end)
    }

    const GRAPHS: KindSpec = KindSpec {
        name: "graphs",
        refs: &[
            RefField::to("workspace", RefTarget::Kind("workspaces")),
            RefField::to("channel", RefTarget::Shared),
            RefField::to("graph.**", RefTarget::Kind("volumes")).embedded(volume_path),
        ],
        fields: CopyFields::AllExcept(&[]),
        identity: Identity::Marker(MarkerAt::Tag("tags")),
        creatable: None,
        skip: None,
        input: None,
        opt_in: false,
    };

    #[test]
    fn embedded_references_are_rewritten_shared_ones_kept_and_tags_mark_the_copy() {
        let mut ids = IdMap::default();
        ids.insert("workspaces", "w1".into(), "W1".into());
        ids.insert("volumes", "v1".into(), "V1".into());
        let source = json!({
            "id": "g1", "workspace": "workspaces/w1", "channel": "channels/shared-7",
            "tags": ["blue", "orgops:9:graphs:g0"],
            "graph": {"nodes": {"a": {"values": {"file": "v1:/data/a.png", "note": "ratio 1:/2 x"}},
                                "b": {"list": ["v1:/x", 3, null]}}},
        });
        let body = desired_copy(&GRAPHS, &source, &ctx(&ids), Pass::First).unwrap();
        assert_eq!(body["workspace"], json!("workspaces/W1"));
        assert_eq!(body["channel"], json!("channels/shared-7"), "shared: kept");
        assert_eq!(
            body["graph"]["nodes"]["a"]["values"]["file"],
            json!("V1:/data/a.png")
        );
        assert_eq!(
            body["graph"]["nodes"]["b"]["list"],
            json!(["V1:/x", 3, null])
        );
        // A string that does not embed a reference the finder accepts is left alone... or,
        // when it names an id without a copy, blocks the object instead of leaking a template id.
        let other = json!({"id": "g2", "graph": {"f": "v9:/y"}});
        let blocked = desired_copy(&GRAPHS, &other, &ctx(&ids), Pass::First).unwrap_err();
        assert!(blocked.contains("volumes/v9"), "{blocked}");
        // Someone else's marker tag is replaced, other tags kept; the copy is found by it.
        assert_eq!(body["tags"], json!(["blue", "orgops:1:graphs:g1"]));
        let mut copy = body.clone();
        copy["id"] = json!("G1");
        let plan = plan_kind(&GRAPHS, &[source], &[copy], &ctx(&ids), Pass::First);
        assert_eq!(
            plan[0].action,
            Action::InSync {
                target_id: "G1".into()
            }
        );
    }

    #[test]
    fn template_objects_without_an_id_are_counted_as_blocked() {
        let ids = IdMap::default();
        let plan = plan_kind(
            &kinds::LABELS,
            &[json!({"name": "no id"})],
            &[],
            &ctx(&ids),
            Pass::First,
        );
        assert_eq!(plan.len(), 1);
        assert!(matches!(&plan[0].action, Action::Blocked(why) if why.contains("no id")));
    }

    fn ctx(ids: &IdMap) -> CopyContext<'_> {
        CopyContext {
            codec: &Codec,
            owner: "ns/org",
            template_org: "1",
            target_org: "2",
            ids,
        }
    }

    fn queue(id: u64, ws: u64, schema: u64) -> Value {
        json!({"id": id, "url": format!("queues/{id}"), "name": format!("Q{id}"),
               "workspace": format!("workspaces/{ws}"), "schema": format!("schemas/{schema}"),
               "counts": {"to_review": 3}, "inbox": "inboxes/9", "users": ["users/1"],
               "metadata": {"team": "ap", "orgops": {"owner": "someone/else"}}})
    }

    #[test]
    fn copy_rewrites_refs_strips_fields_and_marks() {
        let mut ids = IdMap::default();
        ids.insert("workspaces", "10".into(), "110".into());
        ids.insert("schemas", "20".into(), "120".into());
        let body =
            desired_copy(&kinds::QUEUES, &queue(5, 10, 20), &ctx(&ids), Pass::First).unwrap();
        assert_eq!(body["workspace"], "workspaces/110");
        assert_eq!(body["schema"], "schemas/120");
        for gone in ["id", "url", "counts", "inbox", "users"] {
            assert!(body.get(gone).is_none(), "{gone} must not copy");
        }
        assert_eq!(body["metadata"]["team"], "ap");
        assert_eq!(
            body["metadata"]["orgops"],
            json!({"owner": "ns/org", "template": "1", "kind": "queues", "source": "5"})
        );
    }

    #[test]
    fn missing_dependency_blocks() {
        let ids = IdMap::default();
        let plan = plan_kind(
            &kinds::QUEUES,
            &[queue(5, 10, 20)],
            &[],
            &ctx(&ids),
            Pass::First,
        );
        assert!(matches!(&plan[0].action, Action::Blocked(r) if r.contains("workspaces/10")));
    }

    #[test]
    fn existing_copy_found_by_marker_and_diffed() {
        let mut ids = IdMap::default();
        ids.insert("workspaces", "10".into(), "110".into());
        ids.insert("schemas", "20".into(), "120".into());
        let c = ctx(&ids);
        let mut copy = desired_copy(&kinds::QUEUES, &queue(5, 10, 20), &c, Pass::First).unwrap();
        copy["id"] = json!(500);
        let plan = plan_kind(
            &kinds::QUEUES,
            &[queue(5, 10, 20)],
            &[copy.clone()],
            &c,
            Pass::First,
        );
        assert_eq!(
            plan[0].action,
            Action::InSync {
                target_id: "500".into()
            }
        );

        copy["name"] = json!("renamed by hand");
        let plan = plan_kind(
            &kinds::QUEUES,
            &[queue(5, 10, 20)],
            &[copy],
            &c,
            Pass::First,
        );
        assert_eq!(
            plan[0].action,
            Action::Update {
                target_id: "500".into(),
                patch: json!({"name": "Q5"})
            }
        );
    }

    #[test]
    fn prune_takes_only_our_marked_copies_of_gone_objects() {
        let mut ids = IdMap::default();
        ids.insert("workspaces", "10".into(), "110".into());
        ids.insert("schemas", "20".into(), "120".into());
        let c = ctx(&ids);
        let copy_of = |source: u64, id: u64| {
            let mut v =
                desired_copy(&kinds::QUEUES, &queue(source, 10, 20), &c, Pass::First).unwrap();
            v["id"] = json!(id);
            v
        };
        let kept = copy_of(5, 500);
        let second = copy_of(5, 501);
        let gone = copy_of(6, 600);
        let mut someone_elses = copy_of(7, 700);
        someone_elses["metadata"]["orgops"]["owner"] = json!("other/ns");
        let mut other_template = copy_of(8, 800);
        other_template["metadata"]["orgops"]["template"] = json!("999");
        let hand_made = json!({"id": 900, "name": "made by hand", "metadata": {}});
        let targets = vec![
            gone.clone(),
            second,
            kept,
            someone_elses,
            other_template,
            hand_made,
        ];
        let doomed: Vec<(String, &str)> =
            prune_candidates(&kinds::QUEUES, &[queue(5, 10, 20)], &targets, &c)
                .into_iter()
                .map(|(t, why)| (t["id"].to_string(), why))
                .collect();
        // 501 duplicates 500's marker: maybe a tenant's copy of the copy, so it stays.
        assert_eq!(doomed, vec![("600".to_string(), GONE)]);
        // Natural-key kinds carry no proof of who made them: never pruned.
        let natural = KindSpec {
            identity: Identity::NaturalKey(|v| v.get("name")?.as_str().map(str::to_string)),
            ..kinds::QUEUES
        };
        assert!(prune_candidates(&natural, &[], &[gone], &c).is_empty());
    }

    #[test]
    fn a_copy_of_another_template_is_not_ours() {
        let mut ids = IdMap::default();
        ids.insert("workspaces", "10".into(), "110".into());
        ids.insert("schemas", "20".into(), "120".into());
        let c = ctx(&ids);
        let mut copy = desired_copy(&kinds::QUEUES, &queue(5, 10, 20), &c, Pass::First).unwrap();
        copy["id"] = json!(500);
        copy["metadata"]["orgops"]["template"] = json!("999");
        let plan = plan_kind(
            &kinds::QUEUES,
            &[queue(5, 10, 20)],
            &[copy],
            &c,
            Pass::First,
        );
        assert!(matches!(plan[0].action, Action::Create(_)));
    }

    #[test]
    fn deferred_refs_wait_for_the_second_pass() {
        let mut ids = IdMap::default();
        ids.insert("queues", "5".into(), "105".into());
        let hook_a =
            json!({"id": 1, "name": "a", "queues": ["queues/5"], "run_after": [], "config": {}});
        let hook_b = json!({"id": 2, "name": "b", "queues": ["queues/5"], "run_after": ["hooks/1"], "config": {}});
        let c = ctx(&ids);
        let first = plan_kind(
            &kinds::HOOKS,
            &[hook_a.clone(), hook_b.clone()],
            &[],
            &c,
            Pass::First,
        );
        assert_eq!(first.len(), 2);
        for p in &first {
            let Action::Create(body) = &p.action else {
                panic!("{p:?}")
            };
            assert!(body.get("run_after").is_none());
            assert_eq!(body["queues"], json!(["queues/105"]));
        }
        // After creation: copies 11 and 12 exist without run_after.
        let mut ids2 = ids.clone();
        ids2.insert("hooks", "1".into(), "11".into());
        ids2.insert("hooks", "2".into(), "12".into());
        let c2 = ctx(&ids2);
        let targets: Vec<Value> = first
            .iter()
            .zip([11, 12])
            .map(|(p, id)| {
                let Action::Create(mut b) = p.action.clone() else {
                    unreachable!()
                };
                b["id"] = json!(id);
                b
            })
            .collect();
        let second = plan_kind(
            &kinds::HOOKS,
            &[hook_a, hook_b],
            &targets,
            &c2,
            Pass::Deferred,
        );
        // An absent list and an empty one are the same set.
        assert_eq!(
            second[0].action,
            Action::InSync {
                target_id: "11".into()
            }
        );
        assert_eq!(
            second[1].action,
            Action::Update {
                target_id: "12".into(),
                patch: json!({"run_after": ["hooks/11"]})
            }
        );
    }

    #[test]
    fn natural_keys_match_auto_created_email_templates() {
        let mut ids = IdMap::default();
        ids.insert("queues", "5".into(), "105".into());
        let src = json!({"id": 1, "queue": "queues/5", "type": "rejection_default", "name": "Default rejection", "subject": "We rejected {{doc}}", "message": "m"});
        let auto = json!({"id": 77, "queue": "queues/105", "type": "rejection_default", "name": "Default rejection", "subject": "Rejected", "message": "m", "organization": "organizations/2"});
        let plan = plan_kind(
            &kinds::EMAIL_TEMPLATES,
            &[src],
            &[auto],
            &ctx(&ids),
            Pass::First,
        );
        assert_eq!(
            plan[0].action,
            Action::Update {
                target_id: "77".into(),
                patch: json!({"subject": "We rejected {{doc}}"})
            }
        );
    }

    #[test]
    fn non_creatable_without_match_is_blocked() {
        let mut ids = IdMap::default();
        ids.insert("queues", "5".into(), "105".into());
        let src = json!({"id": 1, "queue": "queues/5", "type": "rejection_default", "name": "x"});
        let plan = plan_kind(
            &kinds::EMAIL_TEMPLATES,
            &[src],
            &[],
            &ctx(&ids),
            Pass::First,
        );
        assert!(matches!(plan[0].action, Action::Blocked(_)));
    }

    #[test]
    fn reference_lists_compare_as_sets() {
        let want = json!({"queues": ["queues/1", "queues/2"], "name": "h"});
        let have = json!({"queues": ["queues/2", "queues/1"], "name": "h", "extra": 1});
        assert_eq!(diff(&kinds::HOOKS, &want, &have), None);
        let have = json!({"queues": ["queues/2"], "name": "h"});
        assert_eq!(
            diff(&kinds::HOOKS, &want, &have),
            Some(json!({"queues": ["queues/1", "queues/2"]}))
        );
    }

    #[test]
    fn nested_action_refs_are_rewritten() {
        let mut ids = IdMap::default();
        ids.insert("queues", "5".into(), "105".into());
        ids.insert("labels", "3".into(), "103".into());
        let rule = json!({"id": 9, "name": "r", "queues": ["queues/5"], "organization": "organizations/1",
            "actions": [{"id": "a", "type": "add_label", "payload": {"labels": ["labels/3"]}},
                        {"id": "b", "type": "change_queue", "payload": {"queue": "queues/5"}}]});
        let body = desired_copy(&kinds::RULES, &rule, &ctx(&ids), Pass::First).unwrap();
        assert_eq!(
            body["actions"][0]["payload"]["labels"],
            json!(["labels/103"])
        );
        assert_eq!(body["actions"][1]["payload"]["queue"], json!("queues/105"));
        assert!(body.get("organization").is_none());
    }

    #[test]
    fn skipped_sources_are_not_planned() {
        let ids = IdMap::default();
        let mut q = queue(5, 10, 20);
        q["status"] = json!("deletion_requested");
        assert!(plan_kind(&kinds::QUEUES, &[q], &[], &ctx(&ids), Pass::First).is_empty());
    }
}
