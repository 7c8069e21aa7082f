//! Condition types, reasons, and a pure merge that keeps `lastTransitionTime` stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types orgops writes.
pub mod types {
    /// Everything matches the spec.
    pub const READY: &str = "Ready";
    /// The connection exists, may be used by this resource, and its Secret can be read.
    pub const CONNECTION_READY: &str = "ConnectionReady";
    /// The endpoint is on the operator's allow-list (or the connection is a cluster one).
    pub const ENDPOINT_ALLOWED: &str = "EndpointAllowed";
    /// The credentials Secret exists, has the keys the vendor needs, and the vendor accepts them.
    pub const CREDENTIALS_VALID: &str = "CredentialsValid";
    /// The organization exists at the vendor (created or adopted).
    pub const CREATED: &str = "Created";
    /// Name and vendor settings match the spec.
    pub const SETTINGS_SYNCED: &str = "SettingsSynced";
    /// Every template object has a matching copy.
    pub const TEMPLATE_COPIED: &str = "TemplateCopied";
    /// The spec asks for something the vendor cannot do.
    pub const UNSUPPORTED: &str = "Unsupported";
}

/// A condition as the engine decides it, before timestamps and generations are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSpec {
    /// One of [`types`].
    pub type_: &'static str,
    /// `true` → "True".
    pub status: bool,
    /// CamelCase machine-readable reason.
    pub reason: String,
    /// Sentence a human can act on.
    pub message: String,
}

impl ConditionSpec {
    /// A condition with the given type, status, reason and message.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The `Ready` condition among `specs`, if any.
pub fn ready_of(specs: &[ConditionSpec]) -> Option<&ConditionSpec> {
    specs.iter().find(|c| c.type_ == types::READY)
}

/// Merges `wanted` into `existing`: a condition whose status did not change keeps its
/// `lastTransitionTime`; conditions of types not in `wanted` are kept as they are.
pub fn merge(
    existing: &[Condition],
    wanted: &[ConditionSpec],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.type_ == c.type_))
        .cloned()
        .collect();
    for w in wanted {
        let status = if w.status { "True" } else { "False" }.to_string();
        let previous = existing.iter().find(|c| c.type_ == w.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(now),
        };
        out.push(Condition {
            type_: w.type_.to_string(),
            status,
            reason: w.reason.clone(),
            message: w.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// True when both lists say the same thing, ignoring `lastTransitionTime` and order.
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.observed_generation,
        )
    };
    let mut ka: Vec<_> = a.iter().map(key).collect();
    let mut kb: Vec<_> = b.iter().map(key).collect();
    ka.sort();
    kb.sort();
    ka == kb
}

/// The status of a condition type, if present.
pub fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge(
            &[],
            &[ConditionSpec::new(types::READY, false, "Copying", "1/2")],
            Some(1),
            t(100),
        );
        let second = merge(
            &first,
            &[ConditionSpec::new(types::READY, false, "Copying", "2/2")],
            Some(1),
            t(200),
        );
        assert_eq!(second[0].last_transition_time, Time(t(100)));
        assert_eq!(second[0].message, "2/2");
        let third = merge(
            &second,
            &[ConditionSpec::new(types::READY, true, "Ready", "done")],
            Some(2),
            t(300),
        );
        assert_eq!(third[0].last_transition_time, Time(t(300)));
        assert_eq!(third[0].observed_generation, Some(2));
    }

    #[test]
    fn other_types_are_kept_and_no_duplicates() {
        let a = merge(
            &[],
            &[
                ConditionSpec::new(types::READY, false, "A", ""),
                ConditionSpec::new(types::CREATED, true, "B", ""),
            ],
            None,
            t(1),
        );
        let b = merge(
            &a,
            &[ConditionSpec::new(types::READY, true, "C", "")],
            None,
            t(2),
        );
        assert_eq!(b.len(), 2);
        assert_eq!(status_of(&b, types::CREATED), Some("True"));
        assert_eq!(status_of(&b, types::READY), Some("True"));
    }

    #[test]
    fn time_insensitive_comparison() {
        let a = merge(
            &[],
            &[ConditionSpec::new(types::READY, true, "R", "m")],
            None,
            t(1),
        );
        let mut b = a.clone();
        b[0].last_transition_time = Time(t(99));
        assert!(same_ignoring_time(&a, &b));
        b[0].message = "other".into();
        assert!(!same_ignoring_time(&a, &b));
    }
}
