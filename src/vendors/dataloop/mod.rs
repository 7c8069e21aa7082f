//! Dataloop (the gate's REST API, `https://gate.dataloop.ai/api/v1`, Bearer JWT): wire models,
//! the typed client, and the [`VendorClient`](crate::vendors::VendorClient) over them.
//!
//! Credentials Secret keys: `username` + `password` (the M2M login; tokens are renewed before
//! they expire), or `apiKey` (a JWT used as it is until it expires). Organizations are adopted,
//! never created: plan changes need a Dataloop superuser, member and cache changes an
//! organization owner.

pub mod client;
pub mod models;
pub mod vendor;

pub use client::{DEFAULT_ENDPOINT, DEFAULT_RATE, DataloopApi, PUBLIC_ENDPOINTS};
pub use vendor::{CAPABILITIES, DataloopClient};
