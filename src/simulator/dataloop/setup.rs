//! The template-copy objects (design doc `vendors/dataloop.md` §3–§4): groups, integrations,
//! projects with their members and groups, drivers, ontologies, recipes and datasets. Every
//! id is made by the server; names are not unique (the gate does not make them so), so a
//! client that creates twice leaves two objects behind, as at the real vendor.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::state::{
    Answer, Caller, DATASETS, DRIVERS, GROUPS, INTEGRATIONS, MAX_NAME, MEMBERS, ONTOLOGIES,
    OrgNeed, Out, PROJECT_GROUPS, PROJECT_MEMBERS, PROJECT_ROLES, PROJECTS, RECIPES, State,
    id_list, is_email, now_iso, now_ms, optional_str, required_str,
};
use crate::simulator::kit::paging;

/// Integration types on the wire (dtlpy's `IntegrationType`, and the OpenAPI's `s3-api`).
pub const INTEGRATION_TYPES: &[&str] = &[
    "s3",
    "aws-sts",
    "aws-cross",
    "gcs",
    "gcp-cross",
    "gcp-workload-identity-federation",
    "azureblob",
    "key_value",
    "private-registry",
    "nfs",
    "hostPath",
    "blob",
    "pvc",
    "s3-api",
];

/// Driver types on the wire (dtlpy's `ExternalStorage`).
pub const DRIVER_TYPES: &[&str] = &[
    "s3",
    "gcs",
    "faasProxy",
    "azureblob",
    "azureDatalakeGen2",
    "powerscaleS3",
    "powerscaleNfs",
    "computeCluster",
    "storage",
];

/// Largest page an offset-paged list serves.
pub const MAX_PAGE_SIZE: usize = 1000;

/// What a project operation needs of the caller's role there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectNeed {
    /// Any contributor.
    Read,
    /// Owners and engineers (drivers, ontologies, recipes, datasets).
    Write,
    /// Owners (name, members, groups, move, delete).
    Manage,
}

fn role_of(body: &Value) -> Result<String, ApiError> {
    body.get("role")
        .and_then(Value::as_str)
        .filter(|r| PROJECT_ROLES.contains(r))
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request(
                "\"role\" must be one of: owner, engineer, annotator, annotationManager",
            )
        })
}

fn object_or_empty(v: Option<&Value>, what: &str) -> Result<Map<String, Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ApiError::bad_request(format!(
            "\"{what}\" must be an object"
        ))),
    }
}

/// Checks a label tree (`[{"value": {"tag", …}, "children": [...]}]`) as the gate reads it.
fn check_roots(roots: &Value) -> Result<(), ApiError> {
    fn walk(nodes: &Value, depth: usize, count: &mut usize) -> Result<(), ApiError> {
        let bad = |m: &str| Err(ApiError::bad_request(m.to_string()));
        let Some(nodes) = nodes.as_array() else {
            return bad("\"roots\" and \"children\" must be arrays of labels");
        };
        if depth > 32 {
            return bad("Labels are nested too deeply");
        }
        for n in nodes {
            *count += 1;
            if *count > 10_000 {
                return bad("Too many labels");
            }
            let tag = n.get("value").and_then(|v| v.get("tag"));
            if !tag
                .and_then(Value::as_str)
                .is_some_and(|t| !t.trim().is_empty() && t.chars().count() <= MAX_NAME)
            {
                return bad("Every label needs a \"value.tag\" string");
            }
            match n.get("children") {
                None | Some(Value::Null) => {}
                Some(c) => walk(c, depth + 1, count)?,
            }
        }
        Ok(())
    }
    walk(roots, 0, &mut 0)
}

/// The comma-separated values of query parameter `key`, all occurrences.
fn query_list(query: &[(String, String)], key: &str) -> Vec<String> {
    query
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `pageOffset` and `pageSize` (default 1000, at most 1000); 400 when not numbers.
fn page_params(query: &[(String, String)]) -> Result<(usize, usize), ApiError> {
    let get = |k: &str, default: usize| -> Result<usize, ApiError> {
        match query.iter().find(|(q, _)| q == k) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("\"{k}\" must be a number"))),
        }
    };
    let offset = get("pageOffset", 0)?;
    let size = get("pageSize", MAX_PAGE_SIZE)?;
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "\"pageSize\" must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok((offset, size))
}

impl State {
    // ---- access ----

    /// The caller's role in project `pid`: org owners/admins (and superusers) are owners of
    /// every project of the org; others have their contributor role, if any.
    pub fn project_role(&self, caller: &Caller, pid: &str) -> Option<String> {
        let rec = self.store.get(PROJECTS, pid)?;
        if let Some(r) = self.org_role(caller, &rec.org)
            && (r == "owner" || r == "admin")
        {
            return Some("owner".into());
        }
        self.store
            .get(PROJECT_MEMBERS, &format!("{pid}/{}", caller.email))
            .and_then(|r| r.value["role"].as_str())
            .map(str::to_string)
    }

    /// 404 for an unknown project, 403 unless the caller's role there allows `need`; the
    /// project's org id.
    pub fn need_project(
        &self,
        caller: &Caller,
        pid: &str,
        need: ProjectNeed,
    ) -> Result<String, ApiError> {
        let org = self
            .store
            .get(PROJECTS, pid)
            .map(|r| r.org.clone())
            .ok_or_else(|| ApiError::not_found(format!("Project not found: {pid}")))?;
        let role = self
            .project_role(caller, pid)
            .ok_or_else(|| ApiError::forbidden("You are not a member of this project"))?;
        let ok = match need {
            ProjectNeed::Read => true,
            ProjectNeed::Write => role == "owner" || role == "engineer",
            ProjectNeed::Manage => role == "owner",
        };
        if !ok {
            return Err(ApiError::forbidden("Your project role does not allow this"));
        }
        Ok(org)
    }

    fn need_projects(
        &self,
        caller: &Caller,
        pids: &[String],
        need: ProjectNeed,
    ) -> Result<String, ApiError> {
        let mut first = None;
        for p in pids {
            let org = self.need_project(caller, p, need)?;
            first.get_or_insert(org);
        }
        first.ok_or_else(|| ApiError::bad_request("\"projectIds\" must name at least one project"))
    }

