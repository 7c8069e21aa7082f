//! Seeding: a JSON fixture that describes organizations with symbolic keys, loaded through the
//! same validation and side effects as API calls (queues make their email templates, …).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::db::Db;
use super::error::ApiError;

/// The template organization shipped with orgops (`orgops simulate` and `apply --simulate`).
pub const TEMPLATE_FIXTURE: &str = include_str!("fixtures/template-org.json");

/// A seed file.
#[derive(Clone, Debug, Deserialize)]
pub struct Seed {
    /// The organization group everything lives in.
    pub organization_group: GroupSeed,
    /// Organizations, created in order.
    pub organizations: Vec<OrgSeed>,
}

/// The organization group.
#[derive(Clone, Debug, Deserialize)]
pub struct GroupSeed {
    /// Name.
    pub name: String,
    /// Deployment location.
    #[serde(default = "default_location")]
    pub deployment_location: String,
}

fn default_location() -> String {
    "prod-eu".into()
}

/// One organization and its setup, with `key`s that other objects reference.
#[derive(Clone, Debug, Deserialize)]
pub struct OrgSeed {
    /// Name.
    pub name: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: Value,
    /// Users with a role name and a password.
    #[serde(default)]
    pub users: Vec<Value>,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<Value>,
    /// Workspaces.
    #[serde(default)]
    pub workspaces: Vec<Value>,
    /// Schemas.
    #[serde(default)]
    pub schemas: Vec<Value>,
    /// Connectors.
    #[serde(default)]
    pub connectors: Vec<Value>,
    /// Queues, each with an optional `inbox` and `email_templates` overrides by name.
    #[serde(default)]
    pub queues: Vec<Value>,
    /// Hooks (`queues` and `run_after` by key).
    #[serde(default)]
    pub hooks: Vec<Value>,
    /// Extra email templates (`queue` by key).
    #[serde(default)]
    pub email_templates: Vec<Value>,
    /// Rules (`queues`, `actions[].payload.labels`, `actions[].payload.queue` by key).
    #[serde(default)]
    pub rules: Vec<Value>,
}

impl Seed {
    /// The shipped template fixture.
    pub fn template() -> Result<Self, String> {
        serde_json::from_str(TEMPLATE_FIXTURE).map_err(|e| format!("built-in fixture: {e}"))
    }

    /// Parses a seed file.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Multiplies the setup of every organization by `factor` (for benchmarks): each copy's
    /// keys, names and inbox prefixes get a suffix, and its references follow.
    pub fn scaled(mut self, factor: usize) -> Self {
        if factor <= 1 {
            return self;
        }
        for org in &mut self.organizations {
            for list in [
                &mut org.labels,
                &mut org.workspaces,
                &mut org.schemas,
                &mut org.connectors,
                &mut org.queues,
                &mut org.hooks,
                &mut org.email_templates,
                &mut org.rules,
            ] {
                let originals = list.clone();
                for i in 2..=factor {
                    for o in &originals {
                        list.push(suffixed(o, i));
                    }
                }
            }
        }
        self
    }

    /// Number of setup objects the seed makes (queues count their inbox and 5 email templates).
    pub fn object_count(&self, org: &str) -> usize {
        self.organizations
            .iter()
            .filter(|o| o.name == org)
            .map(|o| {
                o.labels.len()
                    + o.workspaces.len()
                    + o.schemas.len()
                    + o.connectors.len()
                    + o.queues.len() * 6
                    + o.hooks.len()
                    + o.email_templates.len()
                    + o.rules.len()
            })
            .sum()
    }
}

const KEY_REFS: &[&str] = &["key", "workspace", "schema", "connector", "queue"];
const KEY_LIST_REFS: &[&str] = &["queues", "run_after"];

