//! Vendor clients behind one vendor-neutral contract, [`VendorClient`].
//!
//! The contract follows Crossplane's external client: the engine *observes* (reads never
//! change anything), then *creates*, *updates* or *deletes* what differs. Every write must be
//! safe to repeat after observing: updates are idempotent, a delete of something already gone
//! succeeds, and a create whose response was lost is never re-sent blindly — the engine first
//! observes again and finds what it made.
//!
//! The pieces, and why each exists:
//!
//! - **Capabilities** ([`Capabilities`], also [`capabilities`] per vendor): create, delete,
//!   [`OrgIdentity`], synced settings, the membership [`RoleModel`], usage, copyable kinds.
//!   Anything a vendor cannot do is an [`VendorError::Unsupported`] condition, never a retry.
//! - **Org identity** ([`OrgIdentity`]): an ownership *marker* written into the org (Rossum),
//!   a client-*chosen id* ([`VendorClient::planned_org_id`], OpenLattice) looked up before a
//!   create and after an unknown outcome, or *none* (adopt only: by `externalId`, or by a
//!   unique display name). Without a marker, the caller guarantees one Organization per org
//!   ([`Sink::claim`](crate::engine::org::Sink::claim)), and `deletionPolicy: Delete` never
//!   deletes an org orgops did not create.
//! - **Copy** ([`KindSpec`]): per kind, the reference fields ([`RefField`]: to the org, to
//!   another kind, to a [`RefTarget::Shared`] object kept as is, deferred to a second pass, or
//!   [`embedded`](RefField::embedded) inside strings at any depth with `**`), the fields that
//!   copy, and how a copy is recognised ([`Identity`]: a marker in a map or a tag
//!   ([`MarkerAt`]), or a natural key). Bodies and patches are in the shape `list_objects`
//!   returns; a client translates to its write shape. Failures are per object and per kind.
//! - **Memberships** ([`MemberClient`]): a person in an org is observed as absent, invited or
//!   active, with a set of roles and a set of scopes ([`MemberObserved`]); the engine adds,
//!   grants and revokes roles, and sets scopes ([`MemberChange`]). Vendor-specific structure
//!   (who holds the access, what can change) stays in the client's opaque `vendor_state`, and
//!   constraints come back as `roles_fixed` or `blocked`.
//! - **HTTP** ([`http`]): per-vendor auth header, error-body format, text bodies, retry safety
//!   per request, statuses the client reads itself, pagination styles and expiring tokens.
//!
//! How each vendor maps:
//!
//! - **Rossum** (implemented): REST, integer ids, references are absolute URLs, objects carry a
//!   free `metadata` map that holds the marker ([`MarkerAt::Map`]); email templates, labels and
//!   rules have none and are matched by name + parent queue. Org creation needs a create_key;
//!   orgs carry the ownership marker. Members: a username is global, so a person is a user of
//!   one org and has organization-group memberships into others; one role per user (roles are
//!   `roles_fixed` outside the user's own org); a disabled user is `blocked` elsewhere; scopes
//!   are queues.
//! - **OpenLattice**: REST with UUID ids and no pagination; `create_org` sends a chosen id
//!   (UUIDv5 of the owner) so a lost response is found again by id; `delete_org` exists;
//!   title/description are `text/plain` PUTs inside `patch_org`; an unknown org is a 500 the
//!   client reads itself. Roles are a kind matched by title (the automatic ADMIN role skipped).
//!   Members: `member` plus the org's roles by title (`RoleModel::org_roles`); adding and
//!   granting are idempotent PUTs.
//! - **Dataloop** (implemented): REST with JWTs that expire (~24 h): an API key is used until
//!   its `exp`, an M2M login (`username` + `password`) is renewed through the token cache
//!   before it expires. Plain arrays, `pageOffset`/`hasNextPage` pages and DQL query bodies
//!   behind `list_objects`. Orgs are adopted ([`OrgIdentity::None`]); `name`, `plan` (403 =
//!   needs a superuser, a `Forbidden` naming the setting) and `cache` (apply/destroy, waiting
//!   for READY) are settings. Kinds: groups, integrations (secret options only through
//!   [`VendorClient::create_object_with_input`]), projects (never the system project; group
//!   roles as `"<groupId>:<role>"` strings, an [`embedded`](RefField::embedded) reference),
//!   drivers (read shape flat, write shape nested `payload`, translated in the client),
//!   ontologies and recipes (`projectIds.*`, `ontologyIds.*`); references are id strings;
//!   copies by natural key. Members are invitations by e-mail (`Invited` until accepted), one
//!   org role; project roles are scopes, `"<project name>:<role>"`.
//! - **Rendered.ai** (implemented): GraphQL (`apikey` header or a `signIn` session renewed
//!   before it expires, errors in `errors[]` on HTTP 200, reads are POSTs marked safe to
//!   repeat, cursor pagination). Orgs are adopted; `name`, `rules` and the legacy `limits` are
//!   settings (limits the server no longer serves are an `Unsupported` condition on that
//!   setting). Kinds: volumes (metadata; their files are the opt-in `volume_data`, uploaded
//!   through presigned part URLs), workspaces (channels [`RefTarget::Shared`], own
//!   volumes remapped, shared ones kept), graphs (volume ids embedded in the graph JSON as
//!   `"<volumeId>:/path"`), workspace rules; copies carry a marker tag ([`MarkerAt::Tag`]),
//!   rules follow their workspace (natural key). Members by e-mail, one role admin/member,
//!   unknown e-mails become invitations; scopes are the workspaces the person is a (3.3.4,
//!   legacy) guest of, where the server still serves guests, read only for specs with scopes.

