//! The typed OpenLattice client: organizations, their title, description and e-mail domains,
//! roles and their grants, members and their roles — the `/datastore/organizations` routes of
//! the server's `OrganizationsController`, sent the way the JS SDK (npm `lattice` 0.98) sends
//! them.
//!
//! Things the server does that shape this client (design doc `openlattice.md`):
//! - An unknown organization is answered with **500** `Organization [id] does not exist.`
//!   (a `checkState`), not 404: such answers come back at once (not retried) and mean "absent".
//! - A missing permission is **401** with error type `forbidden`; a bad or expired JWT is 401
//!   with another type (or none): the first is [`VendorError::Forbidden`], the second
//!   [`VendorError::InvalidCredentials`] naming the Secret.
//! - Creating an organization is deduplicated by its *name* (`principal.id`): a second create
//!   answers 400 instead of the existing id, so a 400 is resolved by looking the name up in
//!   `GET /metadata`. The caller picks the id ([`organization_id`]), so a create whose answer
//!   was lost is found again by id.
//! - Roles are deduplicated by principal name (`<orgId>|<title>`) and the server answers a
//!   create with the id it was sent: with a deterministic id ([`role_id`]) a role create is
//!   safe to repeat.
//! - Titles and descriptions are `text/plain` bodies; void calls answer 200 with no body.
//!
//! People are found through `/datastore/principals` on the same origin (the server's
//! `PrincipalDirectoryController`; any valid JWT, admin or not): `POST /users/search` with
//! `{"email": ..}` passes the value into an Auth0 Lucene query (`email:<value>`), so the client
//! sends only plain addresses ([`search_email`]) and keeps only exact matches; `GET
//! /users/{userId}` answers an unknown user with **500** `NoSuchElementException: Key … is
//! missing in the map.`, read as "absent".

use std::collections::BTreeMap;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;
use uuid::Uuid;

use super::models::*;
use crate::vendors::http::{
    ErrorFormat, HttpConfig, HttpError, Repeat, Request, Response, Transport, jwt_expiry,
};
use crate::vendors::{Credentials, Endpoints, VendorError};

/// OpenLattice's production API.
pub const DEFAULT_ENDPOINT: &str = "https://api.openlattice.com";
/// Where the organization routes live under the API's base URL.
pub const ORGANIZATIONS_PATH: &str = "/datastore/organizations";
/// Where the principals routes (users: look-up, search) live under the API's base URL.
pub const PRINCIPALS_PATH: &str = "/datastore/principals";
/// The longest e-mail address [`search_email`] passes (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// The Secret key holding the Auth0 JWT (with or without a `Bearer ` prefix).
pub const TOKEN_KEY: &str = "token";
/// The namespace of the ids orgops derives for organizations: UUIDv5 of the DNS name
/// `openlattice.orgops.io`.
pub const ORGANIZATION_ID_NAMESPACE: Uuid = Uuid::from_u128(0xa0c69637_eaab_55e5_92a0_57bc1b8e03e3);

/// The id orgops gives the organization of `owner` (e.g. the Organization resource's uid):
/// the same on every attempt, so a create whose answer was lost is found again by id.
pub fn organization_id(owner: &str) -> Uuid {
    Uuid::new_v5(&ORGANIZATION_ID_NAMESPACE, owner.as_bytes())
}

/// The id orgops gives role `title` of `organization`: the same on every attempt (the server
/// answers a create with the id it was sent, even when the role already existed).
pub fn role_id(organization: Uuid, title: &str) -> Uuid {
    Uuid::new_v5(&organization, title.as_bytes())
}

/// What [`OpenLatticeApi::create_org`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The organization was created with this id.
    Created(Uuid),
    /// An organization with the requested name already existed, with this id. When the id is
    /// the one asked for, it is most likely an earlier attempt whose answer was lost; otherwise
    /// someone else's organization holds the name.
    Exists(Uuid),
}

impl CreateOutcome {
    /// The organization's id.
    pub fn id(self) -> Uuid {
        match self {
            CreateOutcome::Created(id) | CreateOutcome::Exists(id) => id,
        }
    }
}

