//! The engine's view of an `Organization`: converted once, at the boundary, from the CRD type.

use std::time::Duration;

use serde_json::Value;

use crate::api::{self, Organization, Vendor};
use crate::vendors::{OrgDesired, Owner};

/// How the engine may act on the vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Observe and change what differs.
    Apply,
    /// Observe and report drift only (`suspend: true`).
    ObserveOnly,
}

/// Which organization is the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateSelector {
    /// By the vendor's id.
    Id(String),
    /// By display name (must match exactly one visible org).
    Name(String),
}

/// What to copy from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSpec {
    /// The template organization.
    pub selector: TemplateSelector,
    /// Kinds to copy; `None` = every kind the vendor supports.
    pub include: Option<Vec<String>>,
}

/// The desired organization, vendor-neutral.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredOrg {
    /// Owner written into markers (`namespace/name`, uid).
    pub owner: Owner,
    /// `metadata.generation`, echoed in conditions.
    pub generation: Option<i64>,
    /// The vendor.
    pub vendor: Vendor,
    /// Display name.
    pub display_name: String,
    /// Adopt this org instead of creating one.
    pub external_id: Option<String>,
    /// Template to copy.
    pub template: Option<TemplateSpec>,
    /// The vendor's settings block, or `null`.
    pub settings: Value,
    /// Apply or observe only.
    pub mode: Mode,
    /// Drift re-check period.
    pub sync_interval: Duration,
}

impl DesiredOrg {
    /// The part of the desired state a vendor client needs for org-level operations.
    pub fn org_desired(&self) -> OrgDesired {
        OrgDesired {
            owner: self.owner.clone(),
            display_name: self.display_name.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// A spec the engine cannot act on, with the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct InvalidSpec {
    /// JSON path of the field, e.g. `spec.template`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Parses a Go-style duration such as `10m`, `1h30m`, `45s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let (unit, secs) = if let Some(r) = rest.strip_prefix("ms") {
            (r, 0.001)
        } else if let Some(r) = rest.strip_prefix('s') {
            (r, 1.0)
        } else if let Some(r) = rest.strip_prefix('m') {
            (r, 60.0)
        } else if let Some(r) = rest.strip_prefix('h') {
            (r, 3600.0)
        } else {
            return None;
        };
        total += value * secs;
        rest = unit;
    }
    Some(Duration::from_secs_f64(total))
}

impl DesiredOrg {
    /// Converts a resource, checking what the schema cannot (the same rules the API server's
    /// CEL checks, for the CLI path that has no API server).
    pub fn from_resource(org: &Organization) -> Result<Self, InvalidSpec> {
        let name = org
            .metadata
            .name
            .clone()
            .ok_or_else(|| invalid("metadata.name", "is required"))?;
        let namespace = org
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let spec = &org.spec;
        if spec.display_name.trim().is_empty() {
            return Err(invalid("spec.displayName", "must not be empty"));
        }
        let template = match &spec.template {
            None => None,
            Some(t) => {
                let selector = match (&t.external_id, &t.display_name) {
                    (Some(id), None) => TemplateSelector::Id(id.clone()),
                    (None, Some(n)) => TemplateSelector::Name(n.clone()),
                    _ => {
                        return Err(invalid(
                            "spec.template",
                            "set exactly one of externalId or displayName",
                        ));
                    }
                };
                Some(TemplateSpec {
                    selector,
                    include: t.include.clone(),
                })
            }
        };
        let sync_interval = match &spec.sync_interval {
            None => api::DEFAULT_SYNC_INTERVAL,
            Some(s) => parse_duration(s).ok_or_else(|| {
                invalid(
                    "spec.syncInterval",
                    format!("{s:?} is not a duration like 10m or 1h30m"),
                )
            })?,
        };
        let settings = spec
            .settings
            .as_ref()
            .and_then(|s| match spec.vendor {
                Vendor::Rossum => s.rossum.as_ref().map(serde_json::to_value),
                Vendor::Dataloop => s.dataloop.as_ref().map(serde_json::to_value),
                Vendor::RenderedAi => s.renderedai.as_ref().map(serde_json::to_value),
                Vendor::OpenLattice => s.openlattice.as_ref().map(serde_json::to_value),
            })
            .transpose()
            .map_err(|e| invalid("spec.settings", e.to_string()))?
            .unwrap_or(Value::Null);
        Ok(Self {
            owner: Owner {
                key: format!("{namespace}/{name}"),
                uid: org.metadata.uid.clone(),
            },
            generation: org.metadata.generation,
            vendor: spec.vendor,
            display_name: spec.display_name.clone(),
            external_id: spec.external_id.clone(),
            template,
            settings,
            mode: if spec.suspend {
                Mode::ObserveOnly
            } else {
                Mode::Apply
            },
            sync_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