pub mod connection;
pub mod dataloop;
pub mod http;
pub mod openlattice;
pub mod renderedai;
pub mod rossum;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use secrecy::SecretString;
use serde_json::Value;

pub use http::{Endpoints, Fence, HttpConfig, HttpError};

/// Credentials read from a Secret: the Secret's name (for messages) and its keys.
#[derive(Clone)]
pub struct Credentials {
    /// `namespace/name` of the Secret, used in every message about these credentials.
    pub secret: String,
    values: BTreeMap<String, SecretString>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret", &self.secret)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Credentials from a Secret's decoded key/value pairs.
    pub fn new(secret: impl Into<String>, values: BTreeMap<String, SecretString>) -> Self {
        Self {
            secret: secret.into(),
            values,
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.values.get(key)
    }

    /// Every key and value, in key order (write-only values a vendor takes whole, e.g. a
    /// Dataloop integration's options).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, or an error naming the Secret and the key.
    pub fn require(&self, key: &str) -> Result<&SecretString, VendorError> {
        self.get(key).ok_or_else(|| VendorError::MissingCredential {
            secret: self.secret.clone(),
            key: key.to_string(),
        })
    }
}

/// Who owns an organization or a copy: written into the vendor object so it can be found again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `namespace/name` of the Organization resource.
    pub key: String,
    /// The resource's uid, when it lives in a cluster.
    pub uid: Option<String>,
}

/// An organization as the vendor reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct OrgInfo {
    /// The vendor's id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The `owner` recorded in the org's ownership marker, if any.
    pub owner: Option<String>,
    /// When the vendor created it.
    pub created_at: Option<jiff::Timestamp>,
    /// Usage/limits snapshot, where the vendor reports one.
    pub usage: Option<Value>,
    /// The raw object, for vendor-specific settings comparison.
    pub raw: Value,
}

/// What a connection's credentials reach at the vendor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountInfo {
    /// One line, e.g. `org group 7 (Acme), user 42`.
    pub summary: String,
    /// Ids and names by key (never credentials).
    pub details: BTreeMap<String, String>,
}

/// What the engine wants the organization to look like (vendor-neutral plus one vendor block).
#[derive(Clone, Debug, PartialEq)]
pub struct OrgDesired {
    /// Owner, written into the ownership marker.
    pub owner: Owner,
    /// Display name.
    pub display_name: String,
    /// The chosen vendor's settings block (`spec.settings.<vendor>`), or `null`.
    pub settings: Value,
}

/// How orgops recognises an organization it created (or adopted) again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgIdentity {
    /// The org carries an ownership marker naming its Organization resource (Rossum
    /// `metadata.orgops`): a lost create response is found by the marker, and two
    /// Organizations can never manage the same org.
    Marker,
    /// The client chooses the id of a new org ([`VendorClient::planned_org_id`]): a lost
    /// create response is found again by that id (OpenLattice).
    ChosenId,
    /// Nothing: orgs are only adopted (Dataloop, Rendered.ai).
    None,
}

