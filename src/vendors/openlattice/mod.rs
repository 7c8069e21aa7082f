//! OpenLattice (`/datastore/organizations` REST API, Bearer Auth0 JWT): wire models, the typed
//! client, and the [`VendorClient`](crate::vendors::VendorClient) over them.
//!
//! Credentials Secret key: `token`, an Auth0 JWT (with or without `Bearer `); e-mail domain
//! writes need a global admin's.

pub mod client;
pub mod models;
pub mod vendor;

pub use client::{
    CreateOutcome, DEFAULT_ENDPOINT, OpenLatticeApi, organization_id, role_id, search_email,
    user_segment,
};
pub use vendor::{CAPABILITIES, OpenLatticeClient};