    fn readable_by(&self, caller: &Caller, pids: &Value) -> bool {
        pids.as_array().is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|p| self.project_role(caller, p).is_some())
        })
    }

    // ---- groups ----

    /// A group as served (`APIGroup`), its `projects` computed.
    pub fn render_group(&self, gid: &str) -> Value {
        let Some(rec) = self.store.get(GROUPS, gid) else {
            return Value::Null;
        };
        let mut v = rec.value.clone();
        let projects: Vec<Value> = self
            .store
            .list(PROJECT_GROUPS)
            .into_iter()
            .filter(|(_, r)| r.value["groupId"] == gid)
            .map(|(_, r)| r.value["projectId"].clone())
            .collect();
        v["projects"] = json!(projects);
        v["url"] = json!(format!("{}/groups/{gid}", self.base_url));
        v
    }

    fn group_org(&self, gid: &str) -> Result<String, ApiError> {
        self.store
            .get(GROUPS, gid)
            .map(|r| r.org.clone())
            .ok_or_else(|| ApiError::not_found(format!("Group not found: {gid}")))
    }

    /// `GET /orgs/{id}/groups`.
    pub fn list_groups(&self, caller: &Caller, org: &str) -> Answer {
        self.need_org(caller, org, OrgNeed::Read)?;
        let out: Vec<Value> = self
            .store
            .in_org(GROUPS, org)
            .into_iter()
            .map(|(id, _)| self.render_group(id))
            .collect();
        Ok(Out::Json(Value::Array(out)))
    }

    /// `POST /groups {"name", "orgId"}`.
    pub fn create_group(&mut self, caller: &Caller, body: &Value) -> Answer {
        let org = required_str(body, "orgId")?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let name = required_str(body, "name")?;
        let now = now_ms();
        let id = self.new_id();
        let v = json!({
            "id": id, "name": name, "org": org, "owner": caller.email, "creator": caller.email,
            "members": [], "subgroups": [], "defaultProjectRole": null,
            "createdAt": now, "updatedAt": now,
        });
        let _ = self.store.create(GROUPS, Some(id.clone()), &org, v);
        Ok(Out::Json(self.render_group(&id)))
    }

    /// `GET /groups/{id}`.
    pub fn get_group(&self, caller: &Caller, gid: &str) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Read)?;
        Ok(Out::Json(self.render_group(gid)))
    }

    /// `PATCH /groups/{id} {"name", "default_project_role"?}`.
    pub fn update_group(&mut self, caller: &Caller, gid: &str, body: &Value) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let name = required_str(body, "name")?;
        let default_role = match body.get("default_project_role") {
            None | Some(Value::Null) | Some(Value::Bool(_)) => None,
            Some(_) => Some(role_of(&json!({"role": body["default_project_role"]}))?),
        };
        let now = now_ms();
        let _ = self.store.update(GROUPS, gid, |v| {
            v["name"] = json!(name);
            if let Some(r) = default_role {
                v["defaultProjectRole"] = json!(r);
            }
            v["updatedAt"] = json!(now);
        });
        Ok(Out::Json(self.render_group(gid)))
    }

    /// `DELETE /groups/{id}`: also takes it out of projects and parent groups.
    pub fn delete_group(&mut self, caller: &Caller, gid: &str) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        self.store.delete(GROUPS, gid);
        self.store
            .delete_where_uncounted(PROJECT_GROUPS, |_, r| r.value["groupId"] == gid);
        let parents: Vec<String> = self
            .store
            .in_org(GROUPS, &org)
            .into_iter()
            .filter(|(_, r)| {
                r.value["subgroups"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == gid))
            })
            .map(|(id, _)| id.to_string())
            .collect();
        for p in parents {
            let _ = self.store.update_uncounted(GROUPS, &p, |v| {
                if let Some(s) = v["subgroups"].as_array_mut() {
                    s.retain(|x| x != gid);
                }
            });
        }
        Ok(Out::NoContent)
    }

    fn group_members(&self, gid: &str) -> Value {
        let emails: Vec<String> = self
            .store
            .get(GROUPS, gid)
            .and_then(|r| r.value["members"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        Value::Array(emails.iter().map(|e| self.render_user(e)).collect())
    }

    /// `GET /groups/{id}/members`.
    pub fn list_group_members(&self, caller: &Caller, gid: &str) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Read)?;
        Ok(Out::Json(self.group_members(gid)))
    }

    /// `POST /groups/{id}/members {"user_id"}`: an active member of the group's org (by
    /// e-mail); 409 when in the group already.
    pub fn add_group_member(&mut self, caller: &Caller, gid: &str, body: &Value) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let user = required_str(body, "user_id")?.to_ascii_lowercase();
        let active = self
            .find_member(&org, &user)
            .is_some_and(|(_, r)| r["status"] == "active");
        if !active {
            return Err(ApiError::bad_request(
                "The user is not an active member of the group's organization",
            ));
        }
        let already = self.store.get(GROUPS, gid).is_some_and(|r| {
            r.value["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == user.as_str()))
        });
        if already {
            return Err(ApiError::conflict("The user is in the group already"));
        }
        let now = now_ms();
        let _ = self.store.update(GROUPS, gid, |v| {
            if let Some(m) = v["members"].as_array_mut() {
                m.push(json!(user));
            }
            v["updatedAt"] = json!(now);
        });
        Ok(Out::Json(self.group_members(gid)))
    }

    /// `DELETE /groups/{id}/members/{memberId}`.
    pub fn remove_group_member(&mut self, caller: &Caller, gid: &str, member: &str) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let member = member.to_ascii_lowercase();
        let present = self.store.get(GROUPS, gid).is_some_and(|r| {
            r.value["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == member.as_str()))
        });
        if !present {
            return Err(ApiError::not_found("The user is not in the group"));
        }
        let _ = self.store.update(GROUPS, gid, |v| {
            if let Some(m) = v["members"].as_array_mut() {
                m.retain(|x| x != member.as_str());
            }
        });
        Ok(Out::NoContent)
    }

    fn subgroups(&self, gid: &str) -> Value {
        let ids: Vec<String> = self
            .store
            .get(GROUPS, gid)
            .and_then(|r| r.value["subgroups"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        Value::Array(
            ids.iter()
                .filter(|id| self.store.contains(GROUPS, id))
                .map(|id| self.render_group(id))
                .collect(),
        )
    }

    /// `GET /groups/{id}/subgroups`.
    pub fn list_subgroups(&self, caller: &Caller, gid: &str) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Read)?;
        Ok(Out::Json(self.subgroups(gid)))
    }

    /// `POST /groups/{id}/subgroups {"sub_group_id"}`: a group of the same org, not the group
    /// itself.
    pub fn add_subgroup(&mut self, caller: &Caller, gid: &str, body: &Value) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let sub = required_str(body, "sub_group_id")?;
        if sub == gid || self.store.get(GROUPS, &sub).is_none_or(|r| r.org != org) {
            return Err(ApiError::bad_request(
                "\"sub_group_id\" must be another group of the same organization",
            ));
        }
        let _ = self.store.update(GROUPS, gid, |v| {
            if let Some(s) = v["subgroups"].as_array_mut()
                && !s.iter().any(|x| x == sub.as_str())
            {
                s.push(json!(sub));
            }
        });
        Ok(Out::Json(self.subgroups(gid)))
    }

    /// `DELETE /groups/{id}/subgroups/{subId}`.
    pub fn remove_subgroup(&mut self, caller: &Caller, gid: &str, sub: &str) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let present = self.store.get(GROUPS, gid).is_some_and(|r| {
            r.value["subgroups"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == sub))
        });
        if !present {
            return Err(ApiError::not_found("Not a subgroup of this group"));
        }
        let _ = self.store.update(GROUPS, gid, |v| {
            if let Some(s) = v["subgroups"].as_array_mut() {
                s.retain(|x| x != sub);
            }
        });
        Ok(Out::NoContent)
    }

    /// `PATCH /groups/{id}/owner {"newGroupOwnerId"}`.
    pub fn set_group_owner(&mut self, caller: &Caller, gid: &str, body: &Value) -> Answer {
        let org = self.group_org(gid)?;
        self.need_org(caller, &org, OrgNeed::Manage)?;
        let owner = required_str(body, "newGroupOwnerId")?.to_ascii_lowercase();
        if !self
            .find_member(&org, &owner)
            .is_some_and(|(_, r)| r["status"] == "active")
        {
            return Err(ApiError::bad_request(
                "The new owner is not an active member of the organization",
            ));
        }
        let _ = self
            .store
            .update(GROUPS, gid, |v| v["owner"] = json!(owner));
        Ok(Out::Json(self.render_group(gid)))
    }

    // ---- integrations ----

    /// `GET /orgs/{id}/integrations`.
    pub fn list_integrations(&self, caller: &Caller, org: &str) -> Answer {
        self.need_org(caller, org, OrgNeed::Read)?;
        let out: Vec<Value> = self
            .store
            .in_org(INTEGRATIONS, org)
            .into_iter()
            .map(|(_, r)| r.value.clone())
            .collect();
        Ok(Out::Json(Value::Array(out)))
    }

    /// `GET /orgs/{id}/integrations/{iid}`.
    pub fn get_integration(&self, caller: &Caller, org: &str, iid: &str) -> Answer {
        self.need_org(caller, org, OrgNeed::Read)?;
        self.store
            .get(INTEGRATIONS, iid)
            .filter(|r| r.org == org)
            .map(|r| Out::Json(r.value.clone()))
            .ok_or_else(|| ApiError::not_found(format!("Integration not found: {iid}")))
    }

    fn metadata_entry(iid: &str, name: &str, value: &Value, now: i64, id: String) -> Value {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        json!({"id": id, "name": name, "value": value, "integration": iid,
               "createdAt": now, "updatedAt": now})
    }

    /// `POST /orgs/{id}/integrations {"type", "name", "options", "metadata"?}`: `options` hold
    /// the credentials and are kept write-only (never served); `metadata` (an object) becomes
    /// the served list of `{name, value}` next to `status`.
    pub fn create_integration(&mut self, caller: &Caller, org: &str, body: &Value) -> Answer {
        self.need_org(caller, org, OrgNeed::Manage)?;
        let kind = body
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| INTEGRATION_TYPES.contains(t))
            .ok_or_else(|| ApiError::bad_request("Unknown integration \"type\""))?
            .to_string();
        let name = required_str(body, "name")?;
        let options = object_or_empty(body.get("options"), "options")?;
        if options.is_empty() {
            return Err(ApiError::bad_request(
                "\"options\" (the integration's credentials) are required",
            ));
        }
        let meta = object_or_empty(body.get("metadata"), "metadata")?;
        let now = now_ms();
        let id = self.new_id();
        let mut metadata = vec![Self::metadata_entry(
            &id,
            "status",
            &json!("active"),
            now,
            self.new_id(),
        )];
        for (k, v) in &meta {
            let mid = self.new_id();
            metadata.push(Self::metadata_entry(&id, k, v, now, mid));
        }
        let v = json!({
            "id": id, "name": name, "type": kind, "org": org, "creator": caller.email,
            "metadata": metadata, "url": format!("{}/orgs/{org}/integrations/{id}", self.base_url),
            "createdAt": now, "updatedAt": now,
        });
        self.integration_options
            .insert(id.clone(), Value::Object(options));
        let _ = self.store.create(INTEGRATIONS, Some(id), org, v.clone());
        Ok(Out::Json(v))
    }

    /// `PATCH /orgs/{id}/integrations {"integrationId", "name"?, "credentials"?: {"type",
    /// "options"}, "metadata"?: [{"name", "value"}]}`.
    pub fn update_integration(&mut self, caller: &Caller, org: &str, body: &Value) -> Answer {
        self.need_org(caller, org, OrgNeed::Manage)?;
        let iid = required_str(body, "integrationId")?;
        let current = self
            .store
            .get(INTEGRATIONS, &iid)
            .filter(|r| r.org == org)
            .map(|r| r.value.clone())
            .ok_or_else(|| ApiError::not_found(format!("Integration not found: {iid}")))?;
        let name = optional_str(body, "name")?;
        let options = match body.get("credentials") {
            None | Some(Value::Null) => None,
            Some(c) => {
                if c.get("type") != Some(&current["type"]) {
                    return Err(ApiError::bad_request(
                        "\"credentials.type\" must be the integration's type",
                    ));
                }
                let o = object_or_empty(c.get("options"), "credentials.options")?;
                if o.is_empty() {
                    return Err(ApiError::bad_request(
                        "\"credentials.options\" are required",
                    ));
                }
                Some(o)
            }
        };
        let mut entries = Vec::new();
        if let Some(m) = body.get("metadata").filter(|m| !m.is_null()) {
            let items = m.as_array().ok_or_else(|| {
                ApiError::bad_request("\"metadata\" must be an array of {name, value}")
            })?;
            for i in items {
                let n = required_str(i, "name")?;
                if n == "status" {
                    continue;
                }
                entries.push((n, i.get("value").cloned().unwrap_or(Value::Null)));
            }
        }
        let now = now_ms();
        let mut ids: Vec<String> = Vec::new();
        for _ in &entries {
            ids.push(self.new_id());
        }
        let updated = self
            .store
            .update(INTEGRATIONS, &iid, |v| {
                if let Some(n) = name {
                    v["name"] = json!(n);
                }
                if let Some(list) = v["metadata"].as_array_mut() {
                    for ((n, val), id) in entries.iter().zip(ids) {
                        let entry = Self::metadata_entry(&iid, n, val, now, id);
                        match list.iter_mut().find(|e| e["name"] == n.as_str()) {
                            Some(e) => {
                                e["value"] = entry["value"].clone();
                                e["updatedAt"] = json!(now);
                            }
                            None => list.push(entry),
                        }
                    }
                }
                v["updatedAt"] = json!(now);
                v.clone()
            })
            .map_err(|_| ApiError::not_found("Integration not found"))?;
        if let Some(o) = options {
            self.integration_options.insert(iid, Value::Object(o));
        }
        Ok(Out::Json(updated))
    }

    /// `DELETE /orgs/{id}/integrations/{iid}`: answers the org's remaining integrations.
    pub fn delete_integration(&mut self, caller: &Caller, org: &str, iid: &str) -> Answer {
        self.need_org(caller, org, OrgNeed::Manage)?;
        if self
            .store
            .get(INTEGRATIONS, iid)
            .is_none_or(|r| r.org != org)
        {
            return Err(ApiError::not_found(format!("Integration not found: {iid}")));
        }
        self.store.delete(INTEGRATIONS, iid);
        self.integration_options.remove(iid);
        self.list_integrations(caller, org)
    }

    /// `GET /orgs/{id}/availableIntegrations`: the types an org can add, with the options
    /// each asks for.
    pub fn available_integrations(&self, caller: &Caller, org: &str) -> Answer {
        self.need_org(caller, org, OrgNeed::Read)?;
        let opt = |name: &str, display: &str, kind: &str, required: bool| json!({"name": name, "displayName": display, "type": kind, "required": required});
        let out = json!([
            {"type": "s3", "displayName": "AWS S3", "options": [
                opt("key", "Access key ID", "string", true),
                opt("secret", "Secret access key", "password", true)]},
            {"type": "aws-sts", "displayName": "AWS STS", "options": [
                opt("key", "Access key ID", "string", true),
                opt("secret", "Secret access key", "password", true),
                opt("roleArns", "Role ARNs", "string", true)]},
            {"type": "aws-cross", "displayName": "AWS cross account", "options": []},
            {"type": "gcs", "displayName": "Google Cloud Storage", "options": [
                opt("content", "Service account JSON", "file", true)]},
            {"type": "gcp-cross", "displayName": "GCP cross project", "options": []},
            {"type": "azureblob", "displayName": "Azure Blob Storage", "options": [
                opt("clientId", "Client ID", "string", true),
                opt("secret", "Client secret", "password", true),
                opt("tenantId", "Tenant ID", "string", true)]},
            {"type": "key_value", "displayName": "Key-value secret", "options": [
                opt("key", "Key", "string", true),
                opt("value", "Value", "password", true)]},
            {"type": "private-registry", "displayName": "Private container registry", "options": [
                opt("name", "Name", "string", true),
                opt("spec", "Registry credentials", "object", true)]},
            {"type": "nfs", "displayName": "NFS", "options": [
                opt("password", "Password", "password", false)]},
        ]);
        Ok(Out::Json(out))
    }

    // ---- projects ----

    /// A project as served (`APIProject`) for `caller`.
    pub fn render_project(&self, caller: &Caller, pid: &str) -> Value {
        let Some(rec) = self.store.get(PROJECTS, pid) else {
            return Value::Null;
        };
        let mut v = rec.value.clone();
        let org_name = self
            .store
            .get(super::state::ORGS, &rec.org)
            .map(|o| o.value["name"].clone())
            .unwrap_or(Value::Null);
        v["org"] = json!({"id": rec.org, "name": org_name});
        let contributors: Vec<Value> = self
            .store
            .list(PROJECT_MEMBERS)
            .into_iter()
            .filter(|(_, r)| r.value["projectId"] == pid)
            .map(|(_, r)| r.value["email"].clone())
            .collect();
        let groups: Vec<Value> = self
            .store
            .list(PROJECT_GROUPS)
            .into_iter()
            .filter(|(_, r)| r.value["projectId"] == pid)
            .map(|(_, r)| r.value["groupId"].clone())
            .collect();
        v["contributors"] = json!(contributors);
        v["groups"] = json!(groups);
        v["guests"] = json!([]);
        v["role"] = json!(self.project_role(caller, pid));
        v["url"] = json!(format!("{}/projects/{pid}", self.base_url));
        v
    }

    fn visible_projects<'a>(&'a self, caller: &Caller, org: Option<&str>) -> Vec<&'a str> {
        self.store
            .list(PROJECTS)
            .into_iter()
            .filter(|(_, r)| org.is_none_or(|o| r.org == o))
            .filter(|(id, _)| self.project_role(caller, id).is_some())
            .map(|(id, _)| id)
            .collect()
    }

    /// `GET /projects`: every project the caller can see.
    pub fn list_projects(&self, caller: &Caller) -> Answer {
        let out: Vec<Value> = self
            .visible_projects(caller, None)
            .into_iter()
            .map(|p| self.render_project(caller, p))
            .collect();
        Ok(Out::Json(Value::Array(out)))
    }

    /// `GET /orgs/{id}/projects`.
    pub fn list_org_projects(&self, caller: &Caller, org: &str) -> Answer {
        self.need_org(caller, org, OrgNeed::Read)?;
        let out: Vec<Value> = self
            .visible_projects(caller, Some(org))
            .into_iter()
            .map(|p| self.render_project(caller, p))
            .collect();
        Ok(Out::Json(Value::Array(out)))
    }

    /// `GET /projects/{name}/name`: the visible projects with that name (an array: names are
    /// not unique); 404 when there is none.
    pub fn projects_by_name(&self, caller: &Caller, name: &str) -> Answer {
        let out: Vec<Value> = self
            .visible_projects(caller, None)
            .into_iter()
            .filter(|p| {
                self.store
                    .get(PROJECTS, p)
                    .is_some_and(|r| r.value["name"] == name)
            })
            .map(|p| self.render_project(caller, p))
            .collect();
        if out.is_empty() {
            return Err(ApiError::not_found("Project not found"));
        }
        Ok(Out::Json(Value::Array(out)))
    }

    /// Creates a project in `org` (no permission check; the seed and `POST /projects` use
    /// it); its creator becomes its owner.
    pub fn insert_project(&mut self, org: &str, name: &str, creator: &str, system: bool) -> String {
        let now = now_ms();
        let id = self.new_id();
        let account = self
            .store
            .get(super::state::ORGS, org)
            .map(|o| o.value["account"]["id"].clone())
            .unwrap_or(Value::Null);
        let v = json!({
            "id": id, "name": name, "creator": creator, "account": account,
            "featureConstraints": [], "archived": false, "isBlocked": false,
            "systemProject": system, "createdAt": now, "updatedAt": now,
        });
        let _ = self.store.create(PROJECTS, Some(id.clone()), org, v);
        // The creator's membership is the gate's doing, part of the one create.
        let _ = self.store.create_uncounted(
            PROJECT_MEMBERS,
            Some(format!("{id}/{creator}")),
            org,
            json!({"projectId": id, "email": creator, "role": "owner",
                   "createdAt": now, "updatedAt": now}),
        );
        id
    }

    /// `POST /projects` (form `name=…`, or JSON `{"name", "account"?}`): a project in the
    /// caller's active org (`POST /users/me {"org"}` sets it); owners, admins and members of
    /// that org may create projects, workers may not.
    pub fn create_project(&mut self, caller: &Caller, body: &Value) -> Answer {
        let name = required_str(body, "name")?;
        let org = self
            .users
            .get(&caller.email)
            .and_then(|u| u.active_org.clone())
            .filter(|o| self.store.contains(super::state::ORGS, o))
            .ok_or_else(|| {
                ApiError::bad_request("You have no active organization to create a project in")
            })?;
        self.need_org(caller, &org, OrgNeed::Read)?;
        let id = self.insert_project(&org, &name, &caller.email, false);
        Ok(Out::Json(self.render_project(caller, &id)))
    }

    /// `GET /projects/{id}`.
    pub fn get_project(&self, caller: &Caller, pid: &str) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Read)?;
        Ok(Out::Json(self.render_project(caller, pid)))
    }

    /// `PATCH /projects/{id}`: dtlpy sends the whole project; only `name` is writable.
    pub fn update_project(&mut self, caller: &Caller, pid: &str, body: &Value) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Manage)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        }
        let name = optional_str(body, "name")?;
        let now = now_ms();
        let _ = self.store.update(PROJECTS, pid, |v| {
            if let Some(n) = name {
                v["name"] = json!(n);
            }
            v["updatedAt"] = json!(now);
        });
        Ok(Out::Json(self.render_project(caller, pid)))
    }

    /// `PATCH /projects/{id}/org {"org_id"}` (form or JSON): moves a project, with its
    /// contributors, drivers and datasets, to another org the caller manages. Its group roles
    /// stay behind (groups belong to the old org). The system project does not move.
    pub fn move_project(&mut self, caller: &Caller, pid: &str, body: &Value) -> Answer {
        let from = self.need_project(caller, pid, ProjectNeed::Manage)?;
        let to = required_str(body, "org_id")?;
        self.need_org(caller, &to, OrgNeed::Manage)?;
        if self
            .store
            .get(PROJECTS, pid)
            .is_some_and(|r| r.value["systemProject"] == true)
        {
            return Err(ApiError::bad_request("The system project cannot be moved"));
        }
        if from != to {
            // One write (counted on the project); what hangs off the project moves with it.
            let account = self
                .store
                .get(super::state::ORGS, &to)
                .map(|o| o.value["account"]["id"].clone())
                .unwrap_or(Value::Null);
            let now = now_ms();
            let _ = self.store.update(PROJECTS, pid, |v| {
                v["account"] = account;
                v["updatedAt"] = json!(now);
            });
            let _ = self.store.reassign(PROJECTS, pid, &to);
            self.store
                .delete_where_uncounted(PROJECT_GROUPS, |_, r| r.value["projectId"] == pid);
            for kind in [PROJECT_MEMBERS, DRIVERS, DATASETS] {
                let ids: Vec<String> = self
                    .store
                    .list(kind)
                    .into_iter()
                    .filter(|(_, r)| {
                        r.value["projectId"] == pid
                            || r.value["projects"]
                                .as_array()
                                .is_some_and(|a| a.iter().any(|x| x == pid))
                    })
                    .map(|(id, _)| id.to_string())
                    .collect();
                for id in ids {
                    let _ = self.store.reassign(kind, &id, &to);
                    if kind == DRIVERS {
                        let _ = self
                            .store
                            .update_uncounted(DRIVERS, &id, |v| v["orgId"] = json!(to));
                    }
                }
            }
            for kind in [ONTOLOGIES, RECIPES] {
                let ids: Vec<String> = self
                    .store
                    .list(kind)
                    .into_iter()
                    .filter(|(_, r)| first_project(&r.value, kind) == Some(pid))
                    .map(|(id, _)| id.to_string())
                    .collect();
                for id in ids {
                    let _ = self.store.reassign(kind, &id, &to);
                }
            }
        }
        Ok(Out::Json(self.render_project(caller, pid)))
    }

    /// `DELETE /projects/{id}`: with its contributors, group roles, drivers and datasets;
    /// ontologies and recipes lose the project and go when no project is left. Not the
    /// system project.
    pub fn delete_project(&mut self, caller: &Caller, pid: &str) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Manage)?;
        if self
            .store
            .get(PROJECTS, pid)
            .is_some_and(|r| r.value["systemProject"] == true)
        {
            return Err(ApiError::bad_request(
                "The system project cannot be deleted",
            ));
        }
        // One delete (counted on the project); the rest is the gate's cascade.
        self.store.delete(PROJECTS, pid);
        self.store
            .delete_where_uncounted(PROJECT_MEMBERS, |_, r| r.value["projectId"] == pid);
        self.store
            .delete_where_uncounted(PROJECT_GROUPS, |_, r| r.value["projectId"] == pid);
        self.store
            .delete_where_uncounted(DRIVERS, |_, r| r.value["projectId"] == pid);
        self.store.delete_where_uncounted(DATASETS, |_, r| {
            r.value["projects"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == pid))
        });
        for kind in [ONTOLOGIES, RECIPES] {
            let touched: Vec<String> = self
                .store
                .list(kind)
                .into_iter()
                .filter(|(_, r)| project_ids(&r.value, kind).contains(&pid))
                .map(|(id, _)| id.to_string())
                .collect();
            for id in touched {
                let left = self.store.get(kind, &id).map_or(0, |r| {
                    project_ids(&r.value, kind)
                        .iter()
                        .filter(|p| **p != pid)
                        .count()
                });
                if left == 0 {
                    self.store.delete_where_uncounted(kind, |i, _| i == id);
                } else {
                    let _ = self.store.update_uncounted(kind, &id, |v| {
                        let list = if kind == ONTOLOGIES {
                            &mut v["metadata"]["system"]["projectIds"]
                        } else {
                            &mut v["projectIds"]
                        };
                        if let Some(a) = list.as_array_mut() {
                            a.retain(|x| x != pid);
                        }
                    });
                }
            }
        }
        Ok(Out::NoContent)
    }

    // ---- project members ----

    fn contributors(&self, pid: &str) -> Value {
        let out: Vec<Value> = self
            .store
            .list(PROJECT_MEMBERS)
            .into_iter()
            .filter(|(_, r)| r.value["projectId"] == pid)
            .map(|(_, r)| {
                let email = r.value["email"].as_str().unwrap_or_default();
                let mut u = self.render_user(email);
                u["role"] = r.value["role"].clone();
                u["membershipType"] = json!("member");
                u["membershipEntityId"] = json!(pid);
                u["domain"] = json!(email.split('@').nth(1).unwrap_or_default());
                u["createdAt"] = r.value["createdAt"].clone();
                u["updatedAt"] = r.value["updatedAt"].clone();
                u
            })
            .collect();
        Value::Array(out)
    }

    /// `GET /projects/{id}/members`.
    pub fn list_project_members(&self, caller: &Caller, pid: &str) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Read)?;
        Ok(Out::Json(self.contributors(pid)))
    }

    /// `POST /projects/{id}/members/{email} {"role"}`: 409 when a contributor already.
    pub fn add_project_member(
        &mut self,
        caller: &Caller,
        pid: &str,
        email: &str,
        body: &Value,
    ) -> Answer {
        let org = self.need_project(caller, pid, ProjectNeed::Manage)?;
        let role = role_of(body)?;
        let email = email.trim().to_ascii_lowercase();
        if !is_email(&email) {
            return Err(ApiError::bad_request("Invalid e-mail address"));
        }
        let key = format!("{pid}/{email}");
        if self.store.contains(PROJECT_MEMBERS, &key) {
            return Err(ApiError::conflict("The user is a project member already"));
        }
        let now = now_ms();
        let _ = self.store.create(
            PROJECT_MEMBERS,
            Some(key),
            &org,
            json!({"projectId": pid, "email": email, "role": role,
                   "createdAt": now, "updatedAt": now}),
        );
        Ok(Out::Json(self.contributors(pid)))
    }

    /// `PATCH /projects/{id}/members/{email} {"role"}`.
    pub fn update_project_member(
        &mut self,
        caller: &Caller,
        pid: &str,
        email: &str,
        body: &Value,
    ) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Manage)?;
        let role = role_of(body)?;
        let key = format!("{pid}/{}", email.trim().to_ascii_lowercase());
        let now = now_ms();
        self.store
            .update(PROJECT_MEMBERS, &key, |v| {
                v["role"] = json!(role);
                v["updatedAt"] = json!(now);
            })
            .map_err(|_| ApiError::not_found("The user is not a project member"))?;
        Ok(Out::Json(self.contributors(pid)))
    }

    /// `DELETE /projects/{id}/members/{email}`: answers the remaining contributors.
    pub fn remove_project_member(&mut self, caller: &Caller, pid: &str, email: &str) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Manage)?;
        let key = format!("{pid}/{}", email.trim().to_ascii_lowercase());
        if self.store.delete(PROJECT_MEMBERS, &key).is_none() {
            return Err(ApiError::not_found("The user is not a project member"));
        }
        Ok(Out::Json(self.contributors(pid)))
    }

    // ---- project groups ----

    fn project_groups(&self, pid: &str) -> Value {
        let out: Vec<Value> = self
            .store
            .list(PROJECT_GROUPS)
            .into_iter()
            .filter(|(_, r)| r.value["projectId"] == pid)
            .filter_map(|(_, r)| {
                let gid = r.value["groupId"].as_str()?;
                let mut g = self.render_group(gid);
                if g.is_null() {
                    return None;
                }
                g["role"] = r.value["role"].clone();
                Some(g)
            })
            .collect();
        Value::Array(out)
    }

    /// `GET /projects/{id}/subgroups`: the groups with a role in the project (`role` on each).
    pub fn list_project_groups(&self, caller: &Caller, pid: &str) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Read)?;
        Ok(Out::Json(self.project_groups(pid)))
    }

    /// `POST|PATCH /projects/{id}/subgroups/{groupId} {"role"}`: a group of the project's org;
    /// POST of a group already there is a 409, PATCH of one that is not a 404.
    pub fn set_project_group(
        &mut self,
        caller: &Caller,
        pid: &str,
        gid: &str,
        body: &Value,
        create: bool,
    ) -> Answer {
        let org = self.need_project(caller, pid, ProjectNeed::Manage)?;
        let role = role_of(body)?;
        if self.store.get(GROUPS, gid).is_none_or(|r| r.org != org) {
            return Err(ApiError::not_found(
                "Group not found in the project's organization",
            ));
        }
        let key = format!("{pid}/{gid}");
        let now = now_ms();
        match (create, self.store.contains(PROJECT_GROUPS, &key)) {
            (true, true) => return Err(ApiError::conflict("The group is in the project already")),
            (false, false) => return Err(ApiError::not_found("The group is not in the project")),
            (true, false) => {
                let _ = self.store.create(
                    PROJECT_GROUPS,
                    Some(key),
                    &org,
                    json!({"projectId": pid, "groupId": gid, "role": role,
                           "createdAt": now, "updatedAt": now}),
                );
            }
            (false, true) => {
                let _ = self.store.update(PROJECT_GROUPS, &key, |v| {
                    v["role"] = json!(role);
                    v["updatedAt"] = json!(now);
                });
            }
        }
        Ok(Out::Json(self.project_groups(pid)))
    }

    /// `DELETE /projects/{id}/subgroups/{groupId}`.
    pub fn remove_project_group(&mut self, caller: &Caller, pid: &str, gid: &str) -> Answer {
        self.need_project(caller, pid, ProjectNeed::Manage)?;
        if self
            .store
            .delete(PROJECT_GROUPS, &format!("{pid}/{gid}"))
            .is_none()
        {
            return Err(ApiError::not_found("The group is not in the project"));
        }
        Ok(Out::NoContent)
    }

    // ---- drivers ----

    /// `POST /drivers`: `metadata.system.projectId` names the project, `integrationId` an
    /// integration of that project's org; `payload` is served flat (`bucketName`, `region`,
    /// …) and an `authentication` block in it is dropped (credentials are never served).
    /// `creator` is the caller, whatever the body says.
    pub fn create_driver(&mut self, caller: &Caller, body: &Value) -> Answer {
        let name = required_str(body, "name")?;
        let kind = body
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| DRIVER_TYPES.contains(t))
            .ok_or_else(|| ApiError::bad_request("Unknown driver \"type\""))?
            .to_string();
        let pid = body
            .pointer("/metadata/system/projectId")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("\"metadata.system.projectId\" is required"))?
            .to_string();
        let org = self.need_project(caller, &pid, ProjectNeed::Write)?;
        let iid = required_str(body, "integrationId")?;
        let integration_type = self
            .store
            .get(INTEGRATIONS, &iid)
            .filter(|r| r.org == org)
            .map(|r| r.value["type"].clone())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "\"integrationId\" is not an integration of the project's organization",
                )
            })?;
        let mut payload = object_or_empty(body.get("payload"), "payload")?;
        payload.remove("authentication");
        let flag = |k: &str, default: bool| body.get(k).and_then(Value::as_bool).unwrap_or(default);
        let id = self.new_id();
        let mut v = json!({
            "id": id, "name": name, "type": kind, "integrationId": iid,
            "integrationType": integration_type,
            "metadata": {"system": {"projectId": pid}},
            "creator": caller.email, "createdAt": now_iso(),
            "allowExternalDelete": flag("allowExternalDelete", true),
            "allowExternalModification": flag("allowExternalModification", false),
            "isSyncable": true, "projectId": pid, "orgId": org,
            "url": format!("{}/drivers/{id}", self.base_url),
        });
        for (k, val) in payload {
            if v.get(&k).is_none() {
                v[k] = val;
            }
        }
        let _ = self.store.create(DRIVERS, Some(id), &org, v.clone());
        Ok(Out::Json(v))
    }

    fn driver_project(&self, id: &str) -> Result<String, ApiError> {
        self.store
            .get(DRIVERS, id)
            .and_then(|r| r.value["projectId"].as_str().map(str::to_string))
            .ok_or_else(|| ApiError::not_found(format!("Driver not found: {id}")))
    }

    /// `GET /drivers?projectId=&integrationId=` (an array).
    pub fn list_drivers(&self, caller: &Caller, query: &[(String, String)]) -> Answer {
        let project = query.iter().find(|(k, _)| k == "projectId").map(|(_, v)| v);
        let integration = query
            .iter()
            .find(|(k, _)| k == "integrationId")
            .map(|(_, v)| v);
        if let Some(p) = project {
            self.need_project(caller, p, ProjectNeed::Read)?;
        }
        let out: Vec<Value> = self
            .store
            .list(DRIVERS)
            .into_iter()
            .filter(|(_, r)| project.is_none_or(|p| r.value["projectId"] == p.as_str()))
            .filter(|(_, r)| integration.is_none_or(|i| r.value["integrationId"] == i.as_str()))
            .filter(|(_, r)| {
                r.value["projectId"]
                    .as_str()
                    .is_some_and(|p| self.project_role(caller, p).is_some())
            })
            .map(|(_, r)| r.value.clone())
            .collect();
        Ok(Out::Json(Value::Array(out)))
    }

    /// `GET /drivers/{id}`.
    pub fn get_driver(&self, caller: &Caller, id: &str) -> Answer {
        let pid = self.driver_project(id)?;
        self.need_project(caller, &pid, ProjectNeed::Read)?;
        Ok(Out::Json(
            self.store
                .get(DRIVERS, id)
                .map(|r| r.value.clone())
                .unwrap_or_default(),
        ))
    }

    /// `PATCH /drivers/{id}`: `name`, the `allowExternal*` flags and payload fields (`path`,
    /// `region`, `storageClass`, …); not its type, project or integration.
    pub fn update_driver(&mut self, caller: &Caller, id: &str, body: &Value) -> Answer {
        let pid = self.driver_project(id)?;
        self.need_project(caller, &pid, ProjectNeed::Write)?;
        let Some(fields) = body.as_object() else {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        };
        let name = optional_str(body, "name")?;
        const FIXED: &[&str] = &[
            "id",
            "type",
            "integrationId",
            "integrationType",
            "metadata",
            "creator",
            "createdAt",
            "projectId",
            "orgId",
            "url",
            "authentication",
            "name",
        ];
        let mut changes = Map::new();
        for (k, v) in fields {
            if !FIXED.contains(&k.as_str()) {
                changes.insert(k.clone(), v.clone());
            }
        }
        if let Some(p) = fields.get("payload").and_then(Value::as_object) {
            changes.remove("payload");
            for (k, v) in p {
                if !FIXED.contains(&k.as_str()) {
                    changes.insert(k.clone(), v.clone());
                }
            }
        }
        let updated = self
            .store
            .update(DRIVERS, id, |v| {
                if let Some(n) = name {
                    v["name"] = json!(n);
                }
                for (k, val) in changes {
                    v[k] = val;
                }
                v.clone()
            })
            .map_err(|_| ApiError::not_found("Driver not found"))?;
        Ok(Out::Json(updated))
    }

    /// `DELETE /drivers/{id}`.
    pub fn delete_driver(&mut self, caller: &Caller, id: &str) -> Answer {
        let pid = self.driver_project(id)?;
        self.need_project(caller, &pid, ProjectNeed::Write)?;
        self.store.delete(DRIVERS, id);
        Ok(Out::NoContent)
    }

    // ---- ontologies ----

    /// `POST /ontologies {"roots", "projectIds", "attributes", "title"?, "metadata"?}`.
    pub fn create_ontology(&mut self, caller: &Caller, body: &Value) -> Answer {
        self.new_ontology(caller, body, true)
    }

    /// Creates an ontology, counted as a write unless the gate makes it by itself.
    fn new_ontology(&mut self, caller: &Caller, body: &Value, counted: bool) -> Answer {
        let pids = id_list(body, "projectIds")?;
        let org = self.need_projects(caller, &pids, ProjectNeed::Write)?;
        let roots = body.get("roots").cloned().unwrap_or_else(|| json!([]));
        check_roots(&roots)?;
        let attributes = match body.get("attributes") {
            None | Some(Value::Null) => json!([]),
            Some(a @ Value::Array(_)) => a.clone(),
            Some(_) => return Err(ApiError::bad_request("\"attributes\" must be an array")),
        };
        let mut metadata = object_or_empty(body.get("metadata"), "metadata")?;
        metadata.insert("system".into(), json!({"projectIds": pids}));
        let id = self.new_id();
        let title = optional_str(body, "title")?.unwrap_or_else(|| id.clone());
        let now = now_iso();
        let v = json!({
            "id": id, "title": title, "roots": roots, "attributes": attributes,
            "metadata": metadata, "creator": caller.email,
            "url": format!("{}/ontologies/{id}", self.base_url),
            "createdAt": now, "updatedAt": now, "updatedBy": caller.email,
        });
        let _ = if counted {
            self.store.create(ONTOLOGIES, Some(id), &org, v.clone())
        } else {
            self.store
                .create_uncounted(ONTOLOGIES, Some(id), &org, v.clone())
        };
        Ok(Out::Json(v))
    }

    fn readable(&self, caller: &Caller, kind: &str, id: &str) -> Result<Value, ApiError> {
        let what = if kind == ONTOLOGIES {
            "Ontology"
        } else {
            "Recipe"
        };
        let v = self
            .store
            .get(kind, id)
            .map(|r| r.value.clone())
            .ok_or_else(|| ApiError::not_found(format!("{what} not found: {id}")))?;
        let pids = if kind == ONTOLOGIES {
            v["metadata"]["system"]["projectIds"].clone()
        } else {
            v["projectIds"].clone()
        };
        if !self.readable_by(caller, &pids) {
            return Err(ApiError::forbidden(format!(
                "You are not a member of the {} projects",
                what.to_lowercase()
            )));
        }
        Ok(v)
    }

    fn writable(&self, caller: &Caller, kind: &str, id: &str) -> Result<Value, ApiError> {
        let v = self.readable(caller, kind, id)?;
        let pids: Vec<String> = project_ids(&v, kind)
            .into_iter()
            .map(str::to_string)
            .collect();
        if !pids
            .iter()
            .any(|p| self.need_project(caller, p, ProjectNeed::Write).is_ok())
        {
            return Err(ApiError::forbidden("Your project role does not allow this"));
        }
        Ok(v)
    }

    fn paged_list(&self, caller: &Caller, kind: &str, query: &[(String, String)]) -> Answer {
        let (offset, size) = page_params(query)?;
        let projects = query_list(query, "projects");
        let ids = query_list(query, "ids");
        let items: Vec<Value> = self
            .store
            .list(kind)
            .into_iter()
            .filter(|(id, _)| ids.is_empty() || ids.iter().any(|x| x == id))
            .map(|(_, r)| r.value.clone())
            .filter(|v| {
                let mine = project_ids(v, kind);
                projects.is_empty() || mine.iter().any(|p| projects.iter().any(|q| q == p))
            })
            .filter(|v| {
                let pids = if kind == ONTOLOGIES {
                    v["metadata"]["system"]["projectIds"].clone()
                } else {
                    v["projectIds"].clone()
                };
                self.readable_by(caller, &pids)
            })
            .collect();
        Ok(Out::Json(paging::offset(&items, offset, size).to_json()))
    }

    /// `GET /ontologies?pageOffset=&pageSize=&projects=a,b&ids=…` (paged).
    pub fn list_ontologies(&self, caller: &Caller, query: &[(String, String)]) -> Answer {
        self.paged_list(caller, ONTOLOGIES, query)
    }

    /// `GET /ontologies/{id}`.
    pub fn get_ontology(&self, caller: &Caller, id: &str) -> Answer {
        self.readable(caller, ONTOLOGIES, id).map(Out::Json)
    }

    /// `PUT /ontologies/{id}[?system=true]` with the whole entity: `roots`, `title`,
    /// `attributes` and the non-system `metadata`; `metadata.system.projectIds` only with
    /// `system=true`.
    pub fn put_ontology(
        &mut self,
        caller: &Caller,
        id: &str,
        body: &Value,
        system: bool,
    ) -> Answer {
        self.writable(caller, ONTOLOGIES, id)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        }
        let roots = body.get("roots").cloned();
        if let Some(r) = &roots {
            check_roots(r)?;
        }
        let title = optional_str(body, "title")?;
        let attributes = match body.get("attributes") {
            None | Some(Value::Null) => None,
            Some(a @ Value::Array(_)) => Some(a.clone()),
            Some(_) => return Err(ApiError::bad_request("\"attributes\" must be an array")),
        };
        let mut metadata = object_or_empty(body.get("metadata"), "metadata")?;
        let system_pids = if system {
            match metadata.get("system").and_then(|s| s.get("projectIds")) {
                Some(_) => {
                    let pids = id_list(&metadata["system"], "projectIds")?;
                    self.need_projects(caller, &pids, ProjectNeed::Write)?;
                    Some(pids)
                }
                None => None,
            }
        } else {
            None
        };
        metadata.remove("system");
        let now = now_iso();
        let email = caller.email.clone();
        let updated = self
            .store
            .update(ONTOLOGIES, id, |v| {
                if let Some(r) = roots {
                    v["roots"] = r;
                }
                if let Some(t) = title {
                    v["title"] = json!(t);
                }
                if let Some(a) = attributes {
                    v["attributes"] = a;
                }
                let system = v["metadata"]["system"].clone();
                let mut m = metadata;
                m.insert("system".into(), system);
                if let Some(p) = system_pids {
                    m["system"]["projectIds"] = json!(p);
                }
                v["metadata"] = Value::Object(m);
                v["updatedAt"] = json!(now);
                v["updatedBy"] = json!(email);
                v.clone()
            })
            .map_err(|_| ApiError::not_found("Ontology not found"))?;
        Ok(Out::Json(updated))
    }

    /// `PATCH /ontologies/{id}/labels {"labelsNode": [...], "upsert"}` (dtlpy's `add_label`,
    /// `update_label`) and `PATCH /ontologies/{id}/addLabels {"labelsNode"}`: each node is a
    /// label value whose `tag` is its full dotted path (`Vehicle.Car` goes under `Vehicle`).
    /// Existing labels get the node's `color`, `attributes`, `displayLabel`, `displayData`
    /// (not with `addLabels`, which leaves them as they are); missing ones are added under
    /// their parent with `upsert` or `addLabels` (400 when the parent is missing), and are a
    /// 404 otherwise. Answers the whole ontology.
    pub fn patch_labels(
        &mut self,
        caller: &Caller,
        id: &str,
        body: &Value,
        add_only: bool,
    ) -> Answer {
        let current = self.writable(caller, ONTOLOGIES, id)?;
        let nodes = body
            .get("labelsNode")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request("\"labelsNode\" must be an array of labels"))?;
        let upsert = add_only || body.get("upsert").and_then(Value::as_bool) == Some(true);
        let mut roots = current["roots"].clone();
        for n in nodes {
            let tag = n
                .get("tag")
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty() && t.chars().count() <= MAX_NAME)
                .ok_or_else(|| ApiError::bad_request("Every label needs a \"tag\" string"))?;
            let mut value = Map::new();
            for k in ["tag", "color", "attributes", "displayLabel", "displayData"] {
                if let Some(v) = n.get(k).filter(|v| !v.is_null()) {
                    value.insert(k.to_string(), v.clone());
                }
            }
            if let Some(existing) = find_label(&mut roots, tag) {
                if !add_only {
                    for (k, v) in value {
                        existing["value"][k] = v;
                    }
                }
                continue;
            }
            if !upsert {
                return Err(ApiError::not_found(format!("Label not found: {tag}")));
            }
            let node = json!({"value": Value::Object(value), "children": []});
            match tag.rsplit_once('.') {
                None => push_child(&mut roots, node),
                Some((parent, _)) => match find_label(&mut roots, parent) {
                    Some(p) => push_child(&mut p["children"], node),
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "The parent of label {tag} does not exist"
                        )));
                    }
                },
            }
        }
        check_roots(&roots)?;
        let now = now_iso();
        let email = caller.email.clone();
        let updated = self
            .store
            .update(ONTOLOGIES, id, |v| {
                v["roots"] = roots;
                v["updatedAt"] = json!(now);
                v["updatedBy"] = json!(email);
                v.clone()
            })
            .map_err(|_| ApiError::not_found("Ontology not found"))?;
        Ok(Out::Json(updated))
    }

    /// `DELETE /ontologies/{id}`.
    pub fn delete_ontology(&mut self, caller: &Caller, id: &str) -> Answer {
        self.writable(caller, ONTOLOGIES, id)?;
        self.store.delete(ONTOLOGIES, id);
        Ok(Out::NoContent)
    }

    // ---- recipes ----

    fn check_ontologies(&self, caller: &Caller, ids: &[String]) -> Result<(), ApiError> {
        for o in ids {
            if !self.store.contains(ONTOLOGIES, o) {
                return Err(ApiError::bad_request(format!("Ontology not found: {o}")));
            }
            self.readable(caller, ONTOLOGIES, o)?;
        }
        Ok(())
    }

    /// `POST /recipes {"title", "projectIds", "ontologyIds", "uiSettings"?, …}`.
    pub fn create_recipe(&mut self, caller: &Caller, body: &Value) -> Answer {
        self.new_recipe(caller, body, true)
    }

    /// Creates a recipe, counted as a write unless the gate makes it by itself.
    fn new_recipe(&mut self, caller: &Caller, body: &Value, counted: bool) -> Answer {
        let title = required_str(body, "title")?;
        let pids = id_list(body, "projectIds")?;
        let org = self.need_projects(caller, &pids, ProjectNeed::Write)?;
        let ontologies = match body.get("ontologyIds") {
            None | Some(Value::Null) => Vec::new(),
            Some(_) => id_list(body, "ontologyIds")?,
        };
        self.check_ontologies(caller, &ontologies)?;
        let id = self.new_id();
        let now = now_iso();
        let mut metadata = object_or_empty(body.get("metadata"), "metadata")?;
        metadata.insert("system".into(), json!({"projectIds": pids}));
        let field = |k: &str, default: Value| body.get(k).cloned().unwrap_or(default);
        let v = json!({
            "id": id, "title": title, "projectIds": pids, "ontologyIds": ontologies,
            "uiSettings": field("uiSettings", json!({})),
            "customActions": field("customActions", json!([])),
            "description": field("description", Value::Null),
            "instructions": field("instructions", Value::Null),
            "examples": field("examples", json!([])),
            "metadata": metadata, "creator": caller.email,
            "url": format!("{}/recipes/{id}", self.base_url),
            "createdAt": now, "updatedAt": now, "updatedBy": caller.email,
        });
        let _ = if counted {
            self.store.create(RECIPES, Some(id), &org, v.clone())
        } else {
            self.store
                .create_uncounted(RECIPES, Some(id), &org, v.clone())
        };
        Ok(Out::Json(v))
    }

    /// `GET /recipes?projects=<id>&&pageOffset=0&pageSize=1000` (paged; dtlpy's `&&` is an
    /// empty pair, ignored).
    pub fn list_recipes(&self, caller: &Caller, query: &[(String, String)]) -> Answer {
        self.paged_list(caller, RECIPES, query)
    }

    /// `GET /recipes/{id}`.
    pub fn get_recipe(&self, caller: &Caller, id: &str) -> Answer {
        self.readable(caller, RECIPES, id).map(Out::Json)
    }

    /// `PATCH /recipes/{id}[?system=true]` with the whole entity: `title`, `ontologyIds`,
    /// `projectIds`, `uiSettings`, `customActions`, `description`, `instructions`,
    /// `examples` and the non-system `metadata` (system metadata only with `system=true`).
    pub fn update_recipe(
        &mut self,
        caller: &Caller,
        id: &str,
        body: &Value,
        system: bool,
    ) -> Answer {
        self.writable(caller, RECIPES, id)?;
        let Some(fields) = body.as_object() else {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        };
        let title = optional_str(body, "title")?;
        let ontologies = match fields.get("ontologyIds") {
            None | Some(Value::Null) => None,
            Some(_) => Some(id_list(body, "ontologyIds")?),
        };
        if let Some(o) = &ontologies {
            self.check_ontologies(caller, o)?;
        }
        let pids = match fields.get("projectIds") {
            None | Some(Value::Null) => None,
            Some(_) => {
                let p = id_list(body, "projectIds")?;
                self.need_projects(caller, &p, ProjectNeed::Write)?;
                Some(p)
            }
        };
        let mut metadata = match fields.get("metadata") {
            None | Some(Value::Null) => None,
            Some(_) => Some(object_or_empty(fields.get("metadata"), "metadata")?),
        };
        let system_meta = metadata
            .as_mut()
            .and_then(|m| m.remove("system"))
            .filter(|_| system);
        let now = now_iso();
        let email = caller.email.clone();
        let updated = self
            .store
            .update(RECIPES, id, |v| {
                if let Some(t) = title {
                    v["title"] = json!(t);
                }
                if let Some(o) = ontologies {
                    v["ontologyIds"] = json!(o);
                }
                if let Some(p) = &pids {
                    v["projectIds"] = json!(p);
                }
                for k in [
                    "uiSettings",
                    "customActions",
                    "description",
                    "instructions",
                    "examples",
                ] {
                    if let Some(val) = fields.get(k) {
                        v[k] = val.clone();
                    }
                }
                if let Some(m) = metadata {
                    let keep = v["metadata"]["system"].clone();
                    let mut m = m;
                    m.insert("system".into(), keep);
                    v["metadata"] = Value::Object(m);
                }
                if let Some(Value::Object(s)) = system_meta {
                    for (k, val) in s {
                        v["metadata"]["system"][k] = val;
                    }
                }
                if let Some(p) = pids {
                    v["metadata"]["system"]["projectIds"] = json!(p);
                }
                v["updatedAt"] = json!(now);
                v["updatedBy"] = json!(email);
                v.clone()
            })
            .map_err(|_| ApiError::not_found("Recipe not found"))?;
        Ok(Out::Json(updated))
    }

    /// `DELETE /recipes/{id}[?force=true]`.
    pub fn delete_recipe(&mut self, caller: &Caller, id: &str) -> Answer {
        self.writable(caller, RECIPES, id)?;
        self.store.delete(RECIPES, id);
        for d in self
            .store
            .list(DATASETS)
            .into_iter()
            .filter(|(_, r)| {
                r.value["metadata"]["system"]["recipes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == id))
            })
            .map(|(d, _)| d.to_string())
            .collect::<Vec<_>>()
        {
            let _ = self.store.update_uncounted(DATASETS, &d, |v| {
                if let Some(a) = v["metadata"]["system"]["recipes"].as_array_mut() {
                    a.retain(|x| x != id);
                }
            });
        }
        Ok(Out::NoContent)
    }

    /// `POST /recipes/{id}/clone {"shallow"}`: a copy titled `<title> (clone)`; not shallow,
    /// its ontologies are copied too.
    pub fn clone_recipe(&mut self, caller: &Caller, id: &str, body: &Value) -> Answer {
        let src = self.writable(caller, RECIPES, id)?;
        let shallow = body
            .get("shallow")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let org = self
            .store
            .get(RECIPES, id)
            .map(|r| r.org.clone())
            .unwrap_or_default();
        let mut ontologies: Vec<Value> = src["ontologyIds"].as_array().cloned().unwrap_or_default();
        if !shallow {
            let mut copies = Vec::new();
            for o in &ontologies {
                let Some(rec) = o.as_str().and_then(|o| self.store.get(ONTOLOGIES, o)) else {
                    continue;
                };
                let (mut v, oorg) = (rec.value.clone(), rec.org.clone());
                let nid = self.new_id();
                v["id"] = json!(nid);
                v["url"] = json!(format!("{}/ontologies/{nid}", self.base_url));
                v["creator"] = json!(caller.email);
                let _ = self.store.create(ONTOLOGIES, Some(nid.clone()), &oorg, v);
                copies.push(json!(nid));
            }
            ontologies = copies;
        }
        let nid = self.new_id();
        let now = now_iso();
        let mut v = src;
        v["id"] = json!(nid);
        v["title"] = json!(format!(
            "{} (clone)",
            v["title"].as_str().unwrap_or_default()
        ));
        v["ontologyIds"] = json!(ontologies);
        v["creator"] = json!(caller.email);
        v["url"] = json!(format!("{}/recipes/{nid}", self.base_url));
        v["createdAt"] = json!(now);
        v["updatedAt"] = json!(now);
        let _ = self.store.create(RECIPES, Some(nid), &org, v.clone());
        Ok(Out::Json(v))
    }

    // ---- datasets ----

    /// `POST /datasets {"name", "projects": [pid], "createDefaultRecipe", "driver"?, …}`:
    /// an empty dataset; with `createDefaultRecipe`, an empty ontology and a "Default Recipe"
    /// linked in `metadata.system.recipes`.
    pub fn create_dataset(&mut self, caller: &Caller, body: &Value) -> Answer {
        let name = required_str(body, "name")?;
        let pids = id_list(body, "projects")?;
        let [pid] = pids.as_slice() else {
            return Err(ApiError::bad_request(
                "\"projects\" must name exactly one project",
            ));
        };
        let pid = pid.clone();
        let org = self.need_project(caller, &pid, ProjectNeed::Write)?;
        let driver = match body.get("driver") {
            None | Some(Value::Null) => Value::Null,
            Some(d) => {
                let d = d.as_str().unwrap_or_default();
                if self
                    .store
                    .get(DRIVERS, d)
                    .is_none_or(|r| r.value["projectId"] != pid.as_str())
                {
                    return Err(ApiError::bad_request(
                        "\"driver\" is not a driver of the dataset's project",
                    ));
                }
                json!(d)
            }
        };
        let mut recipes = Vec::new();
        if body.get("createDefaultRecipe").and_then(Value::as_bool) == Some(true) {
            // The gate's own doing, part of the one dataset create: not counted.
            let ontology = self.new_ontology(
                caller,
                &json!({"roots": [], "projectIds": [pid], "attributes": []}),
                false,
            )?;
            let Out::Json(ontology) = ontology else {
                return Err(ApiError::new(500, "ontology"));
            };
            let recipe = self.new_recipe(
                caller,
                &json!({"title": "Default Recipe", "projectIds": [pid],
                        "ontologyIds": [ontology["id"]]}),
                false,
            )?;
            if let Out::Json(r) = recipe {
                recipes.push(r["id"].clone());
            }
        }
        let id = self.new_id();
        let now = now_iso();
        let v = json!({
            "id": id, "name": name, "projects": [pid], "driver": driver,
            "creator": caller.email, "createdAt": now, "updatedAt": now,
            "updatedBy": caller.email,
            "itemsCount": 0, "annotated": 0, "annotationsCount": 0, "readonly": false,
            "accessLevel": "private", "readableType": "dataset",
            "expirationOptions": body.get("expirationOptions").cloned().unwrap_or(Value::Null),
            "indexDriver": body.get("indexDriver").cloned().unwrap_or(Value::Null),
            "metadata": {"system": {"recipes": recipes}},
            "url": format!("{}/datasets/{id}", self.base_url),
            "items": format!("{}/datasets/{id}/items", self.base_url),
        });
        let _ = self.store.create(DATASETS, Some(id), &org, v.clone());
        Ok(Out::Json(v))
    }

    fn dataset(&self, caller: &Caller, id: &str, need: ProjectNeed) -> Result<Value, ApiError> {
        let v = self
            .store
            .get(DATASETS, id)
            .map(|r| r.value.clone())
            .ok_or_else(|| ApiError::not_found(format!("Dataset not found: {id}")))?;
        let pid = v["projects"][0].as_str().unwrap_or_default().to_string();
        self.need_project(caller, &pid, need)?;
        Ok(v)
    }

    /// `POST /datasets/query`: DQL body `{"filter": {"$and": [...]}, "page", "pageSize",
    /// "context": {"projects"}}` (paged). Equality, `$eq`, `$in` and `$ne` on top-level fields
    /// are understood; other operators match nothing.
    pub fn query_datasets(&self, caller: &Caller, body: &Value) -> Answer {
        if !body.is_object() {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        }
        let num = |k: &str, default: usize| -> Result<usize, ApiError> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| ApiError::bad_request(format!("\"{k}\" must be a number"))),
            }
        };
        let page = num("page", 0)?;
        let size = num("pageSize", MAX_PAGE_SIZE)?;
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(ApiError::bad_request(format!(
                "\"pageSize\" must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        let context: Vec<String> = body
            .pointer("/context/projects")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for p in &context {
            self.need_project(caller, p, ProjectNeed::Read)?;
        }
        let conditions: Vec<(String, Value)> = body
            .pointer("/filter/$and")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let matches = |v: &Value| {
            conditions.iter().all(|(field, cond)| {
                let have = &v[field.as_str()];
                match cond {
                    Value::Object(op) => op.iter().all(|(o, want)| match o.as_str() {
                        "$eq" => have == want,
                        "$ne" => have != want,
                        "$in" => want.as_array().is_some_and(|a| a.contains(have)),
                        _ => false,
                    }),
                    want => have == want,
                }
            })
        };
        let items: Vec<Value> = self
            .store
            .list(DATASETS)
            .into_iter()
            .map(|(_, r)| r.value.clone())
            .filter(|v| {
                let pid = v["projects"][0].as_str().unwrap_or_default();
                (context.is_empty() || context.iter().any(|c| c == pid))
                    && self.project_role(caller, pid).is_some()
            })
            .filter(|v| matches(v))
            .collect();
        Ok(Out::Json(paging::offset(&items, page, size).to_json()))
    }

    /// `GET /datasets/{id}`.
    pub fn get_dataset(&self, caller: &Caller, id: &str) -> Answer {
        self.dataset(caller, id, ProjectNeed::Read).map(Out::Json)
    }

    /// `PATCH /datasets/{id}[?system=true]`: `name`, the non-system `metadata`, and with
    /// `system=true` `metadata.system.recipes` (existing recipes).
    pub fn update_dataset(
        &mut self,
        caller: &Caller,
        id: &str,
        body: &Value,
        system: bool,
    ) -> Answer {
        self.dataset(caller, id, ProjectNeed::Write)?;
        if !body.is_object() {
            return Err(ApiError::bad_request("The body must be a JSON object"));
        }
        let name = optional_str(body, "name")?;
        let mut metadata = match body.get("metadata") {
            None | Some(Value::Null) => None,
            Some(_) => Some(object_or_empty(body.get("metadata"), "metadata")?),
        };
        let recipes = match metadata
            .as_mut()
            .and_then(|m| m.remove("system"))
            .filter(|_| system)
            .and_then(|s| s.get("recipes").cloned())
        {
            None => None,
            Some(r) => {
                let list = id_list(&json!({"recipes": r}), "recipes")?;
                for rid in &list {
                    if !self.store.contains(RECIPES, rid) {
                        return Err(ApiError::bad_request(format!("Recipe not found: {rid}")));
                    }
                }
                Some(list)
            }
        };
        let now = now_iso();
        let updated = self
            .store
            .update(DATASETS, id, |v| {
                if let Some(n) = name {
                    v["name"] = json!(n);
                }
                if let Some(m) = metadata {
                    let keep = v["metadata"]["system"].clone();
                    let mut m = m;
                    m.insert("system".into(), keep);
                    v["metadata"] = Value::Object(m);
                }
                if let Some(r) = recipes {
                    v["metadata"]["system"]["recipes"] = json!(r);
                }
                v["updatedAt"] = json!(now);
                v.clone()
            })
            .map_err(|_| ApiError::not_found("Dataset not found"))?;
        Ok(Out::Json(updated))
    }

    /// `DELETE /datasets/{id}`.
    pub fn delete_dataset(&mut self, caller: &Caller, id: &str) -> Answer {
        self.dataset(caller, id, ProjectNeed::Write)?;
        self.store.delete(DATASETS, id);
        Ok(Out::NoContent)
    }

    /// Whether org `org` has an active member `email` (used by the seed's sanity checks).
    pub fn is_active_member(&self, org: &str, email: &str) -> bool {
        self.store
            .get(MEMBERS, &format!("{org}/{}", email.to_ascii_lowercase()))
            .is_some_and(|r| r.value["status"] == "active")
    }
}

/// The label whose `value.tag` is `tag`, anywhere in a label tree.
fn find_label<'a>(nodes: &'a mut Value, tag: &str) -> Option<&'a mut Value> {
    for n in nodes.as_array_mut()?.iter_mut() {
        if n["value"]["tag"] == tag {
            return Some(n);
        }
        // `get_mut`, not indexing: a label without children keeps its shape.
        if let Some(found) = n.get_mut("children").and_then(|c| find_label(c, tag)) {
            return Some(found);
        }
    }
    None
}