/// What a vendor can do.
#[derive(Clone, Debug)]
pub struct Capabilities {
    /// Organizations can be created through the API.
    pub create_org: bool,
    /// Organizations can be deleted through the API.
    pub delete_org: bool,
    /// How an org is recognised again. Without a marker, the caller makes sure no two
    /// Organizations adopt the same org ([`Sink::claim`](crate::engine::org::Sink::claim)).
    pub org_identity: OrgIdentity,
    /// What `spec.settings.<vendor>` keeps in sync besides the display name (field names).
    pub settings: &'static [&'static str],
    /// Memberships, where the vendor has them: the roles and scopes they carry.
    pub members: Option<RoleModel>,
    /// What `status.usage` shows, where the vendor reports usage.
    pub usage: Option<&'static str>,
    /// Kinds a template copy can carry, in no particular order.
    pub kinds: &'static [KindSpec],
}

/// Where a reference field points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefTarget {
    /// The organization itself (template org → new org).
    Organization,
    /// Another copyable kind, by name: rewritten to that object's copy, which must exist first.
    Kind(&'static str),
    /// A shared object that is not copied and is valid in every organization (Rendered.ai
    /// channels): the reference is kept as it is.
    Shared,
}

/// Finds the id inside a string that embeds one (Rendered.ai `"<volumeId>:/path"`): the byte
/// range of the id, or `None` when the string holds no reference.
pub type Embedded = fn(&str) -> Option<std::ops::Range<usize>>;

/// A field that references other objects.
#[derive(Clone, Copy, Debug)]
pub struct RefField {
    /// Dot path into the object; `*` walks every element of an array and `**` every value
    /// at any depth (e.g. `queues.*`, `actions.*.payload.labels.*`, `graph.**`).
    pub path: &'static str,
    /// What it references.
    pub target: RefTarget,
    /// Set in a second pass, once every object of the kind exists (self-references such as
    /// Rossum's `hook.run_after`).
    pub deferred: bool,
    /// The reference is part of a string ([`Embedded`] finds it); strings without one are left
    /// alone. `None`: the value is the reference, in the vendor's encoding ([`RefCodec`]).
    pub embedded: Option<Embedded>,
}

impl RefField {
    /// A reference at `path` to `target`, set in the first pass, the whole value.
    pub const fn to(path: &'static str, target: RefTarget) -> Self {
        Self {
            path,
            target,
            deferred: false,
            embedded: None,
        }
    }

    /// Set once every object of the kind exists.
    pub const fn deferred(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// The reference is embedded in strings.
    pub const fn embedded(mut self, find: Embedded) -> Self {
        self.embedded = Some(find);
        self
    }
}

/// Where an ownership marker lives in an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerAt {
    /// An object `{owner, template, kind, source}` under the key `orgops` of this free-form
    /// map field (Rossum `metadata`).
    Map(&'static str),
    /// A string `orgops:<template org>:<kind>:<source id>` in this list-of-strings field
    /// (tags); the owner is the organization itself.
    Tag(&'static str),
}

/// How a copy is recognised in the target organization.
#[derive(Clone, Copy, Debug)]
pub enum Identity {
    /// A marker the copy carries (see [`MarkerAt`]).
    Marker(MarkerAt),
    /// A natural key computed from the (reference-rewritten) object, e.g. parent + name.
    NaturalKey(fn(&Value) -> Option<String>),
}

/// Which fields of a template object a copy carries.
#[derive(Clone, Copy, Debug)]
pub enum CopyFields {
    /// Exactly these top-level fields (when present).
    Only(&'static [&'static str]),
    /// Every field except these.
    AllExcept(&'static [&'static str]),
}

/// Whether a missing copy can be created from this body, else why not.
pub type CreatableCheck = fn(&Value) -> Result<(), &'static str>;

