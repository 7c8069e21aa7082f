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
    /// Secret name per template object (`kind/name`) whose copy takes write-only values.
    pub secrets: std::collections::BTreeMap<String, String>,
    /// Delete marked copies whose template object is gone (`spec.template.prune`).
    pub prune: bool,
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

/// The shortest `spec.syncInterval` the CRD admits. The operator's own floor
/// (`--min-sync-interval`, [`DEFAULT_MIN_SYNC_INTERVAL`]) is what keeps a few tenants' drift
/// checks from using up a shared connection's rate limit; the engine clamps what is stored.
pub const MIN_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The operator's default floor for drift checks: an in-sync reconcile still costs a login
/// check, the org and one list per copied kind, so a few tenants at 2s would use up a shared
/// connection's rate limit.
pub const DEFAULT_MIN_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// The longest `spec.syncInterval`: drift is noticed at least once a day, and a timer never
/// holds an absurd deadline. The CRD rejects more; the engine clamps what is stored anyway.
pub const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The longest `spec.syncInterval` text the CRD admits (`maxLength`).
pub const MAX_SYNC_INTERVAL_TEXT: usize = 32;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a Go-style duration such as `10m`, `1h30m`, `45s`, `500ms`, `1.5h` (units `ms`, `s`,
/// `m`, `h`; every number starts with a digit). Exact and panic-free: `None` for anything else,
/// including values too large for a [`Duration`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    let nanos = parse_nanos(s)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    // The remainder is below 10^9, so it fits.
    let sub = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, sub))
}

/// Whether `s` has the shape of a duration (whatever its size): `([0-9]+(\.[0-9]+)?(ms|s|m|h))+`.
fn is_duration_syntax(s: &str) -> bool {
    components(s).is_some()
}

/// `(integer digits, fraction digits, nanoseconds per unit)` of each component, or `None` when
/// `s` is not a duration.
fn components(s: &str) -> Option<Vec<(&str, &str, u128)>> {
    let mut out = Vec::new();
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if int_len == 0 {
            return None;
        }
        let (int, tail) = rest.split_at(int_len);
        let (frac, tail) = match tail.strip_prefix('.') {
            Some(t) => {
                let len = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                if len == 0 {
                    return None;
                }
                t.split_at(len)
            }
            None => ("", tail),
        };
        let (unit, tail) = if let Some(t) = tail.strip_prefix("ms") {
            (1_000_000, t)
        } else if let Some(t) = tail.strip_prefix('s') {
            (NANOS_PER_SEC, t)
        } else if let Some(t) = tail.strip_prefix('m') {
            (60 * NANOS_PER_SEC, t)
        } else if let Some(t) = tail.strip_prefix('h') {
            (3600 * NANOS_PER_SEC, t)
        } else {
            return None;
        };
        out.push((int, frac, unit));
        rest = tail;
    }
    Some(out)
}

/// Total nanoseconds, with checked arithmetic (`None` on overflow or bad syntax).
fn parse_nanos(s: &str) -> Option<u128> {
    let mut total: u128 = 0;
    for (int, frac, unit) in components(s)? {
        let whole: u128 = int.parse().ok()?;
        // Digits past nanosecond precision of an hour (13) cannot change the result.
        let frac = &frac[..frac.len().min(18)];
        let part = if frac.is_empty() {
            0
        } else {
            let digits: u128 = frac.parse().ok()?;
            digits.checked_mul(unit)? / 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?
        };
        total = total
            .checked_add(whole.checked_mul(unit)?)?
            .checked_add(part)?;
    }
    Some(total)
}

/// The shape the CRD's `syncInterval` pattern admits: a duration with at most 5 integer digits
/// per number, which keeps every duration the API server's CEL rule evaluates far from
/// overflow.
pub fn has_sync_interval_shape(s: &str) -> bool {
    components(s).is_some_and(|parts| parts.iter().all(|(int, ..)| int.len() <= 5))
}

/// `spec.syncInterval` as the API server admits it (the CRD's pattern, `maxLength` and CEL
/// bounds): the duration, or why the value is refused. `orgops apply` uses this, so bad input is
/// refused there exactly as `kubectl apply` would be.
pub fn check_sync_interval(s: &str) -> Result<Duration, String> {
    const BOUNDS: &str = "syncInterval must be between 1s and 24h";
    if s.chars().count() > MAX_SYNC_INTERVAL_TEXT {
        return Err(format!(
            "is longer than {MAX_SYNC_INTERVAL_TEXT} characters; {BOUNDS}"
        ));
    }
    if !is_duration_syntax(s) {
        return Err("is not a duration like 10m or 1h30m (units ms, s, m, h)".to_string());
    }
    if !has_sync_interval_shape(s) {
        return Err(format!("has a number with more than 5 digits; {BOUNDS}"));
    }
    match parse_duration(s) {
        Some(d) if d < MIN_SYNC_INTERVAL => Err(format!("is shorter than 1s; {BOUNDS}")),
        Some(d) if d <= MAX_SYNC_INTERVAL => Ok(d),
        _ => Err(format!("is longer than 24h; {BOUNDS}")),
    }
}

