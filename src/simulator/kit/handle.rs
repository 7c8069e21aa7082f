//! [`SimulatorHandle`]: what a cross-vendor test needs from any running simulator.
//!
//! Object ids are strings for every vendor (Rossum's numeric ids in decimal). Kinds are the
//! simulator's own collection names (listed by [`SimulatorHandle::kinds`]); objects come back
//! as the simulator stores them, which for most kinds is the vendor's wire shape.

use serde_json::Value;

use crate::simulator::{FaultSpec, ServeStats};

use super::store::{StoreError, WriteCounts};

/// Why a hand edit did nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandError {
    /// The simulator has no such kind.
    #[error("the {vendor} simulator has no kind {kind:?}")]
    UnknownKind {
        /// Vendor.
        vendor: &'static str,
        /// Kind asked for.
        kind: String,
    },
    /// No object of that kind has that id.
    #[error("no {kind} object with id {id:?}")]
    NotFound {
        /// Kind.
        kind: String,
        /// Id.
        id: String,
    },
    /// The edit itself is unusable (a patch that is not a JSON object, an id that cannot be
    /// one).
    #[error("{0}")]
    Invalid(String),
}

impl From<StoreError> for HandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => HandError::NotFound { kind, id },
            other => HandError::Invalid(other.to_string()),
        }
    }
}

/// `kind` as one of a simulator's `kinds`, or [`HandError::UnknownKind`].
pub fn known_kind(
    vendor: &'static str,
    kinds: &[&'static str],
    kind: &str,
) -> Result<&'static str, HandError> {
    kinds
        .iter()
        .copied()
        .find(|k| *k == kind)
        .ok_or_else(|| HandError::UnknownKind {
            vendor,
            kind: kind.to_string(),
        })
}

/// A running vendor simulator, seen by a test that works for every vendor: count what the
/// vendor was asked to do, read its objects, change them behind the client's back, inject
/// faults. Object-safe: tests hold a `Box<dyn SimulatorHandle>`.
pub trait SimulatorHandle: Send + Sync {
    /// The vendor's name as `orgops simulate --vendor` spells it (`rossum`, `openlattice`, …).
    fn vendor(&self) -> &'static str;

    /// The base URL a client is configured with.
    fn base_url(&self) -> &str;

    /// Transport counters (requests, injected faults, dropped responses, throttling).
    fn stats(&self) -> &ServeStats;

    /// Mutating requests the vendor API received so far, whatever their outcome (every method
    /// but GET, log-in calls excluded): "re-applying writes nothing" means this does not move.
    fn total_writes(&self) -> u64;

    /// Objects of `kind` created, updated and deleted through the API so far; `None` when this
    /// simulator does not count per kind.
    fn writes(&self, kind: &str) -> Option<WriteCounts>;

    /// The simulator's object kinds (what [`SimulatorHandle::objects`] accepts).
    fn kinds(&self) -> Vec<&'static str>;

    /// The id of the organization whose name (or title) is `name`.
    fn org_id(&self, name: &str) -> Option<String>;

    /// The ids of every organization whose name (or title) is `name`, in creation order: a
    /// test that provokes lost responses checks that no organization was made twice.
    fn org_ids(&self, name: &str) -> Vec<String>;

    /// Objects of `kind` owned by organization `org`, in creation order.
    fn objects(&self, kind: &str, org: &str) -> Result<Vec<Value>, HandError>;

    /// Changes object `id` of `kind` by hand (JSON merge patch; `null` removes a key), as
    /// someone using the vendor's UI would: nothing is counted as an API write.
    fn patch_object(&self, kind: &str, id: &str, patch: &Value) -> Result<(), HandError>;

    /// Deletes object `id` of `kind` by hand; nothing is counted as an API write.
    fn delete_object(&self, kind: &str, id: &str) -> Result<(), HandError>;

    /// Replaces the injected faults for requests that arrive from now on.
    fn set_faults(&self, faults: FaultSpec);
}