/// Declaration of one copyable kind.
#[derive(Clone, Copy, Debug)]
pub struct KindSpec {
    /// Plural name, as used in `include` and in status (`queues`).
    pub name: &'static str,
    /// Reference fields.
    pub refs: &'static [RefField],
    /// Which fields copy.
    pub fields: CopyFields,
    /// How an existing copy is found.
    pub identity: Identity,
    /// Whether a missing copy can be created (`None`: always), else why not.
    pub creatable: Option<CreatableCheck>,
    /// Template objects that are not copied at all (e.g. deleted or private ones).
    pub skip: Option<fn(&Value) -> bool>,
    /// Objects of this kind are created with write-only values the vendor never returns
    /// (Dataloop integration secrets): the object's name, as `spec.template.secrets` names it
    /// (`<kind>/<name>`), and the copy is made with [`VendorClient::create_object_with_input`];
    /// `None` from the function: this object needs none (a Dataloop NFS integration).
    pub input: Option<fn(&Value) -> Option<String>>,
    /// Copied only when `spec.template.include` names the kind (Dataloop's empty datasets).
    pub opt_in: bool,
}

impl KindSpec {
    /// The kinds this one must wait for (non-deferred references to other kinds).
    pub fn dependencies(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.refs.iter().filter_map(|r| match r.target {
            RefTarget::Kind(k) if !r.deferred && k != self.name => Some(k),
            RefTarget::Kind(_) | RefTarget::Organization | RefTarget::Shared => None,
        })
    }
}

/// Errors of vendor clients. `category()` is the bounded reason used in conditions and metrics.
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// The Secret lacks a key the vendor needs.
    #[error("Secret {secret} has no key {key:?}")]
    MissingCredential {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The missing key.
        key: String,
    },
    /// The vendor rejected the credentials.
    #[error("the vendor rejected the credentials in Secret {secret}: {detail}")]
    InvalidCredentials {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What the vendor said (never the credential).
        detail: String,
    },
    /// The credentials are valid but lack a permission.
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// The vendor cannot do what the spec asks.
    #[error("not supported by {vendor}: {what}")]
    Unsupported {
        /// Vendor name.
        vendor: &'static str,
        /// What is not supported and what to do instead.
        what: String,
    },
    /// Something the spec names does not exist at the vendor.
    #[error("{0}")]
    NotFound(String),
    /// The vendor rejected a request as invalid.
    #[error("rejected by the vendor: {0}")]
    Rejected(String),
    /// Transport or server failure.
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl VendorError {
    /// A bounded, CamelCase reason for conditions, events and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            VendorError::MissingCredential { .. } => "CredentialsMissing",
            VendorError::InvalidCredentials { .. } => "CredentialsInvalid",
            VendorError::Forbidden(_) => "PermissionDenied",
            VendorError::Unsupported { .. } => "Unsupported",
            VendorError::NotFound(_) => "NotFound",
            VendorError::Rejected(_) => "VendorRejected",
            VendorError::Http(HttpError::OutcomeUnknown { .. }) => "OutcomeUnknown",
            VendorError::Http(HttpError::NotLeader { .. }) => "NotLeader",
            VendorError::Http(e) if e.is_transient() => "VendorUnavailable",
            VendorError::Http(_) => "VendorError",
        }
    }

    /// True when retrying later may succeed without a human changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, VendorError::Http(e) if e.is_transient())
    }

    /// True when the outcome of a create is unknown and the engine must observe again.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, VendorError::Http(HttpError::OutcomeUnknown { .. }))
    }
}

/// The vendor-neutral client contract (see the module docs).
#[async_trait::async_trait]
pub trait VendorClient: RefCodec {
    /// Vendor name (`rossum`).
    fn vendor(&self) -> &'static str;

    /// What this vendor can do.
    fn capabilities(&self) -> Capabilities;

    /// Checks the credentials (logs in); errors name the Secret.
    async fn verify_credentials(&self) -> Result<(), VendorError>;

    /// Checks the credentials at the vendor (a request, not a cached token) and says what they
    /// reach: ids and names, never a credential.
    async fn describe_account(&self) -> Result<AccountInfo, VendorError> {
        self.verify_credentials().await?;
        Ok(AccountInfo {
            summary: format!("a {} account", self.vendor()),
            details: BTreeMap::new(),
        })
    }

