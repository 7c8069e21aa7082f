//! `orgops plan`: what `apply` would do at each vendor, without doing it. Every Organization
//! and OrgMembership is reconciled observe-only (the engine's suspend mode, which sends no
//! write), and what it would change is printed as a diff. Exit codes follow
//! `terraform plan -detailed-exitcode`: 0 nothing to do, 2 changes, 1 error.

use std::sync::Arc;
use std::time::Duration;

use super::apply::{ApplyError, ManifestArgs, Planned, Prepared, StateAccess, prepare};
use super::progress::{CliSink, Display};
use crate::engine::changes::{Change, PlanSummary};
use crate::engine::membership::{DesiredMembership, planned_changes, reconcile_member};
use crate::engine::{EngineOptions, Mode, OrgReport, Requeue, reconcile_org};
use crate::vendors::MemberChange;

/// Options of `orgops plan`: those of `apply` that choose what is planned against what
/// (with `--simulate` each simulator starts fresh, so everything is to be created or adopted).
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Manifests and vendors.
    #[command(flatten)]
    pub manifests: ManifestArgs,
}

/// What the plan found, for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The vendors match the manifests (exit 0).
    NoChanges,
    /// Applying would change something (exit 2).
    Changes,
    /// Some resource could not be planned (exit 1).
    Incomplete,
}

impl Outcome {
    /// The process exit code, as `terraform plan -detailed-exitcode`.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::NoChanges => 0,
            Outcome::Incomplete => 1,
            Outcome::Changes => 2,
        }
    }
}

/// Runs the plan and prints it to stdout.
pub async fn run(args: PlanArgs) -> Result<Outcome, ApplyError> {
    let args = args.manifests;
    let display = Display::detect(true);
    let Prepared {
        orgs,
        memberships,
        state,
        simulator,
        ..
    } = prepare(&args, &display, StateAccess::ReadOnly).await?;
    let options = EngineOptions {
        concurrency: args.concurrency.max(1),
        ..EngineOptions::default()
    };
    let claims = crate::cli::progress::Claims::default();
    let reports = futures::future::join_all(orgs.iter().map(|p| {
        plan_org(
            p,
            &display,
            state.clone(),
            claims.clone(),
            &options,
            args.attempts.max(1),
        )
    }))
    .await;

    let mut total = PlanSummary::default();
    let mut incomplete = false;
    let mut out = String::new();
    for (p, report) in orgs.iter().zip(&reports) {
        let name = resource_name(&p.org.metadata);
        let summary = PlanSummary::of(&report.changes);
        total.add(&summary);
        out.push_str(&format!("Organization {name} ({}):\n", p.org.spec.vendor));
        push_changes(&mut out, &report.changes);
        let unlisted: Vec<&String> = report
            .copy
            .iter()
            .flat_map(|c| &c.failures)
            .filter(|f| f.contains("cannot list"))
            .collect();
        if report.failed && !unlisted.is_empty() {
            incomplete = true;
            for f in unlisted {
                out.push_str(&format!("  error: {f}\n"));
            }
        } else if report.failed {
            incomplete = true;
            out.push_str(&format!(
                "  error: {}: {}\n",
                report.ready_reason(),
                report.ready_message()
            ));
        } else if report.changes.is_empty() {
            out.push_str("  (no changes)\n");
        }
        out.push('\n');
    }
    for m in &memberships {
        let (changes, error) = plan_member(m, &orgs, &reports).await;
        total.add(&PlanSummary::of(&changes));
        out.push_str(&format!(
            "OrgMembership {} in Organization {}:\n",
            m.email, m.organization
        ));
        push_changes(&mut out, &changes);
        match error {
            Some(e) => {
                incomplete = true;
                out.push_str(&format!("  error: {e}\n"));
            }
            None if changes.is_empty() => out.push_str("  (no changes)\n"),
            None => {}
        }
        out.push('\n');
    }
    out.push_str(&total.line());
    out.push('\n');
    if incomplete {
        out.push_str("Some resources could not be planned (see error: above).\n");
    }
    print!("{out}");
    drop(simulator);
    Ok(if incomplete {
        Outcome::Incomplete
    } else if total.has_changes() {
        Outcome::Changes
    } else {
        Outcome::NoChanges
    })
}

fn resource_name(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("")
    )
}

fn push_changes(out: &mut String, changes: &[Change]) {
    for c in changes {
        out.push_str("  ");
        out.push_str(&c.to_string());
        out.push('\n');
    }
}

/// One Organization, observe-only; transient failures are read again (reads only).
async fn plan_org(
    p: &Planned,
    display: &Display,
    state: Arc<crate::cli::state::StateFile>,
    claims: crate::cli::progress::Claims,
    options: &EngineOptions,
    attempts: u32,
) -> OrgReport {
    let name = p.org.metadata.name.clone().unwrap_or_default();
    let sink = CliSink::new(&name, display.clone(), state, &p.key)
        .with_secrets(p.secrets.clone())
        .with_claims(claims);
    let mut desired = p.desired.clone();
    desired.mode = Mode::ObserveOnly;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let report = crate::vendors::http::in_flow(
            name.clone(),
            reconcile_org(
                p.client.as_ref(),
                &desired,
                &sink.org_state(),
                &sink,
                options,
            ),
        )
        .await;
        let transient =
            report.requeue == Requeue::Backoff || report.copy.as_ref().is_some_and(|c| c.transient);
        if !(report.failed && transient) || attempt >= attempts {
            return report;
        }
        tokio::time::sleep(Duration::from_secs(1) * attempt).await;
    }
}

/// One membership: observed where its organization exists; all to add where it would be
/// created. Returns the changes, or why they cannot be known.
async fn plan_member(
    m: &DesiredMembership,
    orgs: &[Planned],
    reports: &[OrgReport],
) -> (Vec<Change>, Option<String>) {
    let found = orgs
        .iter()
        .zip(reports)
        .find(|(p, _)| resource_name(&p.org.metadata) == m.organization);
    let Some((p, report)) = found else {
        return (
            Vec::new(),
            Some(format!(
                "Organization {} is not among the manifests",
                m.organization
            )),
        );
    };
    let creates = report
        .changes
        .iter()
        .any(|c| matches!(c, Change::CreateOrg { .. }));
    match &report.external_id {
        Some(id) => {
            let r = reconcile_member(p.client.as_ref(), &m.member(id), Mode::ObserveOnly).await;
            // Observe-only ends Ready, Invited or drifted; anything else is a failure to read.
            let error = (!r.ready
                && r.changes.is_empty()
                && r.phase != crate::api::MembershipPhase::Invited)
                .then(|| format!("{}: {}", r.ready_reason(), r.ready_message()));
            (r.changes, error)
        }
        None if creates => (planned_changes(&m.member(""), &[MemberChange::Add]), None),
        None => (
            Vec::new(),
            Some(format!(
                "Organization {} could not be planned",
                m.organization
            )),
        ),
    }
}