/// An error answer meaning "no such organization" (the server's `ensureOrganizationExists`).
fn unknown_org(status: u16, detail: &str) -> bool {
    status == 500 && detail.contains("does not exist")
}

/// An error answer meaning "no such user": the server reads its user map with Kotlin's
/// `getValue`, whose `NoSuchElementException` becomes a 500.
fn unknown_user(status: u16, detail: &str) -> bool {
    status == 500 && detail.contains("NoSuchElementException")
}

/// An error answer to a create meaning "this id is reserved under another name".
fn id_taken(status: u16, detail: &str) -> bool {
    status == 500 && detail.contains("Unable to create principal")
}

/// A client of one OpenLattice endpoint with one JWT.
pub struct OpenLatticeApi {
    /// `<endpoint>/datastore/organizations`, no trailing slash.
    base: Url,
    /// `<endpoint>/datastore/principals`, no trailing slash (same origin as `base`).
    principals: Url,
    transport: Transport,
    credentials: Credentials,
    /// `Bearer <jwt>`.
    bearer: SecretString,
}

impl std::fmt::Debug for OpenLatticeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenLatticeApi")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl OpenLatticeApi {
    /// A client for `endpoint` (default [`DEFAULT_ENDPOINT`]; the API's base URL, with or
    /// without `/datastore/organizations`), authenticating with the Auth0 JWT in the Secret's
    /// key `token`.
    pub fn new(
        endpoint: Option<&str>,
        credentials: Credentials,
        config: HttpConfig,
        endpoints: &Endpoints,
    ) -> Result<Self, VendorError> {
        let raw = endpoint.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/');
        let raw = raw.strip_suffix(ORGANIZATIONS_PATH).unwrap_or(raw);
        let base = Url::parse(&format!("{raw}{ORGANIZATIONS_PATH}"))
            .map_err(|_| HttpError::Url(raw.to_string()))?;
        let principals = Url::parse(&format!("{raw}{PRINCIPALS_PATH}"))
            .map_err(|_| HttpError::Url(raw.to_string()))?;
        let token = credentials.require(TOKEN_KEY)?.expose_secret();
        let token = token.trim();
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        let bearer = format!("Bearer {token}");
        // Refused here rather than as a transport error on every request.
        if token.is_empty() || reqwest::header::HeaderValue::from_str(&bearer).is_err() {
            return Err(VendorError::InvalidCredentials {
                secret: credentials.secret.clone(),
                detail: format!("key {TOKEN_KEY:?} is not a usable bearer token"),
            });
        }
        let transport = Transport::new("openlattice", &base, config, endpoints)?
            .with_error_format(ErrorFormat::OpenLattice);
        Ok(Self {
            base,
            principals,
            transport,
            credentials,
            bearer: SecretString::from(bearer),
        })
    }

    /// The underlying transport (request counts).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The credentials' Secret name.
    pub fn secret_name(&self) -> &str {
        &self.credentials.secret
    }

    /// Who the JWT speaks for (its `sub`, the caller's principal id), if it says.
    pub fn caller(&self) -> Option<String> {
        crate::vendors::http::jwt_subject(&self.bearer)
    }

    /// `<base><suffix>`; `suffix` is empty or starts with `/`, built from UUIDs, fixed words and
    /// [`user_segment`]s only.
    fn url(&self, suffix: &str) -> Result<Url, VendorError> {
        let s = format!("{}{suffix}", self.base.as_str().trim_end_matches('/'));
        Url::parse(&s).map_err(|_| VendorError::Http(HttpError::Url(s)))
    }

    /// A request with the JWT.
    fn request(&self, method: Method, suffix: &str) -> Result<Request, VendorError> {
        Ok(Request::new(method, self.url(suffix)?).authorization(self.bearer.clone()))
    }

    /// A request with the JWT to `<principals><suffix>` (same rules for `suffix` as
    /// [`Self::url`]).
    fn principals_request(&self, method: Method, suffix: &str) -> Result<Request, VendorError> {
        let s = format!("{}{suffix}", self.principals.as_str().trim_end_matches('/'));
        let url = Url::parse(&s).map_err(|_| VendorError::Http(HttpError::Url(s)))?;
        Ok(Request::new(method, url).authorization(self.bearer.clone()))
    }

    /// Sends `req` and maps the statuses that mean something here.
    async fn send(&self, req: Request) -> Result<Response, VendorError> {
        self.transport
            .send(&req)
            .await
            .map_err(|e| self.classify(e))
    }

    /// Sends `req` and decodes its JSON answer as `T`.
    async fn fetch<T: DeserializeOwned>(&self, req: Request) -> Result<T, VendorError> {
        let resp = self.send(req).await?;
        decode(&resp, resp.json()?)
    }

    /// Maps statuses to errors: 401 `forbidden` and 403 → [`VendorError::Forbidden`], any other
    /// 401 → [`VendorError::InvalidCredentials`], 400/405/415 → [`VendorError::Rejected`], an
    /// unknown organization → [`VendorError::NotFound`].
    fn classify(&self, e: HttpError) -> VendorError {
        match e {
            // The server answers a missing permission with 401 and error type `forbidden`.
            HttpError::Status {
                status,
                method,
                path,
                detail,
            } if status == 403 || status == 401 && detail.starts_with("forbidden:") => {
                VendorError::Forbidden(format!(
                    "{method} {path}: {detail} (credentials from Secret {})",
                    self.credentials.secret
                ))
            }
            HttpError::Status {
                status: 401,
                detail,
                ..
            } => {
                let mut detail = if detail.is_empty() {
                    "HTTP 401".to_string()
                } else {
                    detail
                };
                if let Some(exp) = jwt_expiry(&self.bearer)
                    && exp <= jiff::Timestamp::now()
                {
                    detail.push_str(&format!(" (the JWT expired at {exp})"));
                }
                VendorError::InvalidCredentials {
                    secret: self.credentials.secret.clone(),
                    detail,
                }
            }
            HttpError::Status {
                status: 400 | 405 | 415,
                method,
                path,
                detail,
            } => VendorError::Rejected(format!("{method} {path}: {detail}")),
            HttpError::Status {
                status,
                method,
                path,
                detail,
            } if unknown_org(status, &detail) => {
                VendorError::NotFound(format!("{method} {path}: {detail}"))
            }
            other => VendorError::Http(other),
        }
    }

    /// Checks the JWT with the cheapest authenticated read (`GET /metadata`).
    pub async fn verify(&self) -> Result<(), VendorError> {
        self.list_org_principals().await.map(|_| ())
    }

    /// `GET /metadata`: the principal of every organization the caller may read (id, unique
    /// name, title).
    pub async fn list_org_principals(&self) -> Result<Vec<OrganizationPrincipal>, VendorError> {
        self.fetch(self.request(Method::GET, "/metadata")?).await
    }

    /// `GET ""`: every organization the caller may read, in full.
    pub async fn list_orgs(&self) -> Result<Vec<Organization>, VendorError> {
        self.fetch(self.request(Method::GET, "")?).await
    }

    /// `GET /{id}`; `None` when it does not exist.
    pub async fn get_org(&self, id: Uuid) -> Result<Option<Organization>, VendorError> {
        let req = self
            .request(Method::GET, &format!("/{id}"))?
            .accept_when(unknown_org);
        match self.fetch(req).await {
            Ok(org) => Ok(Some(org)),
            Err(VendorError::NotFound(_)) => Ok(None),
            Err(VendorError::Http(HttpError::Status { status: 404, .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The organization named `principal_id` (its unique name), from `GET /metadata`.
    pub async fn find_org_by_name(
        &self,
        principal_id: &str,
    ) -> Result<Option<OrganizationPrincipal>, VendorError> {
        Ok(self
            .list_org_principals()
            .await?
            .into_iter()
            .find(|p| p.principal.id == principal_id))
    }

    /// `POST ""`: creates the organization `org` describes, with the id it carries.
    ///
    /// The server refuses a name that is taken with 400; that answer is resolved by looking
    /// the name up ([`CreateOutcome::Exists`]). An id already reserved under another name is
    /// [`VendorError::Rejected`]. A create whose answer was lost is
    /// [`HttpError::OutcomeUnknown`]: look the id up ([`OpenLatticeApi::get_org`]) before
    /// trying again.
    pub async fn create_org(&self, org: &OrganizationCreate) -> Result<CreateOutcome, VendorError> {
        let body = serde_json::to_value(org).map_err(|e| HttpError::Decode {
            path: ORGANIZATIONS_PATH.into(),
            cause: e.to_string(),
        })?;
        let req = self
            .request(Method::POST, "")?
            .json(body)
            .accept_when(id_taken);
        match self.send(req).await {
            Ok(resp) => {
                let id: Uuid = decode(&resp, resp.json()?)?;
                Ok(CreateOutcome::Created(id))
            }
            Err(VendorError::Rejected(detail)) => {
                match self.find_org_by_name(&org.principal.id).await? {
                    Some(existing) => Ok(CreateOutcome::Exists(existing.id)),
                    None => Err(VendorError::Rejected(detail)),
                }
            }
            Err(VendorError::Http(HttpError::Status {
                status: 500,
                detail,
                ..
            })) if id_taken(500, &detail) => Err(VendorError::Rejected(format!(
                "organization id {} is taken under another name: {detail}",
                org.id
            ))),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /{id}`; an organization already gone is success.
    pub async fn delete_org(&self, id: Uuid) -> Result<(), VendorError> {
        let req = self
            .request(Method::DELETE, &format!("/{id}"))?
            .accept_when(unknown_org);
        match self.send(req).await {
            Ok(_) | Err(VendorError::NotFound(_)) => Ok(()),
            Err(VendorError::Http(HttpError::Status { status: 404, .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A void request about organization `org`: an unknown org is [`VendorError::NotFound`],
    /// at once.
    async fn org_call(&self, req: Request) -> Result<(), VendorError> {
        self.send(req.accept_when(unknown_org)).await.map(|_| ())
    }

    /// `PUT /{id}/title` (`text/plain`).
    pub async fn update_title(&self, id: Uuid, title: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::PUT, &format!("/{id}/title"))?
            .text(title);
        self.org_call(req).await
    }

    /// `PUT /{id}/description` (`text/plain`).
    pub async fn update_description(&self, id: Uuid, description: &str) -> Result<(), VendorError> {
        let req = self
            .request(Method::PUT, &format!("/{id}/description"))?
            .text(description);
        self.org_call(req).await
    }

    /// `GET /{id}/email-domains` (needs OWNER).
    pub async fn email_domains(&self, id: Uuid) -> Result<Vec<String>, VendorError> {
        let req = self
            .request(Method::GET, &format!("/{id}/email-domains"))?
            .accept_when(unknown_org);
        self.fetch(req).await
    }

    /// `PUT /{id}/email-domains`: replaces the auto-approved e-mail domains (needs a global
    /// admin's JWT).
    pub async fn set_email_domains(&self, id: Uuid, domains: &[String]) -> Result<(), VendorError> {
        let req = self
            .request(Method::PUT, &format!("/{id}/email-domains"))?
            .json(Value::from(domains.to_vec()));
        self.org_call(req).await
    }

    /// `GET /{id}/principals/roles`: the roles the caller may read, the admin role among them
    /// (see [`Organization::is_admin_role`]).
    pub async fn roles(&self, org: Uuid) -> Result<Vec<Role>, VendorError> {
        let req = self
            .request(Method::GET, &format!("/{org}/principals/roles"))?
            .accept_when(unknown_org);
        self.fetch(req).await
    }

    /// `GET /{id}/principals/roles/{roleId}`; `None` when the role does not exist.
    pub async fn get_role(&self, org: Uuid, role: Uuid) -> Result<Option<Role>, VendorError> {
        let req = self
            .request(Method::GET, &format!("/{org}/principals/roles/{role}"))?
            .accept_when(unknown_org);
        match self.fetch(req).await {
            Ok(role) => Ok(Some(role)),
            Err(VendorError::Http(HttpError::Status { status: 404, .. })) => Ok(None),
            Err(e @ VendorError::Forbidden(_)) => {
                self.absent_role(org, role, e).await.map(|()| None)
            }
            Err(e) => Err(e),
        }
    }

    /// After `forbidden` about role `role`: `Ok` when the organization's role list does not
    /// have it. The server checks permissions on `[org, role]` before it looks the role up, so
    /// a role that does not exist (any more) is answered 401 `forbidden` like one the caller
    /// may not touch; the list tells the two apart (for a caller who may read the
    /// organization's roles: to anyone else a role they cannot read is as good as absent).
    async fn absent_role(
        &self,
        org: Uuid,
        role: Uuid,
        forbidden: VendorError,
    ) -> Result<(), VendorError> {
        if self.roles(org).await?.iter().any(|r| r.id == Some(role)) {
            Err(forbidden)
        } else {
            Ok(())
        }
    }

    /// `POST /roles`: creates role `title` of `org` with id [`role_id`]`(org, title)` and
    /// principal `<org>|<title>`; returns its id. Safe to repeat: the server keeps the first
    /// role of a principal name and answers with the id it was sent.
    pub async fn create_role(
        &self,
        org: Uuid,
        title: &str,
        description: Option<&str>,
    ) -> Result<Uuid, VendorError> {
        let role = Role::new(org, role_id(org, title), title, description);
        let body = serde_json::to_value(&role).map_err(|e| HttpError::Decode {
            path: "/roles".into(),
            cause: e.to_string(),
        })?;
        let req = self
            .request(Method::POST, "/roles")?
            .json(body)
            .repeat(Repeat::Safe)
            .accept_when(unknown_org);
        let resp = self.send(req).await?;
        decode(&resp, resp.json()?)
    }

    /// `PUT /{id}/principals/roles/{roleId}/title` (`text/plain`; the principal name stays).
    pub async fn update_role_title(
        &self,
        org: Uuid,
        role: Uuid,
        title: &str,
    ) -> Result<(), VendorError> {
        let req = self
            .request(
                Method::PUT,
                &format!("/{org}/principals/roles/{role}/title"),
            )?
            .text(title);
        self.org_call(req).await
    }

    /// `PUT /{id}/principals/roles/{roleId}/description` (`text/plain`).
    pub async fn update_role_description(
        &self,
        org: Uuid,
        role: Uuid,
        description: &str,
    ) -> Result<(), VendorError> {
        let req = self
            .request(
                Method::PUT,
                &format!("/{org}/principals/roles/{role}/description"),
            )?
            .text(description);
        self.org_call(req).await
    }

    /// `PUT /{id}/principals/roles/{roleId}/grant`.
    pub async fn update_role_grant(
        &self,
        org: Uuid,
        role: Uuid,
        grant: &Grant,
    ) -> Result<(), VendorError> {
        let body = serde_json::to_value(grant).map_err(|e| HttpError::Decode {
            path: "grant".into(),
            cause: e.to_string(),
        })?;
        let req = self
            .request(
                Method::PUT,
                &format!("/{org}/principals/roles/{role}/grant"),
            )?
            .json(body);
        self.org_call(req).await
    }

    /// `DELETE /{id}/principals/roles/{roleId}`; a role already gone is success (the server
    /// answers it 401 `forbidden`: see `absent_role`). The admin role cannot be deleted
    /// ([`VendorError::Rejected`]).
    pub async fn delete_role(&self, org: Uuid, role: Uuid) -> Result<(), VendorError> {
        let req = self.request(Method::DELETE, &format!("/{org}/principals/roles/{role}"))?;
        match self.org_call(req).await {
            Err(VendorError::Http(HttpError::Status { status: 404, .. })) => Ok(()),
            Err(e @ VendorError::Forbidden(_)) => self.absent_role(org, role, e).await,
            other => other,
        }
    }

    /// `GET /{id}/principals/members`.
    pub async fn members(&self, org: Uuid) -> Result<Vec<OrganizationMember>, VendorError> {
        let req = self
            .request(Method::GET, &format!("/{org}/principals/members"))?
            .accept_when(unknown_org);
        self.fetch(req).await
    }

    /// `PUT /{id}/principals/members/{userId}` (idempotent).
    pub async fn add_member(&self, org: Uuid, user: &str) -> Result<(), VendorError> {
        let user = user_segment(user)?;
        let req = self.request(Method::PUT, &format!("/{org}/principals/members/{user}"))?;
        self.org_call(req).await
    }

    /// `DELETE /{id}/principals/members/{userId}` (idempotent).
    pub async fn remove_member(&self, org: Uuid, user: &str) -> Result<(), VendorError> {
        let user = user_segment(user)?;
        let req = self.request(Method::DELETE, &format!("/{org}/principals/members/{user}"))?;
        self.org_call(req).await
    }

    /// `GET /{id}/principals/roles/{roleId}/members`: the users holding the role.
    pub async fn role_members(&self, org: Uuid, role: Uuid) -> Result<Vec<Auth0User>, VendorError> {
        let req = self
            .request(
                Method::GET,
                &format!("/{org}/principals/roles/{role}/members"),
            )?
            .accept_when(unknown_org);
        self.fetch(req).await
    }

    /// `PUT /{id}/principals/roles/{roleId}/members/{userId}` (idempotent).
    pub async fn add_role_to_member(
        &self,
        org: Uuid,
        role: Uuid,
        user: &str,
    ) -> Result<(), VendorError> {
        let user = user_segment(user)?;
        let req = self.request(
            Method::PUT,
            &format!("/{org}/principals/roles/{role}/members/{user}"),
        )?;
        self.org_call(req).await
    }

    /// `DELETE /{id}/principals/roles/{roleId}/members/{userId}` (idempotent).
    pub async fn remove_role_from_member(
        &self,
        org: Uuid,
        role: Uuid,
        user: &str,
    ) -> Result<(), VendorError> {
        let user = user_segment(user)?;
        let req = self.request(
            Method::DELETE,
            &format!("/{org}/principals/roles/{role}/members/{user}"),
        )?;
        self.org_call(req).await
    }
}

impl OpenLatticeApi {
    /// `POST /datastore/principals/users/search` with `{"email": email}`: the Auth0 users whose
    /// e-mail is `email`, compared case-insensitively (usually one; none when nobody has that
    /// address — the server answers `{}`), sorted by user id.
    ///
    /// The server hands the value to Auth0 as the Lucene query `email:<value>`, where `*` is a
    /// wildcard and `OR`, quotes, brackets … are syntax: an address that is not plain is
    /// refused here ([`search_email`], [`VendorError::Rejected`]) so that a tenant's input can
    /// never list other people; and whatever the server answers, only users whose `email` is
    /// `email` are kept. A read, so it is retried like one although it is a POST.
    pub async fn find_users_by_email(&self, email: &str) -> Result<Vec<Auth0User>, VendorError> {
        let email = search_email(email)?;
        let req = self
            .principals_request(Method::POST, "/users/search")?
            .json(serde_json::json!({ "email": email }))
            .repeat(Repeat::Safe);
        let found: BTreeMap<String, Auth0User> = self.fetch(req).await?;
        let wanted = email.to_lowercase();
        Ok(found
            .into_iter()
            .map(|(id, mut user)| {
                user.user_id.get_or_insert(id);
                user
            })
            .filter(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase() == wanted)
            })
            .collect())
    }

    /// `GET /datastore/principals/users/{userId}`: the Auth0 user `user_id` (e.g.
    /// `google-oauth2|123`); `None` when the server does not know it (its 500
    /// `NoSuchElementException`, read at once rather than retried).
    pub async fn get_user(&self, user_id: &str) -> Result<Option<Auth0User>, VendorError> {
        let segment = user_segment(user_id)?;
        let req = self
            .principals_request(Method::GET, &format!("/users/{segment}"))?
            .accept_when(unknown_user);
        match self.fetch::<Auth0User>(req).await {
            Ok(mut user) => {
                user.user_id.get_or_insert_with(|| user_id.to_string());
                Ok(Some(user))
            }
            Err(VendorError::Http(HttpError::Status {
                status, ref detail, ..
            })) if status == 404 || unknown_user(status, detail) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `email` if it is a plain address that is safe to put into the server's Auth0 query
/// `email:<value>`; else [`VendorError::Rejected`] saying why.
///
/// Plain means: at most [`MAX_EMAIL_LEN`] characters, one `@` with something on both sides,
/// and only letters, digits (any script) and `. _ % + - '` besides — no Lucene syntax (`*`,
/// `?`, `:`, `"`, `\`, `/`, brackets, `!`, `^`, `~`, `&`, `|`, `=`, `<`, `>`), no whitespace,
/// and no `+`/`-` in front (Lucene operators there). The rare legal addresses outside this
/// are refused rather than escaped: how Auth0 treats escapes is not documented.
pub fn search_email(email: &str) -> Result<&str, VendorError> {
    let refuse = |why: &str| {
        // The address is a tenant's input, not a secret; it is shortened all the same.
        let shown: String = email.chars().take(64).collect();
        Err(VendorError::Rejected(format!(
            "{shown:?} is not an e-mail address OpenLattice can be searched for: {why}"
        )))
    };
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return refuse("it must have 1 to 254 characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return refuse("it has no @");
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return refuse("it must be one local part, one @ and one domain");
    }
    if let Some(c) = email
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '@' | '.' | '_' | '%' | '+' | '-' | '\'')))
    {
        return refuse(&format!(
            "{c:?} is search syntax or not allowed in an address here"
        ));
    }
    if email.starts_with(['+', '-']) {
        return refuse("it starts with an operator");
    }
    Ok(email)
}

/// A user id (Auth0 subject, e.g. `google-oauth2|123`) as one path segment: everything but
/// RFC 3986's unreserved characters percent-encoded (`|` → `%7C`, `/` → `%2F`), as the SDKs
/// send it. `.` and `..` (which a URL parser would resolve as path steps) and the empty id are
/// refused.
pub fn user_segment(user: &str) -> Result<String, VendorError> {
    if matches!(user, "" | "." | "..") {
        return Err(VendorError::Rejected(format!(
            "{user:?} is not a user id (an Auth0 subject such as google-oauth2|123)"
        )));
    }
    let mut out = String::with_capacity(user.len() * 3);
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// `value` as `T`, or a decode error naming the response's path.
fn decode<T: DeserializeOwned>(resp: &Response, value: Value) -> Result<T, VendorError> {
    serde_json::from_value(value).map_err(|e| VendorError::Http(resp.decode_error(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_one_percent_encoded_segment() {
        assert_eq!(
            user_segment("google-oauth2|123").unwrap(),
            "google-oauth2%7C123"
        );
        assert_eq!(user_segment("auth0|a.b_c~d").unwrap(), "auth0%7Ca.b_c~d");
        assert_eq!(
            user_segment("a/../b c?d#e").unwrap(),
            "a%2F..%2Fb%20c%3Fd%23e"
        );
        assert_eq!(user_segment("ü").unwrap(), "%C3%BC");
        for bad in ["", ".", ".."] {
            assert!(
                matches!(user_segment(bad), Err(VendorError::Rejected(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_plain_addresses_are_searched_for() {
        for ok in [
            "alice@orgops.example",
            "Alice.O'Brien+tag@Sub.Orgops.example",
            "first-last_1%x@xn--zrich-kva.example",
            "zürich@bücher.example",
        ] {
            assert_eq!(search_email(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "no-at-sign",
            "@orgops.example",
            "alice@",
            "a@b@c",
            "*@orgops.example",
            "a*@orgops.example",
            "alice@orgops.example OR email:*",
            "alice@orgops.example\tx",
            "a?c@orgops.example",
            "\"alice@orgops.example\"",
            "email:alice@orgops.example",
            "(a)@b",
            "a\\*@b",
            "a/b@c",
            "a{b}@c",
            "a[b]@c",
            "a!b@c",
            "a^b@c",
            "a~b@c",
            "a&&b@c",
            "a||b@c",
            "a=b@c",
            "a<b>@c",
            "-alice@orgops.example",
            "+alice@orgops.example",
            "a\u{3000}b@c",
        ] {
            let err = search_email(bad).unwrap_err();
            assert!(matches!(err, VendorError::Rejected(_)), "{bad:?}: {err}");
        }
        let long = format!("{}@b.example", "a".repeat(MAX_EMAIL_LEN));
        let err = search_email(&long).unwrap_err().to_string();
        assert!(err.len() < 300, "a long address is not echoed whole: {err}");
    }

    #[test]
    fn principals_urls_share_the_origin_and_prefix_of_the_organizations_url() {
        let endpoints = Endpoints::default();
        for (endpoint, want) in [
            (
                "http://127.0.0.1:8080/datastore/organizations/",
                "http://127.0.0.1:8080/datastore/principals/users/search",
            ),
            (
                "https://gw.example/openlattice",
                "https://gw.example/openlattice/datastore/principals/users/search",
            ),
        ] {
            let api = OpenLatticeApi::new(
                Some(endpoint),
                creds(&[("token", "t")]),
                HttpConfig::default(),
                &endpoints,
            )
            .unwrap();
            let req = api
                .principals_request(Method::POST, "/users/search")
                .unwrap();
            assert_eq!(req.url.as_str(), want);
            assert_eq!(req.url.origin(), api.base.origin());
        }
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = organization_id("uid-1");
        assert_eq!(a, organization_id("uid-1"));
        assert_ne!(a, organization_id("uid-2"));
        assert_eq!(a.get_version_num(), 5);
        assert_eq!(
            ORGANIZATION_ID_NAMESPACE,
            Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"openlattice.orgops.io")
        );
        assert_eq!(role_id(a, "Analysts"), role_id(a, "Analysts"));
        assert_ne!(role_id(a, "Analysts"), role_id(a, "analysts"));
        assert_ne!(
            role_id(a, "Analysts"),
            role_id(organization_id("uid-2"), "Analysts")
        );
    }

    fn creds(values: &[(&str, &str)]) -> Credentials {
        Credentials::new(
            "ns/ol-creds",
            values
                .iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
                .collect(),
        )
    }

    #[test]
    fn the_token_key_is_required_and_must_be_a_header_value() {
        let endpoints = Endpoints::default();
        let new = |c| OpenLatticeApi::new(None, c, HttpConfig::default(), &endpoints);
        let err = new(creds(&[("password", "x")])).unwrap_err();
        assert!(
            matches!(&err, VendorError::MissingCredential { secret, key } if secret == "ns/ol-creds" && key == "token"),
            "{err}"
        );
        let err = new(creds(&[("token", "abc\ndef-secret")])).unwrap_err();
        assert!(
            matches!(err, VendorError::InvalidCredentials { .. }),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("def-secret"));
        assert!(new(creds(&[("token", "   ")])).is_err());
        // A pasted "Bearer " prefix is not doubled.
        let api = new(creds(&[("token", "Bearer eyJ.x.y")])).unwrap();
        assert_eq!(api.bearer.expose_secret(), "Bearer eyJ.x.y");
        assert!(!format!("{api:?}").contains("eyJ"));
    }

    #[test]
    fn the_base_url_ends_in_the_organizations_path_once() {
        let endpoints = Endpoints::default();
        for endpoint in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/datastore/organizations",
            "http://127.0.0.1:8080/datastore/organizations/",
        ] {
            let api = OpenLatticeApi::new(
                Some(endpoint),
                creds(&[("token", "t")]),
                HttpConfig::default(),
                &endpoints,
            )
            .unwrap();
            assert_eq!(
                api.url("").unwrap().as_str(),
                "http://127.0.0.1:8080/datastore/organizations"
            );
        }
    }
}