/// `spec.syncInterval` for the engine: a value the API server should have refused (stored
/// before the bounds existed) is clamped into [`MIN_SYNC_INTERVAL`, `MAX_SYNC_INTERVAL`] and
/// logged, never a panic; only text that is no duration at all is an error.
fn engine_sync_interval(owner: &str, s: &str) -> Result<Duration, InvalidSpec> {
    if !is_duration_syntax(s) {
        return Err(invalid(
            "spec.syncInterval",
            format!("{s:?} is not a duration like 10m or 1h30m"),
        ));
    }
    // Syntax is fine, so `None` means too large for a Duration: the ceiling applies.
    let parsed = parse_duration(s).unwrap_or(Duration::MAX);
    let clamped = parsed.clamp(MIN_SYNC_INTERVAL, MAX_SYNC_INTERVAL);
    if clamped != parsed {
        tracing::warn!(
            organization = owner,
            sync_interval = s,
            used = ?clamped,
            "spec.syncInterval is outside 1s..24h; using the nearest bound"
        );
    }
    Ok(clamped)
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
                let mut secrets = std::collections::BTreeMap::new();
                for (i, entry) in t.secrets.iter().enumerate() {
                    let field = format!("spec.template.secrets[{i}].object");
                    match entry.object.split_once('/') {
                        Some((kind, name)) if !kind.is_empty() && !name.trim().is_empty() => {}
                        _ => return Err(invalid(&field, "must be <kind>/<name>")),
                    }
                    if secrets
                        .insert(entry.object.clone(), entry.secret_ref.name.clone())
                        .is_some()
                    {
                        return Err(invalid(&field, "names the same object twice"));
                    }
                }
                Some(TemplateSpec {
                    selector,
                    include: t.include.clone(),
                    secrets,
                    prune: t.prune,
                })
            }
        };
        let sync_interval = match &spec.sync_interval {
            None => api::DEFAULT_SYNC_INTERVAL,
            Some(s) => engine_sync_interval(&format!("{namespace}/{name}"), s)?,
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
        assert_eq!(parse_duration("0.25h"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration(".5s"), None);
        assert_eq!(parse_duration("1.s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration(" 1s"), None);
        assert_eq!(parse_duration("1s\u{0}"), None);
        assert_eq!(parse_duration("١s"), None, "non-ASCII digits");
    }

    #[test]
    fn absurd_durations_are_none_not_a_panic() {
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(parse_duration(&format!("{}h", "9".repeat(400))), None);
        assert_eq!(parse_duration(&"5124095576030431h".repeat(2)), None);
        assert_eq!(
            parse_duration(&format!("1.{}s", "9".repeat(400))),
            Some(Duration::new(1, 999_999_999))
        );
        // The largest Duration is still exact.
        let max = format!("{}s", u64::MAX);
        assert_eq!(parse_duration(&max), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(
            parse_duration(&format!("{max}999ms")),
            Some(Duration::new(u64::MAX, 999_000_000))
        );
        assert_eq!(parse_duration(&format!("{max}1s")), None);
    }

    #[test]
    fn the_api_server_bounds_sync_interval() {
        assert_eq!(check_sync_interval("1s"), Ok(MIN_SYNC_INTERVAL));
        assert_eq!(check_sync_interval("24h"), Ok(MAX_SYNC_INTERVAL));
        assert_eq!(check_sync_interval("1h30m"), Ok(Duration::from_secs(5400)));
        for (bad, why) in [
            ("0s", "shorter than 1s"),
            ("999ms", "shorter than 1s"),
            ("24h1ms", "longer than 24h"),
            ("99999999999999999999h", "more than 5 digits"),
            ("86400000ms", "more than 5 digits"),
            (
                "1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h",
                "longer than 32 characters",
            ),
            ("soon", "not a duration"),
            ("", "not a duration"),
        ] {
            let e = check_sync_interval(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    fn org(sync_interval: &str) -> Organization {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "de", "namespace": "t"},
            "spec": {"vendor": "rossum", "displayName": "DE",
                     "connectionRef": {"name": "c"}, "syncInterval": sync_interval}
        }))
        .unwrap()
    }

    #[test]
    fn the_engine_clamps_stored_out_of_range_intervals() {
        let interval = |s: &str| DesiredOrg::from_resource(&org(s)).map(|d| d.sync_interval);
        assert_eq!(interval("99999999999999999999h"), Ok(MAX_SYNC_INTERVAL));
        assert_eq!(interval("48h"), Ok(MAX_SYNC_INTERVAL));
        assert_eq!(interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(interval("0s"), Ok(MIN_SYNC_INTERVAL));
        assert_eq!(interval("10ms"), Ok(MIN_SYNC_INTERVAL));
        assert_eq!(interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(interval("soon").unwrap_err().field, "spec.syncInterval");
    }

    #[test]
    fn the_crd_states_the_same_bounds() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_string(&Organization::crd()).unwrap();
        for needle in [
            "duration('1s')",
            "duration('24h')",
            &format!("\"maxLength\":{MAX_SYNC_INTERVAL_TEXT}"),
        ] {
            assert!(crd.contains(needle), "the CRD lacks {needle}");
        }
        assert_eq!(MIN_SYNC_INTERVAL, Duration::from_secs(1));
        assert_eq!(MAX_SYNC_INTERVAL, Duration::from_secs(24 * 3600));
    }
}