fn suffixed(o: &Value, i: usize) -> Value {
    let mut v = o.clone();
    let sfx = format!("~{i}");
    for k in KEY_REFS {
        if let Some(Value::String(s)) = v.get_mut(*k) {
            s.push_str(&sfx);
        }
    }
    for k in KEY_LIST_REFS {
        if let Some(Value::Array(items)) = v.get_mut(*k) {
            for it in items.iter_mut() {
                if let Value::String(s) = it {
                    s.push_str(&sfx);
                }
            }
        }
    }
    if let Some(Value::Array(actions)) = v.get_mut("actions") {
        for a in actions {
            if let Some(Value::Array(labels)) = a.pointer_mut("/payload/labels") {
                for l in labels.iter_mut() {
                    if let Value::String(s) = l {
                        s.push_str(&sfx);
                    }
                }
            }
            if let Some(Value::String(q)) = a.pointer_mut("/payload/queue") {
                q.push_str(&sfx);
            }
        }
    }
    if let Some(Value::String(n)) = v.get_mut("name") {
        n.push_str(&format!(" #{i}"));
    }
    if let Some(Value::String(p)) = v.pointer_mut("/inbox/email_prefix") {
        p.push_str(&format!("-{i}"));
    }
    v
}

/// The group admin the simulator creates (also the `create_key` holder).
#[derive(Clone, Debug)]
pub struct Admin {
    /// Login.
    pub username: String,
    /// Password.
    pub password: String,
    /// create_key bound to the group.
    pub create_key: String,
}

/// Loads `seed` into `db`, with `admins` as organization group admins of its group; write
/// counters start at zero afterwards.
pub fn load(db: &mut Db, seed: &Seed, admins: &[Admin]) -> Result<(), String> {
    let gid = 1;
    db.org_groups.insert(
        gid,
        json!({"id": gid, "url": db.url("organization_groups", gid), "name": seed.organization_group.name,
               "is_trial": false, "is_production": true,
               "deployment_location": seed.organization_group.deployment_location,
               "features": null, "usage": {}, "modified_by": null, "modified_at": null}),
    );
    let home = db
        .create_org(
            gid,
            &format!("{} admins", seed.organization_group.name),
            json!({}),
            None,
        )
        .map_err(err)?;
    for a in admins {
        if !db.username_taken(&a.username) {
            db.insert_user(
                home,
                &a.username,
                &a.username,
                "Group",
                "Admin",
                &["organization_group_admin", "admin"],
                &a.password,
            )
            .map_err(err)?;
        }
        db.create_keys.insert(a.create_key.clone(), gid);
    }
    for org in &seed.organizations {
        load_org(db, gid, org)?;
    }
    // Tests count the API's writes from here.
    db.reset_counters();
    Ok(())
}

fn err(e: ApiError) -> String {
    format!("seed rejected: {}", e.body)
}

