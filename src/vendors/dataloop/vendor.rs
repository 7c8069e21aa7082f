//! Dataloop behind the vendor-neutral contract (design/vendors/dataloop.md §7): organizations
//! adopted (never created or deleted), their name, plan and cache kept in sync from
//! `spec.settings.dataloop`; groups, integrations, projects, drivers, ontologies and recipes
//! copied from a template by natural key; members invited by e-mail with one organization
//! role, and project roles as scopes.
//!
//! How Dataloop's shapes meet the contract:
//! - **Read shape = copy shape.** `list_objects` returns every kind normalised so that a
//!   template object and its copy compare field by field: drivers flat (a `payload` block is
//!   lifted, `projectId` set), ontologies and recipes with a top-level `projectIds` holding
//!   only the organization's own projects (the system project and other organizations' are
//!   kept on updates but neither copied nor compared), integrations with their non-secret
//!   `metadata` as an object, projects with `groupRoles` (`"<groupId>:<role>"`, from
//!   `/projects/{id}/subgroups`). Creates and updates translate to the write shapes.
//! - **Projects** are created with `POST /projects` in the caller's active org, which the
//!   client first makes the target (`POST /users/me {"org"}`); one that still lands elsewhere
//!   (a concurrent reconcile changed the active org) is moved with `PATCH /projects/{id}/org`,
//!   and one that cannot be moved is deleted again, so it does not linger elsewhere.
//! - **Integrations** are created with their options from the Kubernetes Secret the spec
//!   names (`integrations/<name>`): each Secret key is an option (`key`, `secret`, `content`,
//!   …), and `spec.<x>` keys nest under `spec` (private registries).
//! - **Scopes** are project roles, `"<project name>:<role>"` with role
//!   `owner|engineer|annotator|annotationManager`; the system project is never a scope.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::DataloopApi;
use super::models::*;
use crate::vendors::http::HttpConfig;
use crate::vendors::{
    AccountInfo, Capabilities, CopyFields, Credentials, Endpoints, Identity, KindSpec,
    MemberChange, MemberClient, MemberDesired, MemberObserved, OrgDesired, OrgIdentity, OrgInfo,
    Presence, RefCodec, RefField, RefTarget, RoleModel, VendorClient, VendorError,
};

const VENDOR: &str = "dataloop";

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key)?.as_str()
}

fn by_name(v: &Value) -> Option<String> {
    str_at(v, "name").map(str::to_string)
}

/// Integrations are one per name and type in an org.
fn integration_key(v: &Value) -> Option<String> {
    Some(format!("{}/{}", str_at(v, "type")?, str_at(v, "name")?))
}

/// The name `spec.template.secrets` gives an integration (`integrations/<name>`); `None` for
/// the types that hold no secret (design §3: NFS and host paths, cross-account roles granted
/// on the cloud side).
fn integration_input(v: &Value) -> Option<String> {
    match str_at(v, "type") {
        Some("nfs" | "hostPath" | "aws-cross" | "gcp-cross") => None,
        _ => by_name(v),
    }
}

/// Drivers are one per name within a project.
fn driver_key(v: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        str_at(v, "projectId")?,
        str_at(v, "name")?
    ))
}

