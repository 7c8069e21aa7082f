//! The result of a reconcile, as conditions, a phase and a requeue decision.

use std::time::Duration;

use serde_json::Value;

use super::changes::Change;
use super::copy::CopyReport;
use super::desired::{DesiredOrg, Mode};
use super::org::Failure;
use crate::api::OrgPhase;
use crate::api::conditions::{ConditionSpec, ready_of, types};

/// Reconcile steps, each with its own condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading and checking credentials.
    Credentials,
    /// Finding, adopting or creating the organization.
    Create,
    /// Name, marker and vendor settings.
    Settings,
    /// Template deep copy.
    Copy,
}

impl Step {
    fn condition_type(self) -> &'static str {
        match self {
            Step::Credentials => types::CREDENTIALS_VALID,
            Step::Create => types::CREATED,
            Step::Settings => types::SETTINGS_SYNCED,
            Step::Copy => types::TEMPLATE_COPIED,
        }
    }
}

/// When to look again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Everything settled: re-check for drift after this long.
    After(Duration),
    /// A transient failure: retry with backoff.
    Backoff,
    /// A failure only a human can fix: wait for a change to the spec or Secret.
    OnChange,
}

/// Everything a reconcile learned and decided.
#[derive(Clone, Debug)]
pub struct OrgReport {
    /// The organization's vendor id, once known.
    pub external_id: Option<String>,
    /// Coarse phase.
    pub phase: OrgPhase,
    /// Conditions to merge into status.
    pub conditions: Vec<ConditionSpec>,
    /// Copy result, when a template is set.
    pub copy: Option<CopyReport>,
    /// The vendor's usage snapshot, when this reconcile read it (`None`: not due; status
    /// keeps the stored one).
    pub usage: Option<Value>,
    /// One line summarising [`usage`](Self::usage).
    pub usage_summary: Option<String>,
    /// When this reconcile read usage.
    pub usage_observed_at: Option<jiff::Timestamp>,
    /// The template organization's id, once found.
    pub template_org: Option<String>,
    /// This reconcile created the organization.
    pub org_created: bool,
    /// This reconcile patched the organization's settings.
    pub settings_updated: bool,
    /// When to reconcile again.
    pub requeue: Requeue,
    /// True when Ready.
    pub ready: bool,
    /// Observe-only: what applying would change, in order (organization, settings, copies).
    pub changes: Vec<Change>,
    /// The reconcile stopped at a failure (not merely drift): a plan of it is incomplete.
    pub failed: bool,
    sync_interval: Duration,
    mode: Mode,
}

impl OrgReport {
    /// An empty report for `desired`.
    pub fn new(desired: &DesiredOrg) -> Self {
        Self {
            external_id: None,
            phase: OrgPhase::Provisioning,
            conditions: Vec::new(),
            copy: None,
            usage: None,
            usage_summary: None,
            usage_observed_at: None,
            template_org: None,
            org_created: false,
            settings_updated: false,
            requeue: Requeue::Backoff,
            ready: false,
            changes: Vec::new(),
            failed: false,
            sync_interval: desired.sync_interval,
            mode: desired.mode,
        }
    }

    fn set(&mut self, c: ConditionSpec) {
        self.conditions.retain(|x| x.type_ != c.type_);
        self.conditions.push(c);
    }

    pub(crate) fn credentials_ok(&mut self) {
        self.set(ConditionSpec::new(
            types::CREDENTIALS_VALID,
            true,
            "Authenticated",
            "the vendor accepted the credentials",
        ));
    }

    pub(crate) fn created(&mut self) {
        self.org_created = true;
        self.set(ConditionSpec::new(
            types::CREATED,
            true,
            "Created",
            "orgops created the organization",
        ));
    }

    /// An existing organization is managed, found `how` (e.g. "by spec.externalId").
    pub(crate) fn adopted(&mut self, how: &str) {
        self.set(ConditionSpec::new(
            types::CREATED,
            true,
            "Adopted",
            format!("adopted the existing organization {how}"),
        ));
    }

    pub(crate) fn found(&mut self) {
        self.set(ConditionSpec::new(
            types::CREATED,
            true,
            "Exists",
            "the organization exists at the vendor",
        ));
    }

    pub(crate) fn settings_in_sync(&mut self, updated: bool) {
        self.settings_updated = updated;
        let (reason, message) = if updated {
            (
                "Updated",
                "updated name and settings at the vendor to match the spec",
            )
        } else {
            ("InSync", "name and settings match the spec")
        };
        self.set(ConditionSpec::new(
            types::SETTINGS_SYNCED,
            true,
            reason,
            message,
        ));
    }

    pub(crate) fn settings_drifted(&mut self) {
        self.set(ConditionSpec::new(
            types::SETTINGS_SYNCED,
            false,
            "DriftDetected",
            "name or settings differ from the spec; not repaired because suspend is true",
        ));
    }

    pub(crate) fn no_template(&mut self) {
        self.set(ConditionSpec::new(
            types::TEMPLATE_COPIED,
            true,
            "NoTemplate",
            "spec.template is not set",
        ));
    }