    /// The organization with this id, or `None` when it does not exist (or is not visible).
    async fn get_org(&self, id: &str) -> Result<Option<OrgInfo>, VendorError>;

    /// The organization's usage, limits or billing (`status.usage`), or `None` where the vendor
    /// reports none. The engine asks only when usage is due (`--usage-interval`) or something
    /// changed it, so a vendor that needs extra requests for it (Rossum: limits and billing)
    /// spends them at that slower pace. Default: what [`get_org`](Self::get_org) read.
    async fn usage(&self, org: &OrgInfo) -> Result<Option<Value>, VendorError> {
        Ok(org.usage.clone())
    }

    /// One short line for `kubectl get -o wide` (`status.usageSummary`) from what
    /// [`usage`](Self::usage) returned, e.g. `pages 1200/5000, emails today 3/100`. Pure.
    fn usage_summary(&self, usage: &Value) -> Option<String> {
        let _ = usage;
        None
    }

    /// Organizations visible to the credentials: those named exactly `name`, or all of them.
    async fn find_orgs(&self, name: Option<&str>) -> Result<Vec<OrgInfo>, VendorError>;

    /// The id an organization created for `owner` gets, for vendors whose clients choose it
    /// ([`OrgIdentity::ChosenId`]); the engine looks that id up before creating and after an
    /// unknown outcome. Pure.
    fn planned_org_id(&self, owner: &Owner) -> Option<String> {
        let _ = owner;
        None
    }

    /// Creates an organization. Not idempotent: the engine records intent first and resolves
    /// an unknown outcome with [`find_orgs`](Self::find_orgs) (or by the planned id).
    async fn create_org(&self, desired: &OrgDesired) -> Result<OrgInfo, VendorError>;

    /// The patch that makes `observed` match `desired` (name, ownership marker, vendor
    /// settings), or `None` when nothing differs. Pure.
    fn org_patch(&self, desired: &OrgDesired, observed: &OrgInfo) -> Option<Value>;

    /// Applies a patch from [`org_patch`](Self::org_patch).
    async fn patch_org(&self, id: &str, patch: Value) -> Result<OrgInfo, VendorError>;

    /// Deletes the organization; a missing one counts as deleted.
    async fn delete_org(&self, id: &str) -> Result<(), VendorError>;

    /// Membership operations, where the vendor has them.
    fn members(&self) -> Option<&dyn MemberClient> {
        None
    }

    /// Every object of `kind` in organization `org`.
    async fn list_objects(&self, org: &str, kind: &KindSpec) -> Result<Vec<Value>, VendorError>;

    /// Creates an object of `kind` in `org` from `body`; returns the created object.
    async fn create_object(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
    ) -> Result<Value, VendorError>;

    /// Patches object `id` of `kind` in `org`; returns the updated object.
    ///
    /// Bodies and patches are in the shape `list_objects` returns; a vendor whose writes take
    /// another shape (Dataloop drivers) translates here.
    async fn update_object(
        &self,
        org: &str,
        kind: &KindSpec,
        id: &str,
        patch: Value,
    ) -> Result<Value, VendorError>;

    /// Creates an object of a kind that takes write-only values ([`KindSpec::input`]) from
    /// `body` and the keys of `input` (a Secret's). The values go to the vendor only.
    async fn create_object_with_input(
        &self,
        org: &str,
        kind: &KindSpec,
        body: Value,
        input: &Credentials,
    ) -> Result<Value, VendorError> {
        let _ = (org, body, input);
        Err(VendorError::Unsupported {
            vendor: self.vendor(),
            what: format!("creating {} with secret values", kind.name),
        })
    }

    /// Deletes object `id` of `kind` in `org` (pruning); a missing one counts as deleted.
    async fn delete_object(&self, org: &str, kind: &KindSpec, id: &str) -> Result<(), VendorError> {
        let _ = (org, id);
        Err(VendorError::Unsupported {
            vendor: self.vendor(),
            what: format!("deleting {}", kind.name),
        })
    }
}

