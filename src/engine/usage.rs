//! Usage, limits and billing in status: read on a slower clock than drift.
//!
//! Drift is checked every sync interval; usage changes slowly and can cost extra requests
//! (Rossum: limits and billing history per organization), so it is read only when due
//! ([`due`]: never read, or read longer than [`EngineOptions::usage_interval`] ago), or when
//! this reconcile changed something it counts (settings patched, copies created). Otherwise the
//! report carries no usage and the status keeps the stored one. What a vendor answers is
//! bounded before it reaches status ([`bounded`], [`summary_line`]).

use std::time::Duration;

use serde_json::{Value, json};

use super::org::{EngineOptions, OrgState};
use super::report::OrgReport;
use crate::vendors::{OrgInfo, VendorClient};

/// Largest usage kept in `status.usage` (serialized JSON). A bigger answer is replaced by a
/// note saying so: status stays small, and a vendor cannot grow the object without bound.
pub const MAX_USAGE_BYTES: usize = 16 * 1024;

/// Longest `status.usageSummary`, in characters.
pub const MAX_SUMMARY_CHARS: usize = 200;

/// Whether usage is due at `now`: never read, read at least `interval` ago, or `interval` is
/// zero (read every reconcile, the CLI). A read time further in the future than `skew` (an
/// edited status or a clock jump) is not trusted, so it cannot hold usage back indefinitely.
/// Pure.
pub fn due(
    observed_at: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    interval: Duration,
    skew: Duration,
) -> bool {
    let Some(at) = observed_at else {
        return true;
    };
    if interval.is_zero() {
        return true;
    }
    let age = now.duration_since(at);
    if age.is_negative() {
        return age.unsigned_abs() > skew;
    }
    age.unsigned_abs() >= interval
}

/// `usage` as status keeps it: itself when its JSON is at most [`MAX_USAGE_BYTES`], else a
/// note with its size. Pure.
pub fn bounded(usage: Value) -> Value {
    let size = serde_json::to_vec(&usage)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size <= MAX_USAGE_BYTES {
        return usage;
    }
    tracing::debug!(
        bytes = size,
        "usage answer over {MAX_USAGE_BYTES} bytes: not kept in status"
    );
    json!({
        "omitted": format!(
            "the vendor's usage answer ({size} bytes) is larger than the {} KiB status keeps",
            MAX_USAGE_BYTES / 1024
        )
    })
}

/// A summary fit for one table cell: control characters become spaces, runs of whitespace
/// collapse, at most [`MAX_SUMMARY_CHARS`] characters (`…` when cut); `None` when empty. Pure.
pub fn summary_line(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let line = words.join(" ");
    if line.is_empty() {
        return None;
    }
    if line.chars().count() <= MAX_SUMMARY_CHARS {
        return Some(line);
    }
    let mut cut: String = line.chars().take(MAX_SUMMARY_CHARS - 1).collect();
    cut.push('…');
    Some(cut)
}

/// Reads usage into `report` when due or changed by this reconcile (see the module docs).
/// A failed read is logged and leaves the stored usage as it is: usage never fails a
/// reconcile.
pub(crate) async fn refresh(
    vendor: &dyn VendorClient,
    org: &OrgInfo,
    state: &OrgState,
    options: &EngineOptions,
    report: &mut OrgReport,
) {
    if vendor.capabilities().usage.is_none() {
        return;
    }
    let changed = report.settings_updated || report.copy.as_ref().is_some_and(|c| c.created > 0);
    let now = jiff::Timestamp::now();
    if !changed
        && !due(
            state.usage_observed_at,
            now,
            options.usage_interval,
            options.clock_skew,
        )
    {
        return;
    }
    // After a change, usage that came with the observed org is stale: read the org again.
    let fresh = match changed && org.usage.is_some() {
        true => match vendor.get_org(&org.id).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(org = %org.id, error = %e, "usage not refreshed");
                return;
            }
        },
        false => None,
    };
    match vendor.usage(fresh.as_ref().unwrap_or(org)).await {
        Ok(usage) => {
            report.usage_summary = usage
                .as_ref()
                .and_then(|u| vendor.usage_summary(u))
                .and_then(|s| summary_line(&s));
            report.usage = usage.map(bounded);
            report.usage_observed_at = Some(now);
        }
        Err(e) => tracing::debug!(org = %org.id, error = %e, "usage not refreshed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const SKEW: Duration = Duration::from_secs(120);

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn usage_never_read_is_due() {
        assert!(due(None, at("2025-01-01T00:00:00Z"), HOUR, SKEW));
    }

    #[test]
    fn usage_read_within_the_interval_is_not_due_and_is_due_after_it() {
        let read = Some(at("2025-01-01T00:00:00Z"));
        assert!(!due(read, at("2025-01-01T00:00:01Z"), HOUR, SKEW));
        assert!(!due(read, at("2025-01-01T00:59:59Z"), HOUR, SKEW));
        assert!(due(read, at("2025-01-01T01:00:00Z"), HOUR, SKEW));
        assert!(due(read, at("2025-01-02T00:00:00Z"), HOUR, SKEW));
    }

    #[test]
    fn a_zero_interval_reads_every_time() {
        let read = Some(at("2025-01-01T00:00:00Z"));
        assert!(due(read, at("2025-01-01T00:00:00Z"), Duration::ZERO, SKEW));
    }

    #[test]
    fn a_read_time_in_the_future_holds_usage_back_only_within_the_skew() {
        let now = at("2025-01-01T00:00:00Z");
        assert!(!due(Some(at("2025-01-01T00:01:00Z")), now, HOUR, SKEW));
        assert!(due(Some(at("2025-01-01T00:03:00Z")), now, HOUR, SKEW));
        assert!(due(Some(at("9999-01-01T00:00:00Z")), now, HOUR, SKEW));
    }

    #[test]
    fn huge_usage_is_replaced_by_a_note() {
        let small = json!({"plan": "free"});
        assert_eq!(bounded(small.clone()), small);
        let huge = json!({"junk": "x".repeat(MAX_USAGE_BYTES)});
        let kept = bounded(huge);
        assert!(
            kept["omitted"].as_str().unwrap().contains("16 KiB"),
            "{kept}"
        );
        assert!(serde_json::to_vec(&kept).unwrap().len() < 200);
    }

    #[test]
    fn summaries_are_one_bounded_line() {
        assert_eq!(summary_line("  a\n\tb\u{7}c  ").as_deref(), Some("a b c"));
        assert_eq!(summary_line(" \n "), None);
        let long = summary_line(&"é".repeat(1000)).unwrap();
        assert_eq!(long.chars().count(), MAX_SUMMARY_CHARS);
        assert!(long.ends_with('…'));
    }
}