    pub(crate) fn copied(&mut self, mut copy: CopyReport) {
        let t = copy.totals();
        self.changes.append(&mut copy.changes);
        // Observe-only: a kind that could not be listed leaves the plan incomplete.
        if self.mode == Mode::ObserveOnly && copy.unlisted > 0 {
            self.failed = true;
        }
        let condition = if t.failed == 0 && t.done == t.total && copy.prune_failed == 0 {
            ConditionSpec::new(
                types::TEMPLATE_COPIED,
                true,
                "Copied",
                format!("{}/{} template objects copied", t.done, t.total),
            )
        } else if copy.drifted > 0 && self.mode == Mode::ObserveOnly {
            ConditionSpec::new(
                types::TEMPLATE_COPIED,
                false,
                "DriftDetected",
                format!(
                    "{} copies are missing or differ from the template; not repaired because suspend is true",
                    copy.drifted
                ),
            )
        } else {
            ConditionSpec::new(
                types::TEMPLATE_COPIED,
                false,
                "CopyIncomplete",
                format!(
                    "{}/{} copied, {} failed: {}",
                    t.done,
                    t.total,
                    t.failed,
                    copy.failures.join("; ")
                ),
            )
        };
        self.set(condition);
        self.copy = Some(copy);
    }

    pub(crate) fn finish_ok(&mut self) {
        let not_ok: Vec<ConditionSpec> = self
            .conditions
            .iter()
            .filter(|c| !c.status)
            .cloned()
            .collect();
        self.set(ConditionSpec::new(
            types::UNSUPPORTED,
            false,
            "Supported",
            "the vendor supports everything the spec asks",
        ));
        match not_ok.first() {
            None => {
                self.ready = true;
                self.phase = OrgPhase::Ready;
                self.requeue = Requeue::After(self.sync_interval);
                let message = match &self.copy {
                    Some(c) => {
                        let t = c.totals();
                        format!(
                            "organization {} matches the spec; {}/{} template objects copied",
                            self.external_id.as_deref().unwrap_or("?"),
                            t.done,
                            t.total
                        )
                    }
                    None => format!(
                        "organization {} matches the spec",
                        self.external_id.as_deref().unwrap_or("?")
                    ),
                };
                self.set(ConditionSpec::new(types::READY, true, "Ready", message));
            }
            Some(first) => {
                self.phase = OrgPhase::Degraded;
                // Drift under suspend, and copies blocked for good (a rejected body, a missing
                // dependency), wait for the next sync; a vendor outage retries sooner.
                let transient = self.copy.as_ref().is_some_and(|c| c.transient);
                self.requeue = if self.mode == Mode::ObserveOnly || !transient {
                    Requeue::After(self.sync_interval)
                } else {
                    Requeue::Backoff
                };
                self.set(ConditionSpec::new(
                    types::READY,
                    false,
                    first.reason.clone(),
                    first.message.clone(),
                ));
            }
        }
    }

    pub(crate) fn finish_err(&mut self, failure: Failure) {
        // Suspended before a create is where an observe-only reconcile ends, not a failure.
        self.failed = failure.reason != super::org::SUSPENDED;
        self.set(ConditionSpec::new(
            failure.step.condition_type(),
            false,
            failure.reason.clone(),
            failure.message.clone(),
        ));
        let unsupported = failure.reason == "Unsupported";
        self.set(if unsupported {
            ConditionSpec::new(
                types::UNSUPPORTED,
                true,
                "Unsupported",
                failure.message.clone(),
            )
        } else {
            ConditionSpec::new(
                types::UNSUPPORTED,
                false,
                "Supported",
                "the vendor supports everything the spec asks",
            )
        });
        self.set(ConditionSpec::new(
            types::READY,
            false,
            failure.reason.clone(),
            failure.message.clone(),
        ));
        if failure.transient {
            self.requeue = Requeue::Backoff;
            self.phase = match failure.step {
                Step::Copy => OrgPhase::Copying,
                _ if self.external_id.is_some() => OrgPhase::Degraded,
                _ => OrgPhase::Provisioning,
            };
        } else {
            self.requeue = Requeue::OnChange;
            self.phase = OrgPhase::Failed;
        }
    }

    /// Whether the reconcile applied or only observed.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `done/total` of the copy, for the printer column.
    pub fn progress(&self) -> Option<String> {
        self.copy.as_ref().map(|c| {
            let t = c.totals();
            format!("{}/{}", t.done, t.total)
        })
    }

    /// The Ready condition's reason.
    pub fn ready_reason(&self) -> &str {
        ready_of(&self.conditions)
            .map(|c| c.reason.as_str())
            .unwrap_or("")
    }

    /// The Ready condition's message.
    pub fn ready_message(&self) -> &str {
        ready_of(&self.conditions)
            .map(|c| c.message.as_str())
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Vendor;
    use crate::vendors::Owner;

    fn desired(mode: Mode) -> DesiredOrg {
        DesiredOrg {
            owner: Owner {
                key: "ns/o".into(),
                uid: None,
            },
            generation: Some(1),
            vendor: Vendor::Rossum,
            display_name: "O".into(),
            external_id: None,
            template: None,
            settings: Value::Null,
            mode,
            sync_interval: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_kind_that_could_not_be_listed_makes_a_plan_incomplete_not_a_clean_one() {
        let unlisted = CopyReport {
            unlisted: 1,
            failures: vec!["hooks: cannot list them in the template: 503".into()],
            transient: true,
            ..CopyReport::default()
        };
        let mut plan = OrgReport::new(&desired(Mode::ObserveOnly));
        plan.copied(unlisted.clone());
        plan.finish_ok();
        assert!(plan.failed, "an unreadable kind is not 'no changes'");
        // Applying, it is a copy failure the conditions report, not a plan error.
        let mut apply = OrgReport::new(&desired(Mode::Apply));
        apply.copied(unlisted);
        apply.finish_ok();
        assert!(!apply.failed);
    }
}
