//! Rossum (Elis API v1): typed client, wire models, deep-copy kinds and the
//! [`VendorClient`](crate::vendors::VendorClient) implementation.
//!
//! Credentials Secret keys: `username` and `password` of an organization-group admin
//! (plus `createKey` to create organizations), or a `token`.

pub mod client;
pub mod kinds;
mod members;
pub mod models;
mod vendor;

pub use client::{DEFAULT_ENDPOINT, DOCUMENTED_RATE_LIMIT, PUBLIC_ENDPOINTS, RossumClient};
pub use vendor::CAPABILITIES;
