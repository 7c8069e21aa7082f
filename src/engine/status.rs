//! Turns an [`OrgReport`] into the `Organization` status the API serves.

use crate::api::conditions::merge;
use crate::api::{CopyStatus, KindStatus, OrganizationStatus, PlanStatus};
use crate::engine::Mode;
use crate::engine::changes::{PlanSummary, STATUS_LINES};

use super::OrgReport;

/// The status after a reconcile, keeping `lastTransitionTime` of unchanged conditions and the
/// copy's `startedAt` of `previous`.
pub fn organization_status(
    report: &OrgReport,
    previous: Option<&OrganizationStatus>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> OrganizationStatus {
    let old_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let copy = report.copy.as_ref().map(|c| {
        let t = c.totals();
        CopyStatus {
            total: t.total,
            done: t.done,
            failed: t.failed,
            kinds: c
                .kinds
                .iter()
                .map(|(k, p)| {
                    (
                        (*k).to_string(),
                        KindStatus {
                            total: p.total,
                            done: p.done,
                            failed: p.failed,
                        },
                    )
                })
                .collect(),
            started_at: previous
                .and_then(|p| p.copy.as_ref())
                .and_then(|c| c.started_at.clone())
                .or_else(|| Some(now.to_string())),
            completed_at: (t.done == t.total && t.failed == 0).then(|| now.to_string()),
        }
    });
    OrganizationStatus {
        observed_generation: generation,
        external_id: report
            .external_id
            .clone()
            .or_else(|| previous.and_then(|p| p.external_id.clone())),
        phase: Some(report.phase),
        progress: report.progress(),
        conditions: merge(old_conditions, &report.conditions, generation, now),
        copy,
        // Usage is read on its own, slower clock: a reconcile that did not read it keeps the
        // stored one (and writes nothing for it).
        usage: report
            .usage
            .clone()
            .or_else(|| previous.and_then(|p| p.usage.clone())),
        usage_summary: report
            .usage_summary
            .clone()
            .or_else(|| previous.and_then(|p| p.usage_summary.clone())),
        usage_observed_time: report
            .usage_observed_at
            .map(|t| t.to_string())
            .or_else(|| previous.and_then(|p| p.usage_observed_time.clone())),
        last_sync_time: Some(now.to_string()),
        plan: plan_status(report),
    }
}

/// Suspended: the plan, as far as the reconcile got (a failure before the plan is complete
/// shows in the conditions).
fn plan_status(report: &OrgReport) -> Option<PlanStatus> {
    if report.mode() != Mode::ObserveOnly {
        return None;
    }
    let lines: Vec<String> = report.changes.iter().map(ToString::to_string).collect();
    Some(PlanStatus {
        summary: PlanSummary::of(&report.changes).line(),
        omitted: u32::try_from(lines.len().saturating_sub(STATUS_LINES)).unwrap_or(u32::MAX),
        changes: lines.into_iter().take(STATUS_LINES).collect(),
    })
}
