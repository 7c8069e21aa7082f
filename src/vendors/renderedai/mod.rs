//! Rendered.ai (the platform's GraphQL API, `https://api.rendered.ai/graphql`): wire models and
//! operations, the typed client, and the [`VendorClient`](crate::vendors::VendorClient) over
//! them.
//!
//! Credentials Secret keys: `apiKey` (header `apikey`), or `email` + `password` (`signIn`;
//! the session is renewed before it expires). Organizations are adopted, never created: they
//! come from Rendered.ai sign-up.

pub mod client;
pub mod models;
pub mod vendor;
pub mod volume_data;

pub use client::{DEFAULT_ENDPOINT, DEFAULT_RATE, PUBLIC_ENDPOINTS, RenderedAiApi};
pub use vendor::{CAPABILITIES, RenderedAiClient};
