//! OpenLattice (`/datastore/organizations` REST API, Bearer Auth0 JWT): wire models and the
//! typed client. The [`VendorClient`](crate::vendors::VendorClient) implementation comes with
//! the reworked vendor contract.
//!
//! Credentials Secret key: `token`, an Auth0 JWT (with or without `Bearer `); e-mail domain
//! writes need a global admin's.

pub mod client;
pub mod models;

pub use client::{
    CreateOutcome, DEFAULT_ENDPOINT, OpenLatticeApi, organization_id, role_id, user_segment,
};