fn load_org(db: &mut Db, gid: u64, seed: &OrgSeed) -> Result<(), String> {
    let meta = if seed.metadata.is_object() {
        seed.metadata.clone()
    } else {
        json!({})
    };
    let org = db.create_org(gid, &seed.name, meta, None).map_err(err)?;
    let mut urls: HashMap<(&str, String), String> = HashMap::new();
    for u in &seed.users {
        let s = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let role = s("role");
        db.insert_user(
            org,
            &s("username"),
            &s("email"),
            &s("first_name"),
            &s("last_name"),
            &[role.as_str()],
            &s("password"),
        )
        .map_err(err)?;
    }
    let resolve = |urls: &HashMap<(&str, String), String>,
                   kind: &'static str,
                   key: &Value|
     -> Result<Value, String> {
        match key {
            Value::Null => Ok(Value::Null),
            Value::String(k) => urls
                .get(&(kind, k.clone()))
                .map(|u| json!(u))
                .ok_or_else(|| format!("seed: {kind} key {k:?} is not defined")),
            other => Err(format!("seed: {kind} reference {other} is not a key")),
        }
    };
    let resolve_list = |urls: &HashMap<(&str, String), String>,
                        kind: &'static str,
                        keys: Option<&Value>|
     -> Result<Value, String> {
        let mut out = Vec::new();
        for k in keys.and_then(Value::as_array).into_iter().flatten() {
            out.push(resolve(urls, kind, k)?);
        }
        Ok(Value::Array(out))
    };
    let create = |db: &mut Db,
                  urls: &mut HashMap<(&str, String), String>,
                  kind: &'static str,
                  mut body: Value|
     -> Result<Value, String> {
        let key = body.as_object_mut().and_then(|m| m.remove("key"));
        let created = db.create_object(kind, org, body).map_err(err)?;
        if let Some(Value::String(k)) = key {
            let url = created["url"].as_str().unwrap_or_default().to_string();
            urls.insert((kind, k), url);
        }
        Ok(created)
    };
    for l in &seed.labels {
        create(db, &mut urls, "labels", l.clone())?;
    }
    for w in &seed.workspaces {
        create(db, &mut urls, "workspaces", w.clone())?;
    }
    for s in &seed.schemas {
        create(db, &mut urls, "schemas", s.clone())?;
    }
    for c in &seed.connectors {
        create(db, &mut urls, "connectors", c.clone())?;
    }
    for q in &seed.queues {
        let mut body = q.clone();
        let inbox = body.as_object_mut().and_then(|m| m.remove("inbox"));
        let overrides = body
            .as_object_mut()
            .and_then(|m| m.remove("email_templates"));
        body["workspace"] = resolve(
            &urls,
            "workspaces",
            body.get("workspace").unwrap_or(&Value::Null),
        )?;
        body["schema"] = resolve(&urls, "schemas", body.get("schema").unwrap_or(&Value::Null))?;
        if body.get("connector").is_some() {
            body["connector"] = resolve(&urls, "connectors", &body["connector"])?;
        }
        let created = create(db, &mut urls, "queues", body)?;
        let qurl = created["url"].as_str().unwrap_or_default().to_string();
        if let Some(mut inbox) = inbox {
            inbox["queues"] = json!([qurl]);
            create(db, &mut urls, "inboxes", inbox)?;
        }
        if let Some(Value::Object(over)) = overrides {
            let templates: Vec<(u64, String)> = db
                .in_org("email_templates", org)
                .into_iter()
                .filter(|r| r.value["queue"].as_str() == Some(&qurl))
                .map(|r| (r.id, r.value["name"].as_str().unwrap_or("").to_string()))
                .collect();
            for (name, patch) in over {
                if let Some((id, _)) = templates.iter().find(|(_, n)| *n == name) {
                    db.update_object("email_templates", *id, org, patch)
                        .map_err(err)?;
                }
            }
        }
    }
    for h in &seed.hooks {
        let mut body = h.clone();
        body["queues"] = resolve_list(&urls, "queues", h.get("queues"))?;
        let run_after = h.get("run_after").cloned();
        body.as_object_mut().map(|m| m.remove("run_after"));
        let created = create(db, &mut urls, "hooks", body)?;
        if let Some(ra) = run_after {
            let ra = resolve_list(&urls, "hooks", Some(&ra))?;
            let id = created["id"].as_u64().unwrap_or_default();
            db.update_object("hooks", id, org, json!({ "run_after": ra }))
                .map_err(err)?;
        }
    }
    for t in &seed.email_templates {
        let mut body = t.clone();
        body["queue"] = resolve(&urls, "queues", t.get("queue").unwrap_or(&Value::Null))?;
        create(db, &mut urls, "email_templates", body)?;
    }
    for r in &seed.rules {
        let mut body = r.clone();
        body["queues"] = resolve_list(&urls, "queues", r.get("queues"))?;
        if let Some(Value::Array(actions)) = body.get_mut("actions") {
            for a in actions {
                if let Some(labels) = a.pointer("/payload/labels").cloned() {
                    a["payload"]["labels"] = resolve_list(&urls, "labels", Some(&labels))?;
                }
                if let Some(q) = a.pointer("/payload/queue").cloned() {
                    a["payload"]["queue"] = resolve(&urls, "queues", &q)?;
                }
            }
        }
        create(db, &mut urls, "rules", body)?;
    }
    Ok(())
}
