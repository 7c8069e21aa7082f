//! The built-in seed: users, one global admin, and a template organization set up through the
//! same operations (and so the same side effects) as API calls.

use serde_json::json;

use super::state::{ROLE_CLASS, State};

/// Subject of the seeded global admin (the template org's creator).
pub const ADMIN_SUBJECT: &str = "auth0|orgops-admin";
/// Subject of the seeded non-admin user (a plain member of the template org).
pub const USER_SUBJECT: &str = "auth0|orgops-user";
/// The template organization's id (fixed, so scripts and docs can name it).
pub const TEMPLATE_ORG_ID: &str = "4f0c6a3e-9b2d-4c71-8e5a-2d6b9f1c3a70";
/// The template organization's principal id (its unique name).
pub const TEMPLATE_ORG_NAME: &str = "orgops-template";
/// The template organization's title.
pub const TEMPLATE_ORG_TITLE: &str = "Template org";

/// Seeded users: subject, e-mail, given name, family name.
pub const USERS: &[(&str, &str, &str, &str)] = &[
    (ADMIN_SUBJECT, "admin@orgops.example", "Olive", "Admin"),
    (USER_SUBJECT, "user@orgops.example", "Uma", "User"),
    (
        "google-oauth2|104729384756102938475",
        "alice@orgops.example",
        "Alice",
        "Analyst",
    ),
    (
        "auth0|5f3c2b1a9d8e7f6a5b4c3d2e",
        "bob@orgops.example",
        "Bob",
        "Reviewer",
    ),
    (
        "samlp|orgops|carol",
        "carol@orgops.example",
        "Carol",
        "Steward",
    ),
];

/// A grant: type and mappings.
type GrantSeed = (&'static str, &'static [&'static str]);

/// Template roles: title, description, grant.
const ROLES: &[(&str, &str, Option<GrantSeed>)] = &[
    (
        "Analyst",
        "Reads and explores the organization's data sets.",
        Some(("Manual", &[])),
    ),
    (
        "Reviewer",
        "Reviews data before it is shared outside the organization.",
        Some(("EmailDomain", &["@orgops.example"])),
    ),
    (
        "Data steward",
        "Owns data quality and the organization's data dictionary.",
        None,
    ),
];

/// Template members (by index into [`USERS`]) and their roles (by title).
const MEMBERS: &[(usize, &[&str])] = &[(2, &["Analyst"]), (3, &["Analyst", "Reviewer"]), (1, &[])];

/// Loads the seed into an empty state; the counters are zero afterwards.
pub fn load(st: &mut State, extra_admins: &[String]) -> Result<(), String> {
    for (subject, email, given, family) in USERS {
        st.add_user(subject, Some(email), given, family);
    }
    st.admins.insert(ADMIN_SUBJECT.to_string());
    st.admins.extend(extra_admins.iter().cloned());
    let admin = st.caller(ADMIN_SUBJECT, None);
    let fail = |what: &str, e: super::error::ApiError| format!("seeding {what}: {e:?}");
    let org = st
        .create_org(
            &admin,
            &json!({
                "id": TEMPLATE_ORG_ID,
                "principal": {"type": "ORGANIZATION", "id": TEMPLATE_ORG_NAME},
                "title": TEMPLATE_ORG_TITLE,
                "description": "Set up once; every tenant organization is copied from it.",
                "emailDomains": ["orgops.example", "tenants.orgops.example"],
                "members": [], "roles": [], "apps": [], "connections": [], "grants": {},
            }),
        )
        .map_err(|e| fail("the template org", e))?;
    let mut role_ids = Vec::new();
    for (title, description, grant) in ROLES {
        let id = st
            .create_role(
                &admin,
                &json!({
                    "@class": ROLE_CLASS,
                    "organizationId": org,
                    "principal": {"type": "ROLE", "id": format!("{org}|{title}")},
                    "title": title,
                    "description": description,
                }),
            )
            .map_err(|e| fail(title, e))?;
        if let Some((grant_type, mappings)) = grant {
            st.set_role_grant(
                &admin,
                &org,
                &id,
                &json!({"grantType": grant_type, "mappings": mappings}),
            )
            .map_err(|e| fail(title, e))?;
        }
        role_ids.push((*title, id));
    }
    for (user, roles) in MEMBERS {
        let subject = USERS[*user].0;
        st.add_member(&admin, &org, subject)
            .map_err(|e| fail(subject, e))?;
        for title in *roles {
            if let Some((_, id)) = role_ids.iter().find(|(t, _)| t == title) {
                st.add_role_member(&admin, &org, id, subject)
                    .map_err(|e| fail(subject, e))?;
            }
        }
    }
    st.reset_counters();
    Ok(())
}