/// Ontologies and recipes: the title within the projects they belong to (design §7).
fn title_in_projects(v: &Value) -> Option<String> {
    let mut projects: Vec<&str> = v
        .get("projectIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    projects.sort_unstable();
    projects.dedup();
    Some(format!(
        "{}@{}",
        str_at(v, "title").unwrap_or_default(),
        projects.join(",")
    ))
}

fn is_system_project(v: &Value) -> bool {
    v.get("systemProject") == Some(&Value::Bool(true))
}

/// The group id inside a `"<groupId>:<role>"` entry.
fn group_of_role(entry: &str) -> Option<std::ops::Range<usize>> {
    let colon = entry.rfind(':')?;
    (colon > 0).then_some(0..colon)
}

/// Groups of users: copied by name (who is in them is people, not setup).
pub const GROUPS: KindSpec = KindSpec {
    name: "groups",
    refs: &[],
    fields: CopyFields::Only(&["name"]),
    identity: Identity::NaturalKey(by_name),
    creatable: None,
    skip: None,
    input: None,
    opt_in: false,
};

/// Integrations: name, type and non-secret metadata; the secret options come from the
/// Kubernetes Secret the spec names for each ([`KindSpec::input`]).
pub const INTEGRATIONS: KindSpec = KindSpec {
    name: "integrations",
    refs: &[],
    fields: CopyFields::Only(&["name", "type", "metadata"]),
    identity: Identity::NaturalKey(integration_key),
    creatable: None,
    skip: None,
    input: Some(integration_input),
    opt_in: false,
};

/// Projects (not the system project): name, and the groups' roles in them.
pub const PROJECTS: KindSpec = KindSpec {
    name: "projects",
    refs: &[RefField::to("groupRoles.*", RefTarget::Kind("groups")).embedded(group_of_role)],
    fields: CopyFields::Only(&["name", "groupRoles"]),
    identity: Identity::NaturalKey(by_name),
    creatable: None,
    skip: Some(is_system_project),
    input: None,
    opt_in: false,
};

/// Where a driver's storage settings live in its write shape (`payload`); the read shape has
/// them at the top.
pub const DRIVER_PAYLOAD_KEYS: &[&str] = &[
    "bucketName",
    "bucket",
    "containerName",
    "region",
    "storageClass",
    "path",
    "endpoint",
    "directory",
    "elasticIndex",
    "elasticIndexPath",
];

/// Drivers (storage bindings of a project through an integration); never their
/// `authentication`.
pub const DRIVERS: KindSpec = KindSpec {
    name: "drivers",
    refs: &[
        RefField::to("projectId", RefTarget::Kind("projects")),
        RefField::to("integrationId", RefTarget::Kind("integrations")),
    ],
    fields: CopyFields::Only(&[
        "name",
        "type",
        "integrationId",
        "integrationType",
        "projectId",
        "allowExternalDelete",
        "allowExternalModification",
        "bucketName",
        "bucket",
        "containerName",
        "region",
        "storageClass",
        "path",
        "endpoint",
        "directory",
        "elasticIndex",
        "elasticIndexPath",
    ]),
    identity: Identity::NaturalKey(driver_key),
    creatable: None,
    skip: None,
    input: None,
    opt_in: false,
};

/// The read shape's name for an ontology's attribute definitions (`metadata.attributes`, the
/// v2 attributes: name, type, values, range, label scope), lifted to the top so they are
/// copied and compared like the other fields, and put back under `metadata` when written.
pub const ATTRIBUTE_DEFINITIONS: &str = "attributeDefinitions";

/// Ontologies: title, label trees (`roots`), attributes (keys and their definitions),
/// projects.
pub const ONTOLOGIES: KindSpec = KindSpec {
    name: "ontologies",
    refs: &[RefField::to("projectIds.*", RefTarget::Kind("projects"))],
    fields: CopyFields::Only(&[
        "title",
        "roots",
        "attributes",
        ATTRIBUTE_DEFINITIONS,
        "projectIds",
    ]),
    identity: Identity::NaturalKey(title_in_projects),
    creatable: None,
    skip: None,
    input: None,
    opt_in: false,
};

/// Recipes: title, projects, ontologies and annotation settings (not `instructions` and
/// `examples`, which point at uploaded items).
pub const RECIPES: KindSpec = KindSpec {
    name: "recipes",
    refs: &[
        RefField::to("projectIds.*", RefTarget::Kind("projects")),
        RefField::to("ontologyIds.*", RefTarget::Kind("ontologies")),
    ],
    fields: CopyFields::Only(&[
        "title",
        "projectIds",
        "ontologyIds",
        "uiSettings",
        "customActions",
        "description",
    ]),
    identity: Identity::NaturalKey(title_in_projects),
    creatable: None,
    skip: None,
    input: None,
    opt_in: false,
};

/// What Dataloop can do through its API.
pub const CAPABILITIES: Capabilities = Capabilities {
    create_org: false,
    delete_org: false,
    org_identity: OrgIdentity::None,
    settings: &["plan", "cache"],
    members: Some(RoleModel {
        roles: ORG_ROLES,
        org_roles: false,
        scopes: Some("projects"),
    }),
    usage: Some("plan and account"),
    kinds: &[GROUPS, INTEGRATIONS, PROJECTS, DRIVERS, ONTOLOGIES, RECIPES],
};

/// `spec.settings.dataloop` as the client reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    plan: Option<String>,
    cache: Option<CacheSetting>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheSetting {
    #[serde(default = "yes")]
    enabled: bool,
    pod_type: Option<String>,
}

fn yes() -> bool {
    true
}

/// dtlpy's default pod type.
const DEFAULT_POD_TYPE: &str = "small";

fn settings(desired: &OrgDesired) -> Settings {
    serde_json::from_value(desired.settings.clone()).unwrap_or_default()
}

/// The Dataloop [`VendorClient`].
#[derive(Debug)]
pub struct DataloopClient {
    api: DataloopApi,
}

impl DataloopClient {
    /// A client for `endpoint` (default: Dataloop's production gate) with the Secret's
    /// `username` + `password`, or its `apiKey`.
    pub fn new(
        endpoint: Option<&str>,
        credentials: Credentials,
        config: HttpConfig,
        endpoints: &Endpoints,
    ) -> Result<Self, VendorError> {
        Ok(Self {
            api: DataloopApi::new(endpoint, credentials, config, endpoints)?,
        })
    }

    /// A client over `api` (e.g. one with a shorter cache timeout).
    pub fn from_api(api: DataloopApi) -> Self {
        Self { api }
    }

    /// The typed API underneath.
    pub fn api(&self) -> &DataloopApi {
        &self.api
    }

    fn info(org: &Org, cache: Value) -> OrgInfo {
        let account = json!({
            "id": org.account_id(),
            "name": org.account_name(),
        });
        OrgInfo {
            id: org.id.clone(),
            name: org.name().to_string(),
            // Dataloop's `owner` is a person, not an ownership marker.
            owner: None,
            created_at: org.created_at(),
            usage: Some(json!({ "plan": org.plan, "account": account })),
            raw: json!({ "id": org.id, "name": org.name(), "plan": org.plan, "cache": cache }),
        }
    }

    /// The org's cache as observed: `{ready, state, podType}`, or `null` when it cannot be read
    /// (then a desired cache is applied, which is safe to repeat).
    async fn observe_cache(&self, org: &Org) -> Value {
        match self.api.cache_state(&org.id, org.name()).await {
            Ok(s) => json!({ "ready": s.is_ready(), "state": s.state, "podType": s.pod_type() }),
            Err(e) => {
                tracing::debug!(org = %org.id, error = %e, "cannot read the cache state");
                Value::Null
            }
        }
    }

    /// The org's projects other than the system project.
    async fn projects(&self, org: &str) -> Result<Vec<Project>, VendorError> {
        let all: Vec<Project> = self
            .api
            .org_projects(org)
            .await?
            .into_iter()
            .filter_map(|p| serde_json::from_value(p).ok())
            .collect();
        Ok(all
            .into_iter()
            .filter(|p| !p.system_project && !p.id.is_empty())
            .collect())
    }

    /// A project as a copy object: id, name, and its groups' roles.
    async fn project_object(&self, p: &Project) -> Result<Value, VendorError> {
        let mut roles: Vec<String> = self
            .api
            .project_groups(&p.id)
            .await?
            .into_iter()
            .filter(|g| !g.id.is_empty())
            .map(|g| format!("{}:{}", g.id, g.role.unwrap_or_default()))
            .collect();
        roles.sort();
        Ok(json!({ "id": p.id, "name": p.name(), "systemProject": false, "groupRoles": roles }))
    }

    /// Sets the groups' roles in project `id` to `want` (`"<groupId>:<role>"` entries).
    async fn set_group_roles(&self, id: &str, want: &Value) -> Result<(), VendorError> {
        let want: BTreeMap<String, String> = want
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|e| {
                let (group, role) = e.rsplit_once(':').ok_or_else(|| {
                    VendorError::Rejected(format!("{e:?} is not <groupId>:<role>"))
                })?;
                Ok((group.to_string(), role.to_string()))
            })
            .collect::<Result<_, VendorError>>()?;
        let have: BTreeMap<String, String> = self
            .api
            .project_groups(id)
            .await?
            .into_iter()
            .map(|g| (g.id, g.role.unwrap_or_default()))
            .collect();
        for (group, role) in &want {
            match have.get(group) {
                None => self.api.add_project_group(id, group, role).await?,
                Some(r) if r != role => self.api.update_project_group(id, group, role).await?,
                Some(_) => {}
            }
        }
        for group in have.keys().filter(|g| !want.contains_key(*g)) {
            self.api.remove_project_group(id, group).await?;
        }
        Ok(())
    }

    async fn create_project(&self, org: &str, body: &Value) -> Result<Value, VendorError> {
        let name = str_at(body, "name")
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| VendorError::Rejected("a project needs a name".into()))?;
        // New projects land in the caller's active org: the target, so that a project whose
        // answer is lost is there to be found by name (elsewhere it would linger, and in the
        // template org it would even be copied). A failure here only costs the move below.
        match self.api.me().await {
            Ok(me) if me.active_org().as_deref() == Some(org) => {}
            Ok(_) => {
                if let Err(e) = self.api.set_active_org(org).await {
                    tracing::debug!(%org, error = %e, "cannot make the target the active org");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the caller's active org"),
        }
        let project = self.api.create_project(name).await?;
        if project.id.is_empty() {
            return Err(VendorError::Rejected(format!(
                "POST /projects answered without an id for project {name:?}"
            )));
        }
        if project.org_id().as_deref() != Some(org)
            && let Err(e) = self.api.move_project(&project.id, org).await
        {
            // Not left in another organization (the caller's active one).
            return Err(match self.api.delete_project(&project.id).await {
                Ok(()) => e,
                Err(d) => VendorError::Rejected(format!(
                    "project {name:?} was created as {} in the credentials' active organization and could not be moved into {org} ({e}) nor deleted ({d}); delete it by hand",
                    project.id
                )),
            });
        }
        if let Some(roles) = body.get("groupRoles") {
            self.set_group_roles(&project.id, roles).await?;
        }
        let mut roles: Vec<String> = body
            .get("groupRoles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        roles.sort();
        Ok(json!({ "id": project.id, "name": name, "systemProject": false, "groupRoles": roles }))
    }

    async fn update_project(&self, id: &str, patch: &Value) -> Result<Value, VendorError> {
        if let Some(name) = str_at(patch, "name") {
            self.api.rename_project(id, name).await?;
        }
        if let Some(roles) = patch.get("groupRoles") {
            self.set_group_roles(id, roles).await?;
        }
        let project = self
            .api
            .get_project(id)
            .await?
            .ok_or_else(|| VendorError::NotFound(format!("project {id} vanished")))?;
        self.project_object(&project).await
    }

    async fn list_drivers(&self, org: &str) -> Result<Vec<Value>, VendorError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for p in self.projects(org).await? {
            for d in self.api.project_drivers(&p.id).await? {
                let d = normalize_driver(d, Some(&p.id));
                if let Some(id) = str_at(&d, "id")
                    && seen.insert(id.to_string())
                {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Ontologies or recipes of the org's projects, each once, with `projectIds` limited to
    /// those projects.
    async fn list_by_project(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        let projects = self.projects(org).await?;
        let ids: HashSet<String> = projects.iter().map(|p| p.id.clone()).collect();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for p in &projects {
            let items = if kind.name == ONTOLOGIES.name {
                self.api.project_ontologies(&p.id).await?
            } else {
                self.api.project_recipes(&p.id).await?
            };
            for item in items {
                let item = normalize_linked(item, &ids);
                if let Some(id) = str_at(&item, "id")
                    && seen.insert(id.to_string())
                {
                    out.push(item);
                }
            }
        }
        Ok(out)
    }

    /// The ids of the org's projects (not the system project).
    async fn project_ids(&self, org: &str) -> Result<HashSet<String>, VendorError> {
        Ok(self
            .projects(org)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect())
    }

    async fn update_linked(
        &self,
        org: &str,
        kind: &KindSpec,
        id: &str,
        patch: &Value,
    ) -> Result<Value, VendorError> {
        let ids = self.project_ids(org).await?;
        let current = if kind.name == ONTOLOGIES.name {
            self.api.get_ontology(id).await?
        } else {
            self.api.get_recipe(id).await?
        };
        let (body, links_changed) =
            merge_linked(current, patch, &ids, kind.name == ONTOLOGIES.name);
        let updated = if kind.name == ONTOLOGIES.name {
            self.api.put_ontology(id, body, links_changed).await?
        } else {
            self.api.patch_recipe(id, body).await?
        };
        Ok(normalize_linked(updated, &ids))
    }

    async fn create_driver(&self, body: &Value) -> Result<Value, VendorError> {
        let creator = self.api.caller_email().await?;
        let write = driver_write_body(body, &creator)?;
        let created = self.api.create_driver(write).await?;
        Ok(normalize_driver(created, str_at(body, "projectId")))
    }

    async fn update_driver(&self, id: &str, patch: &Value) -> Result<Value, VendorError> {
        let body = driver_patch_body(patch)?;
        self.api.patch_driver(id, body).await?;
        let driver = self.api.get_driver(id).await?;
        Ok(normalize_driver(driver, str_at(patch, "projectId")))
    }
}

/// A driver in the copy shape: flat (a `payload` block lifted to the top), with `projectId`
/// (from the driver, its `metadata.system.projectId`, or the project it was listed under),
/// and without `authentication` (a secret).
pub fn normalize_driver(mut driver: Value, project: Option<&str>) -> Value {
    let Value::Object(map) = &mut driver else {
        return driver;
    };
    if let Some(Value::Object(payload)) = map.remove("payload") {
        for (k, v) in payload {
            if k != "authentication" {
                map.entry(k).or_insert(v);
            }
        }
    }
    map.remove("authentication");
    let project_id = map
        .get("projectId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            map.get("metadata")
                .and_then(|m| m.pointer("/system/projectId"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or(project.map(str::to_string));
    if let Some(p) = project_id {
        map.insert("projectId".into(), json!(p));
    }
    driver
}

/// The write shape of a new driver (dtlpy's `drivers.create`): storage settings under
/// `payload`, the project in `metadata.system.projectId`, `creator` the caller's e-mail.
pub fn driver_write_body(body: &Value, creator: &str) -> Result<Value, VendorError> {
    let name = str_at(body, "name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| VendorError::Rejected("a driver needs a name".into()))?;
    let kind = str_at(body, "type")
        .ok_or_else(|| VendorError::Rejected(format!("driver {name:?} has no type")))?;
    let project = str_at(body, "projectId")
        .ok_or_else(|| VendorError::Rejected(format!("driver {name:?} has no project")))?;
    let payload: Map<String, Value> = DRIVER_PAYLOAD_KEYS
        .iter()
        .filter_map(|k| Some((k.to_string(), body.get(*k)?.clone())))
        .filter(|(_, v)| !v.is_null())
        .collect();
    let mut out = json!({
        "integrationId": body.get("integrationId").cloned().unwrap_or(Value::Null),
        "integrationType": body.get("integrationType").and_then(Value::as_str).unwrap_or(kind),
        "name": name,
        "metadata": { "system": { "projectId": project } },
        "type": kind,
        "payload": payload,
        "creator": creator,
    });
    for flag in ["allowExternalDelete", "allowExternalModification"] {
        if let Some(v) = body.get(flag).filter(|v| v.is_boolean()) {
            out[flag] = v.clone();
        }
    }
    Ok(out)
}

/// The write shape of a driver change (`PartialDriverPayload`: `{name?, payload, …}`); a
/// change of project, type or integration is not something the API can do.
pub fn driver_patch_body(patch: &Value) -> Result<Value, VendorError> {
    let fixed: Vec<&str> = ["projectId", "type", "integrationId", "integrationType"]
        .into_iter()
        .filter(|k| patch.get(*k).is_some())
        .collect();
    if !fixed.is_empty() {
        return Err(VendorError::Unsupported {
            vendor: VENDOR,
            what: format!(
                "changing a driver's {} (Dataloop's API changes only its name and storage settings); delete the copy in the target organization to have it copied again",
                fixed.join(", ")
            ),
        });
    }
    let payload: Map<String, Value> = DRIVER_PAYLOAD_KEYS
        .iter()
        .filter_map(|k| Some((k.to_string(), patch.get(*k)?.clone())))
        .collect();
    let mut out = json!({ "payload": payload });
    for k in ["name", "allowExternalDelete", "allowExternalModification"] {
        if let Some(v) = patch.get(k) {
            out[k] = v.clone();
        }
    }
    Ok(out)
}

/// An ontology or recipe in the copy shape: `projectIds` at the top (from the top or from
/// `metadata.system.projectIds`) limited to `projects`; `roots`, `attributes` and
/// `ontologyIds` lists even when missing or null.
pub fn normalize_linked(mut item: Value, projects: &HashSet<String>) -> Value {
    let linked = linked_projects(&item);
    let Value::Object(map) = &mut item else {
        return item;
    };
    let own: Vec<Value> = linked
        .into_iter()
        .filter(|p| projects.contains(p))
        .map(Value::String)
        .collect();
    map.insert("projectIds".into(), Value::Array(own));
    // The lists each kind copies (roots and attributes of ontologies, ontologyIds of recipes):
    // a missing or null list and an empty one mean the same to the gate. A list the other kind
    // has is never copied, so adding it to both is harmless.
    for list in ["roots", "attributes", "ontologyIds"] {
        if !map.get(list).is_some_and(Value::is_array) {
            map.insert(list.into(), json!([]));
        }
    }
    let definitions = map
        .get("metadata")
        .and_then(|m| m.get("attributes"))
        .filter(|a| a.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]));
    map.insert(ATTRIBUTE_DEFINITIONS.into(), definitions);
    item
}

/// Every project an ontology or recipe is linked to, top-level and system metadata merged.
fn linked_projects(item: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in [
        item.get("projectIds"),
        item.pointer("/metadata/system/projectIds"),
    ]
    .into_iter()
    .flatten()
    {
        for p in list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_string());
            }
        }
    }
    out
}

/// The whole entity to write back after `patch` (both GET-then-write APIs take the whole
/// entity): the patched fields set, `projectIds` = the patch's plus the links outside
/// `projects` the entity had (never dropped). Returns whether the project links changed (an
/// ontology then needs `?system=true`, its links living in `metadata.system`).
pub fn merge_linked(
    mut current: Value,
    patch: &Value,
    projects: &HashSet<String>,
    ontology: bool,
) -> (Value, bool) {
    let before = linked_projects(&current);
    if !current.is_object() {
        current = json!({});
    }
    // The lifted field of the read shape is never sent (written entities come from a GET).
    if let Value::Object(m) = &mut current {
        m.remove(ATTRIBUTE_DEFINITIONS);
    }
    if let Value::Object(p) = patch {
        for (k, v) in p {
            if k == ATTRIBUTE_DEFINITIONS {
                if ontology {
                    set_attribute_definitions(&mut current, v);
                }
            } else if k != "projectIds" {
                current[k.as_str()] = v.clone();
            }
        }
    }
    let mut links_changed = false;
    if let Some(wanted) = patch.get("projectIds").and_then(Value::as_array) {
        let mut ids: Vec<String> = wanted
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for foreign in before.iter().filter(|p| !projects.contains(*p)) {
            if !ids.contains(foreign) {
                ids.push(foreign.clone());
            }
        }
        let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();
        links_changed = set(&ids) != set(&before);
        current["projectIds"] = json!(ids);
        if ontology {
            let metadata = current
                .as_object_mut()
                .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
            if let Some(m) = metadata {
                if !m.is_object() {
                    *m = json!({});
                }
                if !m.get("system").is_some_and(Value::is_object) {
                    m["system"] = json!({});
                }
                m["system"]["projectIds"] = json!(ids);
            }
        }
    }
    (current, links_changed)
}

/// Puts attribute definitions where the gate keeps them: `metadata.attributes`.
fn set_attribute_definitions(entity: &mut Value, definitions: &Value) {
    let Value::Object(map) = entity else {
        return;
    };
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    metadata["attributes"] = definitions.clone();
}

/// Integration metadata that is configuration (dtlpy's `create_nfs`, `create_hostpath`,
/// `create_s3_compatible_api`), not state such as `status`.
pub const INTEGRATION_METADATA_KEYS: &[&str] = &[
    "server",
    "path",
    "type",
    "readOnly",
    "provider",
    "authMethod",
    "endpoint",
    "region",
];

/// An integration in the copy shape: `metadata` as an object of its configuration entries (the
/// gate lists them as `[{name, value, …}]`; the create body takes an object).
pub fn normalize_integration(mut integration: Value) -> Value {
    let Value::Object(map) = &mut integration else {
        return integration;
    };
    let entries: Map<String, Value> = match map.get("metadata") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|e| Some((str_at(e, "name")?.to_string(), e.get("value")?.clone())))
            .collect(),
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let config: Map<String, Value> = entries
        .into_iter()
        .filter(|(k, _)| INTEGRATION_METADATA_KEYS.contains(&k.as_str()))
        .collect();
    map.insert("metadata".into(), Value::Object(config));
    map.remove("options");
    integration
}

/// An integration's options from a Secret: each key an option, `spec.<x>` keys nested
/// under `spec`.
pub fn integration_options(input: &Credentials) -> Value {
    let mut options = Map::new();
    for (k, v) in input.iter() {
        let value = Value::String(v.expose_secret().to_string());
        match k.strip_prefix("spec.").filter(|rest| !rest.is_empty()) {
            Some(rest) => {
                let spec = options.entry("spec").or_insert_with(|| json!({}));
                if !spec.is_object() {
                    *spec = json!({});
                }
                spec[rest] = value;
            }
            None => {
                // A nested `spec` wins over a flat key named `spec`.
                if !(k == "spec" && options.contains_key("spec")) {
                    options.insert(k.to_string(), value);
                }
            }
        }
    }
    Value::Object(options)
}

fn check_kind(kind: &KindSpec) -> Result<(), VendorError> {
    if CAPABILITIES.kinds.iter().any(|k| k.name == kind.name) {
        return Ok(());
    }
    Err(VendorError::Unsupported {
        vendor: VENDOR,
        what: format!("copying {}", kind.name),
    })
}

impl RefCodec for DataloopClient {
    fn decode_ref(&self, value: &Value) -> Option<String> {
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    fn encode_ref(&self, _target: RefTarget, id: &str) -> Value {
        json!(id)
    }
}

#[async_trait::async_trait]
impl VendorClient for DataloopClient {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn verify_credentials(&self) -> Result<(), VendorError> {
        self.api.verify().await
    }

    async fn describe_account(&self) -> Result<AccountInfo, VendorError> {
        let me = self.api.me().await?;
        let orgs = self.api.list_orgs().await?;
        let who = me.who().to_string();
        Ok(AccountInfo {
            summary: format!("user {who}, {} organizations visible", orgs.len()),
            details: BTreeMap::from([
                ("user".to_string(), who),
                ("organizations".to_string(), orgs.len().to_string()),
            ]),
        })
    }

    async fn get_org(&self, id: &str) -> Result<Option<OrgInfo>, VendorError> {
        let Some(org) = self.api.get_org(id.trim()).await? else {
            return Ok(None);
        };
        let cache = self.observe_cache(&org).await;
        Ok(Some(Self::info(&org, cache)))
    }

    fn usage_summary(&self, usage: &Value) -> Option<String> {
        plan_summary(usage)
    }

    async fn find_orgs(&self, name: Option<&str>) -> Result<Vec<OrgInfo>, VendorError> {
        Ok(self
            .api
            .list_orgs()
            .await?
            .iter()
            .filter(|o| !o.id.is_empty())
            .filter(|o| name.is_none_or(|n| o.name() == n))
            // The cache is read when the org is looked at by id (every reconcile after this).
            .map(|o| Self::info(o, Value::Null))
            .collect())
    }

    async fn create_org(&self, _desired: &OrgDesired) -> Result<OrgInfo, VendorError> {
        Err(VendorError::Unsupported {
            vendor: VENDOR,
            what: "creating organizations (Dataloop support creates them); ask Dataloop for one, then set spec.externalId to its id (or spec.displayName to its exact name)".into(),
        })
    }

    fn org_patch(&self, desired: &OrgDesired, observed: &OrgInfo) -> Option<Value> {
        let s = settings(desired);
        let mut patch = Map::new();
        if observed.name != desired.display_name {
            patch.insert("name".into(), json!(desired.display_name));
        }
        if let Some(plan) = &s.plan
            && observed.raw["plan"].as_str() != Some(plan.as_str())
        {
            patch.insert("plan".into(), json!(plan));
        }
        if let Some(cache) = &s.cache {
            let pod = cache.pod_type.as_deref().unwrap_or(DEFAULT_POD_TYPE);
            let seen = &observed.raw["cache"];
            let ready = seen["ready"].as_bool();
            let in_sync = match (cache.enabled, ready) {
                // Unknown state: applying is safe to repeat; destroying what may not exist
                // is not asked for.
                (true, None) => false,
                (false, None) => true,
                (true, Some(ready)) => ready && seen["podType"].as_str().is_none_or(|p| p == pod),
                (false, Some(ready)) => !ready,
            };
            if !in_sync {
                patch.insert(
                    "cache".into(),
                    json!({ "enabled": cache.enabled, "podType": pod }),
                );
            }
        }
        (!patch.is_empty()).then_some(Value::Object(patch))
    }

    async fn patch_org(&self, id: &str, patch: Value) -> Result<OrgInfo, VendorError> {
        let mut errors: Vec<VendorError> = Vec::new();
        if let Some(name) = str_at(&patch, "name")
            && let Err(e) = self.api.rename_org(id, name).await
        {
            errors.push(e);
        }
        if let Some(cache) = patch.get("cache").filter(|c| c.is_object()) {
            let enabled = cache["enabled"].as_bool().unwrap_or(true);
            let pod = cache["podType"].as_str().unwrap_or(DEFAULT_POD_TYPE);
            let result = if !POD_TYPES.contains(&pod) {
                Err(VendorError::Rejected(format!(
                    "spec.settings.dataloop.cache.podType: {pod:?} is not a Dataloop pod type ({})",
                    POD_TYPES.join(", ")
                )))
            } else {
                match self.api.get_org(id).await {
                    Ok(Some(org)) if enabled => {
                        self.api.apply_cache(&org.id, org.name(), pod).await
                    }
                    Ok(Some(org)) => self.api.destroy_cache(&org.id, org.name(), pod).await,
                    Ok(None) => Err(VendorError::NotFound(format!(
                        "organization {id} does not exist"
                    ))),
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = result {
                errors.push(match e {
                    VendorError::Forbidden(detail) => VendorError::Forbidden(format!(
                        "spec.settings.dataloop.cache: the cache needs an organization owner: {detail}"
                    )),
                    other => other,
                });
            }
        }
        if let Some(plan) = str_at(&patch, "plan") {
            if !PLANS.contains(&plan) {
                errors.push(VendorError::Rejected(format!(
                    "spec.settings.dataloop.plan: {plan:?} is not a Dataloop plan ({})",
                    PLANS.join(", ")
                )));
            } else if let Err(e) = self.api.set_plan(id, plan).await {
                errors.push(match e {
                    VendorError::Forbidden(detail) => VendorError::Forbidden(format!(
                        "spec.settings.dataloop.plan: changing the plan to {plan} needs a Dataloop superuser, which these credentials are not ({detail}); ask Dataloop to change it, or remove the setting"
                    )),
                    other => other,
                });
            }
        }
        if !errors.is_empty() {
            // The first failure; the other settings were still tried.
            return Err(errors.remove(0));
        }
        self.get_org(id)
            .await?
            .ok_or_else(|| VendorError::NotFound(format!("organization {id} vanished")))
    }

    async fn delete_org(&self, _id: &str) -> Result<(), VendorError> {
        Err(VendorError::Unsupported {
            vendor: VENDOR,
            what: "deleting organizations (the API has no such call for customers); ask Dataloop support".into(),
        })
    }

    fn members(&self) -> Option<&dyn MemberClient> {
        Some(self)
    }

    async fn list_objects(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError> {
        check_kind(kind)?;
        match kind.name {
            "groups" => self.api.org_groups(org).await,
            "integrations" => Ok(self
                .api
                .org_integrations(org)
                .await?
                .into_iter()
                .map(normalize_integration)
                .collect()),
            "projects" => {
                let all: Vec<Project> = self
                    .api
                    .org_projects(org)
                    .await?
                    .into_iter()
                    .filter_map(|p| serde_json::from_value(p).ok())
                    .collect();
                let mut out = Vec::with_capacity(all.len());
                for p in all.iter().filter(|p| !p.id.is_empty()) {
                    if p.system_project {
                        // Listed (so it is skipped, not mistaken for a copy), never read further.
                        out.push(json!({ "id": p.id, "name": p.name(), "systemProject": true }));
                    } else {
                        out.push(self.project_object(p).await?);
                    }
                }
                Ok(out)
            }
            "drivers" => self.list_drivers(org).await,
            _ => self.list_by_project(org, kind).await,
        }
    }

    async fn create_object(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
    ) -> Result<Value, VendorError> {
        check_kind(kind)?;
        match kind.name {
            "groups" => {
                let name = str_at(&body, "name")
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| VendorError::Rejected("a group needs a name".into()))?;
                self.api.create_group(org, name).await
            }
            "integrations" => Err(VendorError::Unsupported {
                vendor: VENDOR,
                what: "creating an integration without its secret values; name a Secret for it in spec.template.secrets".into(),
            }),
            "projects" => self.create_project(org, &body).await,
            "drivers" => self.create_driver(&body).await,
            "ontologies" => {
                let mut write = json!({
                    "roots": body.get("roots").cloned().unwrap_or(json!([])),
                    "projectIds": body.get("projectIds").cloned().unwrap_or(json!([])),
                    "attributes": body.get("attributes").cloned().unwrap_or(json!([])),
                });
                if let Some(title) = body.get("title").filter(|t| t.is_string()) {
                    write["title"] = title.clone();
                }
                if let Some(defs) = body
                    .get(ATTRIBUTE_DEFINITIONS)
                    .filter(|d| d.as_array().is_some_and(|a| !a.is_empty()))
                {
                    set_attribute_definitions(&mut write, defs);
                }
                let created = self.api.create_ontology(write).await?;
                Ok(normalize_linked(created, &sent_projects(&body)))
            }
            _ => {
                let mut write = body.clone();
                if !write.is_object() {
                    return Err(VendorError::Rejected("a recipe must be a JSON object".into()));
                }
                if write.get("uiSettings").is_none_or(Value::is_null) {
                    // What dtlpy's `recipes.create` sends.
                    write["uiSettings"] =
                        json!({"allowObjectIdAutoAssign": true, "studioV2App": true});
                }
                for list in ["projectIds", "ontologyIds"] {
                    if write.get(list).is_none_or(Value::is_null) {
                        write[list] = json!([]);
                    }
                }
                let created = self.api.create_recipe(write).await?;
                Ok(normalize_linked(created, &sent_projects(&body)))
            }
        }
    }

    async fn update_object(
        &self,
        org: &str,
        kind: &KindSpec,
        id: &str,
        patch: Value,
    ) -> Result<Value, VendorError> {
        check_kind(kind)?;
        match kind.name {
            "groups" => match str_at(&patch, "name") {
                Some(name) => self.api.rename_group(id, name).await,
                None => Err(VendorError::Rejected(format!(
                    "group {id}: only the name of a group can change"
                ))),
            },
            "integrations" => {
                let fixed: Vec<&str> = ["type", "metadata"]
                    .into_iter()
                    .filter(|k| patch.get(*k).is_some())
                    .collect();
                if !fixed.is_empty() {
                    return Err(VendorError::Unsupported {
                        vendor: VENDOR,
                        what: format!(
                            "changing an integration's {} (Dataloop's API changes only its name and secret values); delete integration {id} in the target organization to have it copied again",
                            fixed.join(", ")
                        ),
                    });
                }
                if let Some(name) = str_at(&patch, "name") {
                    self.api.rename_integration(org, id, name).await?;
                }
                self.api
                    .org_integrations(org)
                    .await?
                    .into_iter()
                    .find(|i| str_at(i, "id") == Some(id))
                    .map(normalize_integration)
                    .ok_or_else(|| VendorError::NotFound(format!("integration {id} vanished")))
            }
            "projects" => self.update_project(id, &patch).await,
            "drivers" => self.update_driver(id, &patch).await,
            _ => self.update_linked(org, kind, id, &patch).await,
        }
    }

    async fn create_object_with_input(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
        input: &Credentials,
    ) -> Result<Value, VendorError> {
        if kind.name != INTEGRATIONS.name {
            check_kind(kind)?;
            return self.create_object(org, kind, body).await;
        }
        let name = str_at(&body, "name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| VendorError::Rejected("an integration needs a name".into()))?;
        let kind_name = str_at(&body, "type")
            .ok_or_else(|| VendorError::Rejected(format!("integration {name:?} has no type")))?;
        let metadata = body
            .get("metadata")
            .filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
            .cloned();
        let created = self
            .api
            .create_integration(org, kind_name, name, integration_options(input), metadata)
            .await?;
        Ok(normalize_integration(created))
    }

    async fn delete_object(&self, org: &str, kind: &KindSpec, id: &str) -> Result<(), VendorError> {
        check_kind(kind)?;
        match kind.name {
            "groups" => self.api.delete_group(id).await,
            "integrations" => self.api.delete_integration(org, id).await,
            "projects" => self.api.delete_project(id).await,
            "drivers" => self.api.delete_driver(id).await,
            "ontologies" => self.api.delete_ontology(id).await,
            _ => self.api.delete_recipe(id).await,
        }
    }
}

/// The project ids a create body links to (a created object is normalised against them).
fn sent_projects(body: &Value) -> HashSet<String> {
    linked_projects(body).into_iter().collect()
}

/// `plan premium, account Acme`: the org's plan and billing account (`status.usageSummary`).
pub fn plan_summary(usage: &Value) -> Option<String> {
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect::<String>())
    };
    let parts: Vec<String> = [
        text(usage.get("plan")).map(|p| format!("plan {p}")),
        text(usage.pointer("/account/name")).map(|a| format!("account {a}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The desired project roles: project name → role, from `"<project>:<role>"` scopes.
pub fn parse_scopes(scopes: &BTreeSet<String>) -> Result<BTreeMap<String, String>, VendorError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for s in scopes {
        let Some((project, role)) = s.rsplit_once(':').filter(|(p, _)| !p.is_empty()) else {
            return Err(VendorError::Rejected(format!(
                "spec.scopes: {s:?} is not <project name>:<role> (role one of {})",
                PROJECT_ROLES.join(", ")
            )));
        };
        if !PROJECT_ROLES.contains(&role) {
            return Err(VendorError::Rejected(format!(
                "spec.scopes: {role:?} in {s:?} is not a Dataloop project role ({})",
                PROJECT_ROLES.join(", ")
            )));
        }
        if let Some(other) = out.insert(project.to_string(), role.to_string())
            && other != role
        {
            return Err(VendorError::Rejected(format!(
                "spec.scopes: project {project:?} is given two roles ({other}, {role}); a person has one role per project"
            )));
        }
    }
    Ok(out)
}

/// The one organization role of a desired membership.
fn one_role(desired: &MemberDesired) -> Result<&str, VendorError> {
    let roles: Vec<&String> = desired.roles.iter().collect();
    match roles.as_slice() {
        [one] if ORG_ROLES.contains(&one.as_str()) => Ok(one.as_str()),
        _ => Err(VendorError::Rejected(format!(
            "a Dataloop member has exactly one organization role ({}); got {}",
            ORG_ROLES.join(", "),
            roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A project as `vendor_state` keeps it: id, name, the person's role there.
#[derive(Debug, Deserialize)]
struct ProjectRole {
    id: String,
    name: String,
    role: Option<String>,
}

fn state_projects(observed: &MemberObserved) -> Vec<ProjectRole> {
    serde_json::from_value(observed.vendor_state["projects"].clone()).unwrap_or_default()
}

#[async_trait::async_trait]
impl MemberClient for DataloopClient {
    async fn observe_member(&self, desired: &MemberDesired) -> Result<MemberObserved, VendorError> {
        let (org, email) = (desired.org.as_str(), desired.email.as_str());
        let members = self.api.members(org).await?;
        // An accepted membership wins over a stale invitation for the same address.
        let row = members
            .iter()
            .filter(|m| m.is_for(email) && !m.id.is_empty())
            .min_by_key(|m| m.is_pending());
        let projects = self.projects(org).await?;
        let mut states = Vec::with_capacity(projects.len());
        let mut scopes = BTreeSet::new();
        for p in &projects {
            let role = self
                .api
                .project_members(&p.id)
                .await?
                .into_iter()
                .find(|m| m.address().trim().eq_ignore_ascii_case(email.trim()))
                .and_then(|m| m.role);
            if let Some(r) = &role {
                scopes.insert(format!("{}:{r}", p.name()));
            }
            states.push(json!({ "id": p.id, "name": p.name(), "role": role }));
        }
        let Some(row) = row else {
            let mut absent = MemberObserved::absent();
            // Project roles without an org membership are access too: removal takes them.
            absent.vendor_state = json!({ "email": email, "projects": states });
            return Ok(MemberObserved { scopes, ..absent });
        };
        Ok(MemberObserved {
            presence: if row.is_pending() {
                Presence::Invited
            } else {
                Presence::Active
            },
            id: Some(row.id.clone()),
            roles: row.role.iter().cloned().collect(),
            scopes,
            vendor_state: json!({
                "id": row.id,
                "email": row.email.clone().or(row.invite_email.clone()),
                "projects": states,
            }),
            ..MemberObserved::absent()
        })
    }

    async fn change_member(
        &self,
        desired: &MemberDesired,
        observed: &MemberObserved,
        change: &MemberChange,
    ) -> Result<(), VendorError> {
        let org = desired.org.as_str();
        match change {
            MemberChange::Add => {
                self.api
                    .add_member(org, &desired.email, one_role(desired)?)
                    .await
            }
            MemberChange::SetRoles { .. } => {
                let email = observed.vendor_state["email"]
                    .as_str()
                    .unwrap_or(&desired.email);
                self.api.update_member(org, email, one_role(desired)?).await
            }
            MemberChange::SetScopes => {
                let want = parse_scopes(&desired.scopes_to_give())?;
                let projects = state_projects(observed);
                let mut target: BTreeMap<&str, &str> = BTreeMap::new();
                for (name, role) in &want {
                    let ids: Vec<&ProjectRole> =
                        projects.iter().filter(|p| &p.name == name).collect();
                    match ids.as_slice() {
                        [one] => {
                            target.insert(one.id.as_str(), role.as_str());
                        }
                        [] => {
                            return Err(VendorError::NotFound(format!(
                                "spec.scopes: organization {org} has no project named {name:?}"
                            )));
                        }
                        many => {
                            return Err(VendorError::Rejected(format!(
                                "spec.scopes: {} projects in organization {org} are named {name:?}; rename one",
                                many.len()
                            )));
                        }
                    }
                }
                for p in &projects {
                    match (target.get(p.id.as_str()), p.role.as_deref()) {
                        (Some(want), None) => {
                            self.api
                                .add_project_member(&p.id, &desired.email, want)
                                .await?
                        }
                        (Some(want), Some(have)) if want != &have => {
                            self.api
                                .update_project_member(&p.id, &desired.email, want)
                                .await?
                        }
                        (None, Some(_)) => {
                            self.api
                                .remove_project_member(&p.id, &desired.email)
                                .await?
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
        }
    }

    async fn remove_member(&self, org: &str, observed: &MemberObserved) -> Result<(), VendorError> {
        let email = observed.vendor_state["email"].as_str();
        // Project roles first: they are access too, and the org member's id is needed last.
        if let Some(email) = email {
            for p in state_projects(observed).iter().filter(|p| p.role.is_some()) {
                self.api.remove_project_member(&p.id, email).await?;
            }
        }
        if !observed.holds_access() {
            return Ok(());
        }
        let id = observed.vendor_state["id"]
            .as_str()
            .or(observed.id.as_deref())
            .ok_or_else(|| VendorError::NotFound("the member's id was not observed".into()))?;
        self.api.delete_member(org, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_summary_names_plan_and_account() {
        let usage = json!({"plan": "premium", "account": {"id": "a1", "name": "Acme"}});
        assert_eq!(
            plan_summary(&usage).as_deref(),
            Some("plan premium, account Acme")
        );
        assert_eq!(
            plan_summary(&json!({"plan": null, "account": {"name": "Acme"}})).as_deref(),
            Some("account Acme")
        );
        assert_eq!(plan_summary(&json!({"plan": 5})), None);
    }

    fn client() -> DataloopClient {
        let creds = Credentials::new(
            "ns/s",
            BTreeMap::from([("apiKey".to_string(), "a.b.c".to_string().into())]),
        );
        DataloopClient::new(
            Some("http://127.0.0.1:9"),
            creds,
            HttpConfig::default(),
            &Endpoints::default(),
        )
        .unwrap()
    }

    fn desired(settings: Value) -> OrgDesired {
        OrgDesired {
            owner: crate::vendors::Owner {
                key: "t/acme".into(),
                uid: None,
            },
            display_name: "Acme".into(),
            settings,
        }
    }

    fn observed(name: &str, plan: &str, cache: Value) -> OrgInfo {
        OrgInfo {
            id: "o1".into(),
            name: name.into(),
            owner: None,
            created_at: None,
            usage: None,
            raw: json!({"id": "o1", "name": name, "plan": plan, "cache": cache}),
        }
    }

    #[test]
    fn the_settings_patch_names_only_what_differs() {
        let c = client();
        let want = desired(json!({"plan": "premium", "cache": {"podType": "medium"}}));
        let ready = json!({"ready": true, "state": "READY", "podType": null});
        assert_eq!(
            c.org_patch(&want, &observed("Acme", "premium", ready.clone())),
            None
        );
        assert_eq!(
            c.org_patch(&want, &observed("Old", "freemium", json!({"ready": false}))),
            Some(
                json!({"name": "Acme", "plan": "premium", "cache": {"enabled": true, "podType": "medium"}})
            )
        );
        // A pod type the gate reports and that differs is applied again.
        let small = json!({"ready": true, "podType": "small"});
        assert_eq!(
            c.org_patch(&want, &observed("Acme", "premium", small)),
            Some(json!({"cache": {"enabled": true, "podType": "medium"}}))
        );
        // Unknown cache state: apply (safe to repeat) but never destroy.
        assert!(
            c.org_patch(&want, &observed("Acme", "premium", Value::Null))
                .is_some()
        );
        let off = desired(json!({"cache": {"enabled": false}}));
        assert_eq!(c.org_patch(&off, &observed("Acme", "x", Value::Null)), None);
        assert_eq!(
            c.org_patch(&off, &observed("Acme", "x", ready)),
            Some(json!({"cache": {"enabled": false, "podType": "small"}}))
        );
        // Unset settings are not managed.
        assert_eq!(
            c.org_patch(
                &desired(Value::Null),
                &observed("Acme", "freemium", json!({"ready": false}))
            ),
            None
        );
    }

    #[test]
    fn natural_keys() {
        assert_eq!(
            integration_key(&json!({"name": "S3", "type": "s3"})).as_deref(),
            Some("s3/S3")
        );
        assert_eq!(integration_key(&json!({"name": "S3"})), None);
        assert_eq!(
            driver_key(&json!({"name": "d", "projectId": "p"})).as_deref(),
            Some("p/d")
        );
        // Project order does not matter; the title does.
        let a = title_in_projects(&json!({"title": "T", "projectIds": ["b", "a", "b"]}));
        let b = title_in_projects(&json!({"title": "T", "projectIds": ["a", "b"]}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            title_in_projects(&json!({"title": "U", "projectIds": ["a", "b"]}))
        );
        assert_eq!(group_of_role("g-1:engineer"), Some(0..3));
        assert_eq!(group_of_role(":engineer"), None);
        assert_eq!(group_of_role("noscope"), None);
        assert!(is_system_project(&json!({"systemProject": true})));
        assert!(!is_system_project(&json!({"systemProject": "true"})));
    }

    #[test]
    fn drivers_read_flat_and_write_nested() {
        let read = normalize_driver(
            json!({
                "id": "d1", "name": "raw", "type": "s3", "integrationId": "i1",
                "integrationType": "s3", "metadata": {"system": {"projectId": "p1"}},
                "payload": {"bucketName": "b", "region": "eu", "authentication": {"secret": "x"}},
                "allowExternalDelete": false, "createdAt": "2024-01-01T00:00:00Z",
            }),
            None,
        );
        assert_eq!(read["projectId"], "p1");
        assert_eq!(read["bucketName"], "b");
        assert!(read.get("payload").is_none() && read.get("authentication").is_none());
        assert!(!read.to_string().contains("\"secret\""));
        // Listed under a project, without one of its own.
        assert_eq!(
            normalize_driver(json!({"id": "d"}), Some("p9"))["projectId"],
            "p9"
        );

        let write = driver_write_body(&read, "me@x.example").unwrap();
        assert_eq!(
            write,
            json!({
                "integrationId": "i1", "integrationType": "s3", "name": "raw",
                "metadata": {"system": {"projectId": "p1"}}, "type": "s3",
                "payload": {"bucketName": "b", "region": "eu"},
                "creator": "me@x.example", "allowExternalDelete": false,
            })
        );
        assert!(driver_write_body(&json!({"name": "x", "type": "s3"}), "m").is_err());

        assert_eq!(
            driver_patch_body(&json!({"path": "/new", "allowExternalDelete": true})).unwrap(),
            json!({"payload": {"path": "/new"}, "allowExternalDelete": true})
        );
        let e = driver_patch_body(&json!({"integrationId": "i2"})).unwrap_err();
        assert!(matches!(e, VendorError::Unsupported { .. }), "{e}");
    }

    #[test]
    fn ontology_attribute_definitions_are_read_at_the_top_and_written_under_metadata() {
        let own: HashSet<String> = ["p1".to_string()].into();
        let defs = json!([{"key": "c", "name": "Confidence", "type": "slider",
                           "range": {"min": 0, "max": 100, "step": 5}}]);
        let o = normalize_linked(
            json!({"id": "o", "title": "T", "roots": [], "attributes": ["c"],
                   "metadata": {"attributes": defs, "system": {"projectIds": ["p1"]}}}),
            &own,
        );
        assert_eq!(o[ATTRIBUTE_DEFINITIONS], defs);
        // None at all reads as none, so a template without them compares equal to its copy.
        let bare = normalize_linked(json!({"id": "o", "title": "T"}), &own);
        assert_eq!(bare[ATTRIBUTE_DEFINITIONS], json!([]));

        // An update puts them under `metadata` (next to the system links), never at the top.
        let (body, changed) = merge_linked(
            o.clone(),
            &json!({ATTRIBUTE_DEFINITIONS: [{"key": "c", "type": "boolean"}]}),
            &own,
            true,
        );
        assert!(!changed);
        assert!(body.get(ATTRIBUTE_DEFINITIONS).is_none(), "{body}");
        assert_eq!(
            body["metadata"]["attributes"],
            json!([{"key": "c", "type": "boolean"}])
        );
        assert_eq!(body["metadata"]["system"]["projectIds"], json!(["p1"]));
    }

    #[test]
    fn ontologies_and_recipes_link_only_the_orgs_own_projects() {
        let own: HashSet<String> = ["p1".to_string(), "p2".to_string()].into();
        let o = normalize_linked(
            json!({"id": "o", "title": "T", "roots": null,
                   "metadata": {"system": {"projectIds": ["p1", "sys", "elsewhere"]}}}),
            &own,
        );
        assert_eq!(o["projectIds"], json!(["p1"]));
        assert_eq!(o["roots"], json!([]));
        assert_eq!(o["attributes"], json!([]));

        // An update keeps the links outside the org and says when the links changed.
        let current = json!({"id": "o", "title": "T", "roots": [],
                             "metadata": {"system": {"projectIds": ["p1", "sys"]}, "x": 1}});
        let (body, changed) = merge_linked(
            current.clone(),
            &json!({"projectIds": ["p2"], "title": "U"}),
            &own,
            true,
        );
        assert!(changed);
        assert_eq!(body["title"], "U");
        assert_eq!(body["projectIds"], json!(["p2", "sys"]));
        assert_eq!(
            body["metadata"]["system"]["projectIds"],
            json!(["p2", "sys"])
        );
        assert_eq!(body["metadata"]["x"], 1);
        let (_, changed) = merge_linked(current, &json!({"roots": [1]}), &own, true);
        assert!(!changed);
        let (body, changed) = merge_linked(
            json!({"projectIds": ["p1"], "ontologyIds": ["o"]}),
            &json!({"projectIds": ["p1"]}),
            &own,
            false,
        );
        assert!(!changed);
        assert!(
            body.get("metadata").is_none(),
            "recipes keep links at the top only"
        );
    }

    #[test]
    fn integrations_show_configuration_not_state_and_take_options_from_the_secret() {
        let i = normalize_integration(json!({
            "id": "i", "name": "nfs", "type": "nfs", "org": "o",
            "metadata": [
                {"name": "status", "value": "ok"},
                {"name": "server", "value": "10.0.0.5", "id": "m1"},
                {"name": "path", "value": "/exports"},
            ],
        }));
        assert_eq!(
            i["metadata"],
            json!({"server": "10.0.0.5", "path": "/exports"})
        );
        let creds = Credentials::new(
            "ns/s3",
            BTreeMap::from([
                ("key".to_string(), "AKIA".to_string().into()),
                ("secret".to_string(), "shh".to_string().into()),
                ("spec.accessKeyId".to_string(), "id".to_string().into()),
                ("content".to_string(), "{\"a\":1}".to_string().into()),
            ]),
        );
        assert_eq!(
            integration_options(&creds),
            json!({"key": "AKIA", "secret": "shh", "content": "{\"a\":1}", "spec": {"accessKeyId": "id"}})
        );
    }

    #[test]
    fn scopes_are_project_roles() {
        let set = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            parse_scopes(&set(&["Cars:annotator", "a:b:engineer"])).unwrap(),
            BTreeMap::from([
                ("Cars".to_string(), "annotator".to_string()),
                ("a:b".to_string(), "engineer".to_string())
            ])
        );
        for bad in [
            &["Cars"][..],
            &["Cars:developer"],
            &[":owner"],
            &["A:owner", "A:engineer"],
        ] {
            assert!(
                matches!(parse_scopes(&set(bad)), Err(VendorError::Rejected(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn declared_kinds_depend_in_copy_order() {
        let deps = |k: &KindSpec| k.dependencies().collect::<Vec<_>>();
        assert_eq!(deps(&PROJECTS), ["groups"]);
        assert_eq!(deps(&DRIVERS), ["projects", "integrations"]);
        assert_eq!(deps(&RECIPES), ["projects", "ontologies"]);
        assert!(deps(&GROUPS).is_empty() && deps(&INTEGRATIONS).is_empty());
    }
}
