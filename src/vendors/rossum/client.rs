//! The typed Rossum client: login and per-organization tokens, organizations, roles, users,
//! memberships, and the setup objects a deep copy touches.

use std::collections::BTreeMap;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use super::models::*;
use crate::vendors::http::{HttpConfig, HttpError, Repeat, Request, TokenCache, Transport};
use crate::vendors::{Credentials, Endpoints, VendorError};

/// Rossum's public API (accounts created before Nov 2022; newer ones use `<x>.rossum.app`).
pub const DEFAULT_ENDPOINT: &str = "https://elis.rossum.ai/api/v1";
/// Rossum's public API hosts: `elis.rossum.ai` (accounts before Nov 2022), the deprecated
/// `api.elis.rossum.ai`, and the per-customer `<name>.rossum.app`.
pub const PUBLIC_ENDPOINTS: &[&str] = &[
    "https://elis.rossum.ai",
    "https://api.elis.rossum.ai",
    "https://*.rossum.app",
];
/// Rossum's documented overall limit.
pub const DOCUMENTED_RATE_LIMIT: u32 = 10;

/// Which token a request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The login token (the user's primary organization; group-wide for group admins).
    Primary,
    /// A `membership_token` minted for one organization.
    Org(OrganizationId),
}

/// A client of one Rossum endpoint with one set of credentials.
pub struct RossumClient {
    base: Url,
    transport: Transport,
    credentials: Credentials,
    tokens: TokenCache<Scope>,
    /// The organization group of the credentials, looked up once.
    pub(crate) group: tokio::sync::OnceCell<OrganizationGroupId>,
    /// First user (creator) URL per organization, looked up once.
    pub(crate) creators:
        tokio::sync::Mutex<std::collections::HashMap<OrganizationId, Option<String>>>,
}

