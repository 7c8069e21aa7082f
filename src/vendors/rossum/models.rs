//! Rossum wire types (Elis API v1). Unknown fields are kept in `extra` so objects round-trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

macro_rules! id_type {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("Id of a Rossum ", stringify!($name), ".")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    OrganizationId,
    UserId,
    GroupId,
    WorkspaceId,
    SchemaId,
    QueueId,
    InboxId,
    HookId,
    ConnectorId,
    EmailTemplateId,
    LabelId,
    RuleId,
    MembershipId,
    OrganizationGroupId
);

/// `POST /auth/login` response.
#[derive(Deserialize)]
pub struct LoginResponse {
    /// The token.
    pub key: String,
}

/// `POST /auth/membership_token` response.
#[derive(Deserialize)]
pub struct MembershipTokenResponse {
    /// The org-scoped token.
    pub key: String,
}

/// The list envelope of every paginated endpoint.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    /// Pagination links and totals.
    pub pagination: Pagination,
    /// This page's objects.
    pub results: Vec<T>,
}

/// `pagination` of a list response.
#[derive(Debug, Deserialize, Serialize)]
pub struct Pagination {
    /// Total objects (present with `include_total=true`).
    #[serde(default)]
    pub total: Option<u64>,
    /// Total pages (present with `include_total=true`).
    #[serde(default)]
    pub total_pages: Option<u64>,
    /// Absolute URL of the next page.
    pub next: Option<String>,
    /// Absolute URL of the previous page.
    pub previous: Option<String>,
}

/// An organization.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Organization {
    /// Id.
    pub id: OrganizationId,
    /// Absolute URL.
    pub url: String,
    /// Name.
    pub name: String,
    /// Owning organization group URL.
    #[serde(default)]
    pub organization_group: Option<String>,
    /// Client-owned metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// UI settings.
    #[serde(default)]
    pub ui_settings: Value,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// First user.
    #[serde(default)]
    pub creator: Option<String>,
    /// Users (URLs).
    #[serde(default)]
    pub users: Vec<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /organizations/create` body.
#[derive(Serialize)]
pub struct CreateOrganization<'a> {
    /// Rossum's template for the new org (`Empty Organization Template`).
    pub template_name: &'a str,
    /// Name.
    pub organization_name: &'a str,
    /// First user's full name.
    pub user_fullname: &'a str,
    /// First user's e-mail (global login).
    pub user_email: &'a str,
    /// The key Rossum issues per organization group.
    pub create_key: &'a str,
}

/// `POST /organizations/create` response.
#[derive(Deserialize)]
pub struct CreatedOrganization {
    /// The new organization.
    pub organization: Organization,
}

/// A user role ("group").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// Id.
    pub id: GroupId,
    /// Absolute URL.
    pub url: String,
    /// Role name (`admin`, `annotator`, …).
    pub name: String,
}

/// A user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Absolute URL.
    pub url: String,
    /// Global login.
    pub username: String,
    /// E-mail.
    #[serde(default)]
    pub email: String,
    /// Primary organization URL.
    pub organization: String,
    /// Role URLs.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Queue URLs.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Active flag.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
}

/// An organization-group membership: a user's access to a non-primary org.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Membership {
    /// Id.
    pub id: MembershipId,
    /// Absolute URL.
    pub url: String,
    /// Membership-form user URL.
    pub user: String,
    /// Membership-form organization URL.
    pub organization: String,
    /// Membership-form queue URLs.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Expiry, `None` = never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

macro_rules! setup_object {
    ($(#[$doc:meta] $name:ident($id:ident) { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? })*) => {$(
        #[$doc]
        #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
        pub struct $name {
            /// Id.
            pub id: $id,
            /// Absolute URL.
            pub url: String,
            $($(#[$fdoc])* #[serde(default)] pub $field: $ty,)*
            /// Every other field, kept verbatim.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }
    )*};
}

setup_object! {
    /// A workspace.
    Workspace(WorkspaceId) {
        /// Name.
        name: String,
        /// Organization URL.
        organization: String,
        /// Client metadata.
        metadata: Map<String, Value>,
    }
    /// A schema (its `content` stays raw JSON: round-tripping through types adds nulls).
    Schema(SchemaId) {
        /// Name.
        name: String,
        /// Section tree.
        content: Value,
        /// Client metadata.
        metadata: Map<String, Value>,
    }
    /// A queue.
    Queue(QueueId) {
        /// Name.
        name: String,
        /// Workspace URL.
        workspace: Option<String>,
        /// Schema URL.
        schema: String,
        /// Inbox URL (set by creating an inbox).
        inbox: Option<String>,
        /// Connector URL.
        connector: Option<String>,
        /// Hook URLs.
        hooks: Vec<String>,
        /// Client metadata.
        metadata: Map<String, Value>,
    }
    /// An inbox.
    Inbox(InboxId) {
        /// Name.
        name: String,
        /// Exactly one queue URL.
        queues: Vec<String>,
        /// Generated address.
        email: String,
        /// Address prefix.
        email_prefix: String,
        /// Client metadata.
        metadata: Map<String, Value>,
    }
    /// A hook (extension).
    Hook(HookId) {
        /// Name.
        name: String,
        /// Queue URLs.
        queues: Vec<String>,
        /// Hooks that must run first.
        run_after: Vec<String>,
        /// Events.
        events: Vec<String>,
        /// Client metadata.
        metadata: Map<String, Value>,
    }
    /// A connector.
    Connector(ConnectorId) {
        /// Name.
        name: String,
        /// Service URL.
        service_url: String,
        /// Client metadata.
        metadata: Map<String, Value>,
    }
    /// An email template.
    EmailTemplate(EmailTemplateId) {
        /// Name.
        name: String,
        /// Queue URL.
        queue: String,
        /// `custom`, `rejection`, `rejection_default`, `email_with_no_processable_attachments`.
        r#type: String,
    }
    /// A label.
    Label(LabelId) {
        /// Name.
        name: String,
        /// Colour.
        color: Option<String>,
    }
    /// A rule.
    Rule(RuleId) {
        /// Name.
        name: String,
        /// Queue URLs.
        queues: Vec<String>,
        /// Actions.
        actions: Vec<Value>,
    }
}