/// How a vendor writes and reads references and ids. Pure, so copy plans are testable.
pub trait RefCodec: Send + Sync {
    /// The id of an object as returned by `list_objects`.
    fn object_id(&self, object: &Value) -> Option<String> {
        match object.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The id a reference value points at (`https://…/queues/7` → `7` for Rossum).
    fn decode_ref(&self, value: &Value) -> Option<String>;

    /// The reference value for object `id` of `target` (organization refs name the org).
    fn encode_ref(&self, target: RefTarget, id: &str) -> Value;
}

/// A client for `vendor` at `endpoint` (or the vendor's public API) with `credentials`.
/// Checks the Secret's keys; makes no request.
pub fn connect(
    vendor: crate::api::Vendor,
    endpoint: Option<&str>,
    credentials: Credentials,
    config: HttpConfig,
    endpoints: &Endpoints,
) -> Result<std::sync::Arc<dyn VendorClient>, VendorError> {
    match vendor {
        crate::api::Vendor::Rossum => Ok(std::sync::Arc::new(rossum::RossumClient::new(
            endpoint,
            credentials,
            config,
            endpoints,
        )?)),
        crate::api::Vendor::OpenLattice => Ok(std::sync::Arc::new(
            openlattice::OpenLatticeClient::new(endpoint, credentials, config, endpoints)?,
        )),
        crate::api::Vendor::Dataloop => Ok(std::sync::Arc::new(dataloop::DataloopClient::new(
            endpoint,
            credentials,
            config,
            endpoints,
        )?)),
        crate::api::Vendor::RenderedAi => Ok(std::sync::Arc::new(
            renderedai::RenderedAiClient::new(endpoint, credentials, config, endpoints)?,
        )),
    }
}

/// What `vendor` can do, for the vendors this build has a client for (the README's vendor
/// table is checked against it).
pub fn capabilities(vendor: crate::api::Vendor) -> Option<Capabilities> {
    match vendor {
        crate::api::Vendor::Rossum => Some(rossum::CAPABILITIES),
        crate::api::Vendor::OpenLattice => Some(openlattice::CAPABILITIES),
        crate::api::Vendor::Dataloop => Some(dataloop::CAPABILITIES),
        crate::api::Vendor::RenderedAi => Some(renderedai::CAPABILITIES),
    }
}

/// The vendor's public API, used when neither the connection nor the operator names one.
pub fn default_endpoint(vendor: crate::api::Vendor) -> &'static str {
    match vendor {
        crate::api::Vendor::Rossum => rossum::DEFAULT_ENDPOINT,
        crate::api::Vendor::Dataloop => dataloop::DEFAULT_ENDPOINT,
        crate::api::Vendor::RenderedAi => renderedai::DEFAULT_ENDPOINT,
        crate::api::Vendor::OpenLattice => openlattice::DEFAULT_ENDPOINT,
    }
}

/// The vendor's public API hosts: what namespaced connections may use by default.
pub fn public_endpoints(vendor: crate::api::Vendor) -> &'static [&'static str] {
    match vendor {
        crate::api::Vendor::Rossum => rossum::PUBLIC_ENDPOINTS,
        crate::api::Vendor::Dataloop => dataloop::PUBLIC_ENDPOINTS,
        crate::api::Vendor::RenderedAi => renderedai::PUBLIC_ENDPOINTS,
        crate::api::Vendor::OpenLattice => &["https://api.openlattice.com"],
    }
}

/// The documented request rate of a vendor's API, used as the default limit.
pub fn default_rate(vendor: crate::api::Vendor) -> u32 {
    match vendor {
        crate::api::Vendor::Rossum => rossum::DOCUMENTED_RATE_LIMIT,
        crate::api::Vendor::Dataloop => dataloop::DEFAULT_RATE,
        crate::api::Vendor::RenderedAi => renderedai::DEFAULT_RATE,
        crate::api::Vendor::OpenLattice => 10,
    }
}

/// A person's desired access to one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDesired {
    /// The organization's vendor id.
    pub org: String,
    /// E-mail (the vendor identity of the person).
    pub email: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Every role the person holds in the organization: `spec.role` plus `spec.roles`.
    pub roles: BTreeSet<String>,
    /// Vendor scopes inside the organization, by name (Rossum queues, Dataloop projects,
    /// Rendered.ai workspaces): exactly these, or `None` to leave the person's scopes as they
    /// are (then [`MemberChange::SetScopes`] is never planned, and an add gives none).
    pub scopes: Option<BTreeSet<String>>,
}

