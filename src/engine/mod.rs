//! The vendor-neutral engine: pure decisions over [`VendorClient`](crate::vendors::VendorClient)
//! plus thin executors. It knows nothing of Kubernetes clients: the CLI and the controller
//! convert resources with [`DesiredOrg::from_resource`] and persist what a [`Sink`] receives.
//!
//! - [`desired`]: the engine's view of a resource.
//! - [`org`]: organization reconcile (observe → create or adopt → settings → copy → report).
//! - [`copy`]: deep copy (kind graph, per-object plans, executor).
//! - [`report`]: conditions, phase and requeue from what happened.
//! - [`changes`]: what an observe-only reconcile would change (`orgops plan`).
//! - [`usage`]: usage in status, read on its own slower clock.

pub mod changes;
pub mod copy;
pub mod desired;
pub mod membership;
pub mod org;
pub mod report;
pub mod status;
pub mod usage;

pub use desired::{DesiredOrg, InvalidSpec, Mode, TemplateSelector, TemplateSpec};
pub use org::{EngineOptions, OrgState, PendingCreate, Sink, reconcile_org};
pub use report::{OrgReport, Requeue, Step};
