//! The simulator kit: vendor-neutral pieces every vendor simulator builds on, so that a new
//! simulator is its routes, its rules and its wire shapes, and nothing else.
//!
//! | piece | what it gives |
//! |---|---|
//! | [`store`] | collections by kind of JSON objects with string ids, each owned by an org; id generation; write counters per kind; hand edits for tests |
//! | [`auth`] | bearer and header token extraction, a token registry (token → principal, optional expiry), unsigned and HS256-signed JWTs, a vendor-rendered 401 |
//! | [`paging`] | the three pagination styles vendors use: page/page_size with absolute links (Rossum), pageOffset/pageSize/hasNextPage (Dataloop), cursor/limit (Rendered.ai) |
//! | [`http`] | path segments with percent-decoding, media types, query pairs |
//! | [`ids`] | UUID-shaped ids |
//! | [`handle`] | [`SimulatorHandle`], the one interface tests use to count and hand-edit any vendor's objects |
//!
//! The transport (a loopback listener with injected faults, latency and a rate limit) is
//! [`crate::simulator::serve`]; every simulator runs behind it.

pub mod auth;
pub mod handle;
pub mod http;
pub mod ids;
pub mod paging;
pub mod store;

pub use handle::{HandError, SimulatorHandle};
pub use store::{IdStyle, Record, Store, StoreError, WriteCounts};
