//! [`SimulatorHandle`] for the Rossum simulator: its kinds, per-kind write counters and hand
//! edits come from its store (ids are Rossum's integers, in decimal).

use serde_json::Value;

use super::kit::{HandError, SimulatorHandle, WriteCounts};
use super::rossum::RossumSimulator;
use super::rossum::kinds;
use super::{FaultSpec, ServeStats};

fn kind_of(kind: &str) -> Result<&'static str, HandError> {
    kinds::rules(kind)
        .map(|k| k.name())
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
        self.with_db(|db| db.write_requests())
    }

    fn writes(&self, kind: &str) -> Option<WriteCounts> {
        let kind = kind_of(kind).ok()?;
        Some(self.with_db(|db| db.writes(kind)))
    }

    fn kinds(&self) -> Vec<&'static str> {
        kinds::names()
    }

    fn org_id(&self, name: &str) -> Option<String> {
        RossumSimulator::org_id(self, name).map(|id| id.to_string())
    }

    fn org_ids(&self, name: &str) -> Vec<String> {
        RossumSimulator::org_ids(self, name)
            .into_iter()
            .map(|id| id.to_string())
            .collect()
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
        Ok(self.with_db(|db| db.hand_patch(kind, n, patch))?)
    }

    fn delete_object(&self, kind: &str, id: &str) -> Result<(), HandError> {
        let kind = kind_of(kind)?;
        let n = numeric(kind, id)?;
        Ok(self.with_db(|db| db.hand_remove(kind, n))?)
    }

    fn set_faults(&self, faults: FaultSpec) {
        self.running.set_faults(faults);
    }
}