impl MemberDesired {
    /// The scopes an add gives (none when scopes are not managed).
    pub fn scopes_to_give(&self) -> BTreeSet<String> {
        self.scopes.clone().unwrap_or_default()
    }
}

/// Whether the vendor holds anything for a person in one organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Nothing: no access and no open invitation.
    Absent,
    /// An invitation the person has not accepted yet.
    Invited,
    /// Access (a user, a membership, a member record).
    Active,
}

/// What the vendor says about a person and one organization, in vendor-neutral terms.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberObserved {
    /// What the vendor holds.
    pub presence: Presence,
    /// The vendor id of what it holds (`user/7`, `membership/5`, an invitation id), for status.
    pub id: Option<String>,
    /// Roles the person holds in the organization (vendor role names; OpenLattice: `member`
    /// plus role titles).
    pub roles: BTreeSet<String>,
    /// Scopes the person has in the organization, by name.
    pub scopes: BTreeSet<String>,
    /// Set when the roles cannot be changed through this organization, saying why (Rossum keeps
    /// one role per user, set in the user's own organization). The engine reports the
    /// difference instead of changing it.
    pub roles_fixed: Option<String>,
    /// Set when access cannot be given without undoing a decision made elsewhere, saying what a
    /// human can do (Rossum: a user disabled because their own organization removed them).
    pub blocked: Option<String>,
    /// Removing this access also ends the person's access to other organizations (Rossum:
    /// removing a user from their own organization disables them everywhere), so OrgMemberships
    /// of the same person are re-checked at once.
    pub removal_reaches_other_orgs: bool,
    /// What the vendor client needs to act on this observation (ids, which record holds the
    /// access). Opaque to the engine.
    pub vendor_state: Value,
}

impl MemberObserved {
    /// Nothing at the vendor for this person.
    pub fn absent() -> Self {
        Self {
            presence: Presence::Absent,
            id: None,
            roles: BTreeSet::new(),
            scopes: BTreeSet::new(),
            roles_fixed: None,
            blocked: None,
            removal_reaches_other_orgs: false,
            vendor_state: Value::Null,
        }
    }

    /// The vendor holds something that a removal must take away.
    pub fn holds_access(&self) -> bool {
        self.presence != Presence::Absent
    }
}

/// One change to a person's access, decided by the engine from an observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Give access (or invite, where the vendor invites) with the desired roles and scopes.
    /// Not idempotent: after an unknown outcome the engine observes again before repeating.
    Add,
    /// Grant and revoke roles.
    SetRoles {
        /// Roles to add.
        grant: BTreeSet<String>,
        /// Roles to take away.
        revoke: BTreeSet<String>,
    },
    /// Make the scopes exactly the desired ones.
    SetScopes,
}

/// The roles and scopes a vendor's memberships have.
#[derive(Clone, Copy, Debug)]
pub struct RoleModel {
    /// Names `spec.role` may take.
    pub roles: &'static [&'static str],
    /// `spec.roles` names roles the organization itself defines (OpenLattice role titles);
    /// the vendor checks they exist.
    pub org_roles: bool,
    /// What scopes are called at this vendor (`queues`), or `None` when it has none.
    pub scopes: Option<&'static str>,
}

/// Membership operations of a vendor (same contract as [`VendorClient`]: observe first). The
/// roles and scopes they carry are declared in [`Capabilities::members`].
#[async_trait::async_trait]
pub trait MemberClient: Send + Sync {
    /// What the vendor holds for the person `desired` names (`desired.email` in
    /// `desired.org`). A vendor may read only what the desired membership manages, e.g. scopes
    /// only when `desired.scopes` is `Some`.
    async fn observe_member(&self, desired: &MemberDesired) -> Result<MemberObserved, VendorError>;
    /// Carries out one change decided from `observed`.
    async fn change_member(
        &self,
        desired: &MemberDesired,
        observed: &MemberObserved,
        change: &MemberChange,
    ) -> Result<(), VendorError>;
    /// Removes what the vendor holds (access, or an open invitation); nothing held is success.
    async fn remove_member(&self, org: &str, observed: &MemberObserved) -> Result<(), VendorError>;
}
