//! [`SimulatorHandle`] for the Rossum simulator, over its public API (`with_db`, `objects`,
//! `org_id`), until the Rossum simulator is ported onto the kit's store. It does not count
//! writes per kind ([`SimulatorHandle::writes`] is `None`); its total is the database's count
//! of mutating requests.

use serde_json::Value;

use super::kit::{HandError, SimulatorHandle, WriteCounts};
use super::rossum::RossumSimulator;
use super::{FaultSpec, ServeStats};

/// Kinds the Rossum simulator stores (its `db.rs` keeps them by these names).
const KINDS: &[&str] = &[
    "organizations",
    "users",
    "groups",
    "memberships",
    "workspaces",
    "schemas",
    "connectors",
    "queues",
    "inboxes",
    "hooks",
    "email_templates",
    "labels",
    "rules",
    "triggers",
];

fn kind_of(kind: &str) -> Result<&'static str, HandError> {
    KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .ok_or_else(|| HandError::UnknownKind {
            vendor: "rossum",
            kind: kind.to_string(),
        })
}

fn numeric(what: &str, id: &str) -> Result<u64, HandError> {
    id.parse()
        .map_err(|_| HandError::Invalid(format!("Rossum {what} ids are numbers, not {id:?}")))
}

impl SimulatorHandle for RossumSimulator {
    fn vendor(&self) -> &'static str {
        "rossum"
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn stats(&self) -> &ServeStats {
        &self.running.stats
    }

    fn total_writes(&self) -> u64 {
        self.with_db(|db| db.writes)
    }

    fn writes(&self, _kind: &str) -> Option<WriteCounts> {
        None
    }

    fn kinds(&self) -> Vec<&'static str> {
        KINDS.to_vec()
    }

    fn org_id(&self, name: &str) -> Option<String> {
        RossumSimulator::org_id(self, name).map(|id| id.to_string())
    }

    fn org_ids(&self, name: &str) -> Vec<String> {
        self.with_db(|db| {
            let mut ids: Vec<u64> = db
                .kinds
                .get("organizations")
                .into_iter()
                .flatten()
                .filter(|(_, r)| r.value["name"].as_str() == Some(name))
                .map(|(id, _)| *id)
                .collect();
            // Ids are handed out in increasing order: sorted is creation order.
            ids.sort_unstable();
            ids.into_iter().map(|id| id.to_string()).collect()
        })
    }

    fn objects(&self, kind: &str, org: &str) -> Result<Vec<Value>, HandError> {
        let kind = kind_of(kind)?;
        Ok(RossumSimulator::objects(
            self,
            kind,
            numeric("organization", org)?,
        ))
    }

    fn patch_object(&self, kind: &str, id: &str, patch: &Value) -> Result<(), HandError> {
        let kind = kind_of(kind)?;
        let n = numeric(kind, id)?;
        if !patch.is_object() {
            return Err(HandError::Invalid(
                "a patch must be a JSON object (a JSON merge patch)".into(),
            ));
        }
        self.with_db(|db| match db.table(kind).get_mut(&n) {
            Some(rec) => {
                json_patch::merge(&mut rec.value, patch);
                Ok(())
            }
            None => Err(HandError::NotFound {
                kind: kind.into(),
                id: id.into(),
            }),
        })
    }

    fn delete_object(&self, kind: &str, id: &str) -> Result<(), HandError> {
        let kind = kind_of(kind)?;
        let n = numeric(kind, id)?;
        self.with_db(|db| match db.table(kind).remove(&n) {
            Some(_) => Ok(()),
            None => Err(HandError::NotFound {
                kind: kind.into(),
                id: id.into(),
            }),
        })
    }

    fn set_faults(&self, faults: FaultSpec) {
        self.running.set_faults(faults);
    }
}