impl std::fmt::Debug for RossumClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RossumClient")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl RossumClient {
    /// A client for `endpoint` (default: Rossum's public API; must end in `/api/v1` or `/v1`).
    /// Secret keys: `username` + `password` (plus `createKey` to create orgs), or `token`.
    pub fn new(
        endpoint: Option<&str>,
        credentials: Credentials,
        config: HttpConfig,
        endpoints: &Endpoints,
    ) -> Result<Self, VendorError> {
        let raw = endpoint.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/');
        let base = Url::parse(raw).map_err(|_| HttpError::Url(raw.to_string()))?;
        if credentials.get("token").is_none() {
            credentials.require("username")?;
            credentials.require("password")?;
        }
        let transport = Transport::new("rossum", &base, config, endpoints)?;
        Ok(Self {
            base,
            transport,
            credentials,
            tokens: TokenCache::default(),
            group: tokio::sync::OnceCell::new(),
            creators: tokio::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The underlying transport (request counts).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The Secret's `username` (an e-mail at Rossum), used to derive default addresses.
    pub(crate) fn credentials_username(&self) -> Option<String> {
        self.credentials
            .get("username")
            .map(|s| s.expose_secret().to_string())
    }

    /// The credentials' Secret name.
    pub fn secret_name(&self) -> &str {
        &self.credentials.secret
    }

    /// `<base>/<path>`.
    pub fn url(&self, path: &str) -> Url {
        let mut s = self.base.as_str().trim_end_matches('/').to_string();
        s.push('/');
        s.push_str(path.trim_start_matches('/'));
        Url::parse(&s).unwrap_or_else(|_| self.base.clone())
    }

    /// Absolute URL of object `id` of `resource` (`queues`, …).
    pub fn resource_url(&self, resource: &str, id: impl std::fmt::Display) -> String {
        format!(
            "{}/{resource}/{id}",
            self.base.as_str().trim_end_matches('/')
        )
    }

    async fn login(&self) -> Result<SecretString, VendorError> {
        if let Some(token) = self.credentials.get("token") {
            return Ok(token.clone());
        }
        let username = self.credentials.require("username")?.expose_secret();
        let password = self.credentials.require("password")?.expose_secret();
        let req = Request::new(Method::POST, self.url("auth/login"))
            .json(json!({ "username": username, "password": password }))
            .repeat(Repeat::Safe);
        match self.transport.send(&req).await {
            Ok(resp) => {
                let login: LoginResponse =
                    serde_json::from_value(resp.json()?).map_err(|e| HttpError::Decode {
                        path: "/auth/login".into(),
                        cause: e.to_string(),
                    })?;
                Ok(SecretString::from(login.key))
            }
            Err(HttpError::Status {
                status: 400 | 401 | 403,
                detail,
                ..
            }) => Err(VendorError::InvalidCredentials {
                secret: self.credentials.secret.clone(),
                detail,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn mint_org_token(&self, org: OrganizationId) -> Result<SecretString, VendorError> {
        let body = json!({ "organization": self.resource_url("organizations", org) });
        let req = Request::new(Method::POST, self.url("auth/membership_token"))
            .json(body)
            .repeat(Repeat::Safe);
        let resp = self.send_with(Scope::Primary, req).await?;
        let minted: MembershipTokenResponse =
            serde_json::from_value(resp.json()?).map_err(|e| HttpError::Decode {
                path: "/auth/membership_token".into(),
                cause: e.to_string(),
            })?;
        Ok(SecretString::from(minted.key))
    }

    async fn token(&self, scope: Scope) -> Result<SecretString, VendorError> {
        match scope {
            Scope::Primary => self.tokens.get(&scope, || self.login()).await,
            Scope::Org(org) => {
                // Boxed: minting goes through `send_with(Primary)`, which calls `token` again.
                let mint = Box::pin(self.mint_org_token(org));
                self.tokens.get(&scope, || mint).await
            }
        }
    }

    /// Runs `call` with the `Authorization` value of `scope`'s token; after a 401 it logs in
    /// again and calls once more.
    async fn authed<T, F, Fut>(&self, scope: Scope, call: F) -> Result<T, VendorError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let bearer = |t: &SecretString| SecretString::from(format!("Bearer {}", t.expose_secret()));
        let token = Box::pin(self.token(scope)).await?;
        match call(bearer(&token)).await {
            Err(HttpError::Status { status: 401, .. }) => {
                self.tokens.invalidate(&scope, &token).await;
                let fresh = Box::pin(self.token(scope)).await?;
                call(bearer(&fresh)).await.map_err(|e| self.classify(e))
            }
            other => other.map_err(|e| self.classify(e)),
        }
    }

    /// Maps the statuses that mean something for credentials or input to their errors.
    fn classify(&self, e: HttpError) -> VendorError {
        match e {
            HttpError::Status {
                status: 401,
                detail,
                ..
            } => VendorError::InvalidCredentials {
                secret: self.credentials.secret.clone(),
                detail,
            },
            HttpError::Status {
                status: 403,
                method,
                path,
                detail,
            } => VendorError::Forbidden(format!(
                "{method} {path}: {detail} (credentials from Secret {})",
                self.credentials.secret
            )),
            HttpError::Status {
                status: 400,
                method,
                path,
                detail,
            } => VendorError::Rejected(format!("{method} {path}: {detail}")),
            other => VendorError::Http(other),
        }
    }

    /// Sends `req` with the token of `scope`.
    async fn send_with(
        &self,
        scope: Scope,
        req: Request,
    ) -> Result<crate::vendors::http::Response, VendorError> {
        self.authed(scope, |auth| {
            let mut req = req.clone();
            req.authorization = Some(auth);
            async move { self.transport.send(&req).await }
        })
        .await
    }

    /// Checks the credentials: a login proves a password; a bare token is tried on `auth/user`.
    pub async fn verify(&self) -> Result<(), VendorError> {
        if self.credentials.get("token").is_none() {
            return self.token(Scope::Primary).await.map(|_| ());
        }
        let req = Request::new(Method::GET, self.url("auth/user"));
        self.send_with(Scope::Primary, req).await.map(|_| ())
    }

    /// What the credentials reach: the user (`auth/user`, always a request, so a revoked token
    /// shows) and the organization group, as ids and names.
    pub async fn account(&self) -> Result<crate::vendors::AccountInfo, VendorError> {
        let req = Request::new(Method::GET, self.url("auth/user"));
        let user: User = decode(
            "auth/user",
            self.send_with(Scope::Primary, req).await?.json()?,
        )?;
        let mut details = BTreeMap::new();
        details.insert("user".to_string(), user.id.to_string());
        let org = id_from_url(&user.organization);
        if let Some(org) = org {
            details.insert("organization".to_string(), org.to_string());
        }
        let group = self.organization_groups().await?.into_iter().next();
        let group_id = group.as_ref().and_then(|g| g.get("id")).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let group_name = group
            .as_ref()
            .and_then(|g| g.get("name"))
            .and_then(Value::as_str)
            .map(|n| n.chars().take(100).collect::<String>());
        if let Some(id) = &group_id {
            details.insert("organizationGroup".to_string(), id.clone());
        }
        if let Some(name) = &group_name {
            details.insert("organizationGroupName".to_string(), name.clone());
        }
        let summary = match (group_id, group_name) {
            (Some(id), Some(name)) => format!("org group {id} ({name}), user {}", user.id),
            (Some(id), None) => format!("org group {id}, user {}", user.id),
            _ => format!(
                "organization {}, user {}",
                org.map(|o| o.to_string()).unwrap_or_else(|| "?".into()),
                user.id
            ),
        };
        Ok(crate::vendors::AccountInfo { summary, details })
    }

    /// Every page of a list endpoint.
    pub async fn list_raw(
        &self,
        scope: Scope,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, VendorError> {
        let mut first = self.url(path);
        {
            let mut q = first.query_pairs_mut();
            q.append_pair("page_size", "100");
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        self.authed(scope, |auth| {
            self.transport
                .get_all_pages(first.clone(), Some(auth), split_page)
        })
        .await
    }

    async fn list_typed<T: DeserializeOwned>(
        &self,
        scope: Scope,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, VendorError> {
        self.list_raw(scope, path, query)
            .await?
            .into_iter()
            .map(|v| decode(path, v))
            .collect()
    }

    /// GETs one object; `None` on 404.
    pub async fn get_raw(&self, scope: Scope, path: &str) -> Result<Option<Value>, VendorError> {
        match self
            .send_with(scope, Request::new(Method::GET, self.url(path)))
            .await
        {
            Ok(resp) => Ok(Some(resp.json()?)),
            Err(VendorError::Http(HttpError::Status { status: 404, .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POSTs a new object. Not repeated after an unknown outcome.
    pub async fn create_raw(
        &self,
        scope: Scope,
        path: &str,
        body: Value,
    ) -> Result<Value, VendorError> {
        let req = Request::new(Method::POST, self.url(path)).json(body);
        Ok(self.send_with(scope, req).await?.json()?)
    }

    /// PATCHes an object.
    pub async fn patch_raw(
        &self,
        scope: Scope,
        path: &str,
        patch: Value,
    ) -> Result<Value, VendorError> {
        let req = Request::new(Method::PATCH, self.url(path)).json(patch);
        Ok(self.send_with(scope, req).await?.json()?)
    }

    /// DELETEs an object; a 404 counts as deleted.
    pub async fn delete_raw(&self, scope: Scope, path: &str) -> Result<(), VendorError> {
        match self
            .send_with(scope, Request::new(Method::DELETE, self.url(path)))
            .await
        {
            Ok(_) | Err(VendorError::Http(HttpError::Status { status: 404, .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ---- organizations -------------------------------------------------------------------

    /// Organizations visible to the credentials (every org of the group for a group admin).
    pub async fn organizations(
        &self,
        name: Option<&str>,
    ) -> Result<Vec<Organization>, VendorError> {
        let mut query = vec![("include_membership_organizations", "true")];
        if let Some(n) = name {
            query.push(("name", n));
        }
        self.list_typed(Scope::Primary, "organizations", &query)
            .await
    }

    /// One organization, `None` when it does not exist or is not visible.
    pub async fn organization(
        &self,
        id: OrganizationId,
    ) -> Result<Option<Organization>, VendorError> {
        match self
            .get_raw(Scope::Primary, &format!("organizations/{id}"))
            .await?
        {
            Some(v) => Ok(Some(decode("organizations", v)?)),
            None => Ok(None),
        }
    }

    /// URL of the first user of `id` (its `creator`), looked up once even when many hooks of
    /// one copy ask at the same time.
    pub async fn creator(&self, id: OrganizationId) -> Result<Option<String>, VendorError> {
        let mut cache = self.creators.lock().await;
        if let Some(c) = cache.get(&id) {
            return Ok(c.clone());
        }
        let creator = self.organization(id).await?.and_then(|o| o.creator);
        cache.insert(id, creator.clone());
        Ok(creator)
    }

    /// `POST /organizations/create` with the Secret's `createKey`. Not idempotent.
    pub async fn create_organization(
        &self,
        template_name: &str,
        name: &str,
        user_fullname: &str,
        user_email: &str,
    ) -> Result<Organization, VendorError> {
        let create_key = self.credentials.require("createKey")?;
        let body = CreateOrganization {
            template_name,
            organization_name: name,
            user_fullname,
            user_email,
            create_key: create_key.expose_secret(),
        };
        let body = serde_json::to_value(&body).map_err(|e| HttpError::Decode {
            path: "/organizations/create".into(),
            cause: e.to_string(),
        })?;
        let req = Request::new(Method::POST, self.url("organizations/create")).json(body);
        match self.transport.send(&req).await {
            Ok(resp) => {
                let created: CreatedOrganization = decode("organizations/create", resp.json()?)?;
                Ok(created.organization)
            }
            Err(HttpError::Status {
                status: 401 | 403,
                detail,
                ..
            }) => Err(VendorError::InvalidCredentials {
                secret: self.credentials.secret.clone(),
                detail: format!("createKey refused: {detail}"),
            }),
            Err(HttpError::Status {
                status: 400,
                detail,
                ..
            }) => Err(VendorError::Rejected(format!(
                "organizations/create: {detail}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// PATCHes an organization (through a token of that organization).
    pub async fn patch_organization(
        &self,
        id: OrganizationId,
        patch: Value,
    ) -> Result<Organization, VendorError> {
        let v = self
            .patch_raw(Scope::Org(id), &format!("organizations/{id}"), patch)
            .await?;
        decode("organizations", v)
    }

    // ---- roles, users, memberships -------------------------------------------------------

    /// The roles of an organization (their ids differ per organization).
    pub async fn groups(&self, org: OrganizationId) -> Result<Vec<Group>, VendorError> {
        self.list_typed(Scope::Org(org), "groups", &[]).await
    }

    /// The role named `name` in `org` (`admin`, `annotator`, …), if the org has it.
    pub async fn role(
        &self,
        org: OrganizationId,
        name: &str,
    ) -> Result<Option<Group>, VendorError> {
        let roles: Vec<Group> = self
            .list_typed(Scope::Org(org), "groups", &[("name", name)])
            .await?;
        Ok(roles.into_iter().find(|g| g.name == name))
    }

    /// Users of an organization, filtered by exact field values (`username`, `email`, …).
    pub async fn users(
        &self,
        org: OrganizationId,
        filters: &[(&str, &str)],
    ) -> Result<Vec<User>, VendorError> {
        self.list_typed(Scope::Org(org), "users", filters).await
    }

    /// Creates a user in `org` with role URLs. Not idempotent (`username` is global).
    pub async fn create_user(&self, org: OrganizationId, body: Value) -> Result<User, VendorError> {
        decode(
            "users",
            self.create_raw(Scope::Org(org), "users", body).await?,
        )
    }

    /// The organization groups visible to the credentials.
    pub async fn organization_groups(&self) -> Result<Vec<Value>, VendorError> {
        self.list_raw(Scope::Primary, "organization_groups", &[])
            .await
    }

    /// Memberships of an organization group, filtered (`user`, `organization` ids).
    pub async fn memberships(
        &self,
        group: OrganizationGroupId,
        filters: &[(&str, &str)],
    ) -> Result<Vec<Membership>, VendorError> {
        self.list_typed(
            Scope::Primary,
            &format!("organization_groups/{group}/memberships"),
            filters,
        )
        .await
    }

    /// Creates a membership (group admins only). Not idempotent.
    pub async fn create_membership(
        &self,
        group: OrganizationGroupId,
        body: Value,
    ) -> Result<Membership, VendorError> {
        let v = self
            .create_raw(
                Scope::Primary,
                &format!("organization_groups/{group}/memberships"),
                body,
            )
            .await?;
        decode("memberships", v)
    }

    /// Deletes a membership; a missing one counts as deleted.
    pub async fn delete_membership(
        &self,
        group: OrganizationGroupId,
        id: MembershipId,
    ) -> Result<(), VendorError> {
        self.delete_raw(
            Scope::Primary,
            &format!("organization_groups/{group}/memberships/{id}"),
        )
        .await
    }

    // ---- setup objects (typed views) -----------------------------------------------------

    /// Workspaces of `org`.
    pub async fn workspaces(&self, org: OrganizationId) -> Result<Vec<Workspace>, VendorError> {
        self.list_typed(Scope::Org(org), "workspaces", &[]).await
    }
    /// Schemas of `org`.
    pub async fn schemas(&self, org: OrganizationId) -> Result<Vec<Schema>, VendorError> {
        self.list_typed(Scope::Org(org), "schemas", &[]).await
    }
    /// Queues of `org`.
    pub async fn queues(&self, org: OrganizationId) -> Result<Vec<Queue>, VendorError> {
        self.list_typed(Scope::Org(org), "queues", &[]).await
    }
    /// Inboxes of `org`.
    pub async fn inboxes(&self, org: OrganizationId) -> Result<Vec<Inbox>, VendorError> {
        self.list_typed(Scope::Org(org), "inboxes", &[]).await
    }
    /// Hooks of `org`.
    pub async fn hooks(&self, org: OrganizationId) -> Result<Vec<Hook>, VendorError> {
        self.list_typed(Scope::Org(org), "hooks", &[]).await
    }
    /// Connectors of `org`.
    pub async fn connectors(&self, org: OrganizationId) -> Result<Vec<Connector>, VendorError> {
        self.list_typed(Scope::Org(org), "connectors", &[]).await
    }
    /// Email templates of `org`.
    pub async fn email_templates(
        &self,
        org: OrganizationId,
    ) -> Result<Vec<EmailTemplate>, VendorError> {
        self.list_typed(Scope::Org(org), "email_templates", &[])
            .await
    }
    /// Labels of `org`.
    pub async fn labels(&self, org: OrganizationId) -> Result<Vec<Label>, VendorError> {
        self.list_typed(Scope::Org(org), "labels", &[]).await
    }
    /// Rules of `org`.
    pub async fn rules(&self, org: OrganizationId) -> Result<Vec<Rule>, VendorError> {
        self.list_typed(Scope::Org(org), "rules", &[]).await
    }
}

/// Splits a Rossum list page into its results and `pagination.next`.
pub fn split_page(page: Value) -> Result<(Vec<Value>, Option<String>), String> {
    let Value::Object(mut map) = page else {
        return Err("a list response is not an object".into());
    };
    let next = map
        .get("pagination")
        .and_then(|p| p.get("next"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match map.remove("results") {
        Some(Value::Array(items)) => Ok((items, next)),
        _ => Err("a list response has no `results` array".into()),
    }
}

fn decode<T: DeserializeOwned>(what: &str, v: Value) -> Result<T, VendorError> {
    serde_json::from_value(v).map_err(|e| {
        VendorError::Http(HttpError::Decode {
            path: format!("/{what}"),
            cause: e.to_string(),
        })
    })
}

/// The numeric id at the end of a Rossum URL (`…/queues/7` → 7).
pub fn id_from_url(url: &str) -> Option<u64> {
    url.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

/// The `metadata.orgops` marker of an organization.
pub fn owner_marker(key: &str, uid: Option<&str>) -> Value {
    let mut m = BTreeMap::new();
    m.insert("owner", Value::String(key.to_string()));
    if let Some(uid) = uid {
        m.insert("uid", Value::String(uid.to_string()));
    }
    json!(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_last_url_segment() {
        assert_eq!(id_from_url("https://x/api/v1/queues/77"), Some(77));
        assert_eq!(id_from_url("https://x/api/v1/queues/77/"), Some(77));
        assert_eq!(id_from_url("https://x/api/v1/queues"), None);
    }

    #[test]
    fn split_page_follows_next() {
        let page =
            json!({"pagination": {"next": "http://x/p2", "previous": null}, "results": [1, 2]});
        let (items, next) = split_page(page).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(next.as_deref(), Some("http://x/p2"));
        assert!(split_page(json!({"pagination": {}})).is_err());
    }
}