fn push_child(list: &mut Value, node: Value) {
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        a.push(node);
    }
}

/// The project ids of an ontology (`metadata.system.projectIds`) or recipe (`projectIds`).
pub fn project_ids<'a>(v: &'a Value, kind: &str) -> Vec<&'a str> {
    let list = if kind == ONTOLOGIES {
        &v["metadata"]["system"]["projectIds"]
    } else {
        &v["projectIds"]
    };
    list.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn first_project<'a>(v: &'a Value, kind: &str) -> Option<&'a str> {
    project_ids(v, kind).first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_trees_are_checked() {
        assert!(check_roots(&json!([])).is_ok());
        assert!(
            check_roots(&json!([{"value": {"tag": "a"}, "children": [{"value": {"tag": "b"}}]}]))
                .is_ok()
        );
        for bad in [
            json!({}),
            json!([{"value": {}}]),
            json!([{"value": {"tag": ""}}]),
            json!([{"value": {"tag": "a"}, "children": {}}]),
            json!([1]),
        ] {
            assert_eq!(check_roots(&bad).unwrap_err().status, 400, "{bad}");
        }
        let mut deep = json!([]);
        for _ in 0..40 {
            deep = json!([{"value": {"tag": "x"}, "children": deep}]);
        }
        assert_eq!(check_roots(&deep).unwrap_err().status, 400);
    }

    #[test]
    fn page_parameters() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(page_params(&q(&[])).unwrap(), (0, 1000));
        assert_eq!(
            page_params(&q(&[("pageOffset", "2"), ("pageSize", "5")])).unwrap(),
            (2, 5)
        );
        assert!(page_params(&q(&[("pageSize", "0")])).is_err());
        assert!(page_params(&q(&[("pageSize", "1001")])).is_err());
        assert!(page_params(&q(&[("pageOffset", "x")])).is_err());
        assert_eq!(
            query_list(
                &q(&[("projects", "a,b"), ("", ""), ("projects", "c")]),
                "projects"
            ),
            vec!["a", "b", "c"]
        );
    }
}
