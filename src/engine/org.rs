//! Organization reconcile: observe → create or adopt → apply settings → deep copy → report.
//!
//! Decisions ([`locate`], [`choose_existing`]) are pure; [`reconcile_org`] is the executor.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::changes::{Change, setting_changes};
use super::copy::{self, CopyJob, CopyReport, ProgressSink, graph};
use super::desired::{DesiredOrg, Mode, TemplateSelector};
use super::report::{OrgReport, Requeue, Step};
use crate::vendors::{Credentials, OrgIdentity, OrgInfo, VendorClient, VendorError};

/// Intent to create, recorded (and persisted by the caller) *before* the create request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCreate {
    /// The name the org is created with.
    pub name: String,
    /// When the create request was about to be sent.
    pub started_at: jiff::Timestamp,
}

/// What the caller persisted from earlier reconciles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrgState {
    /// The vendor id recorded in status.
    pub external_id: Option<String>,
    /// An unresolved create.
    pub pending_create: Option<PendingCreate>,
    /// When usage was last read from the vendor (`status.usageObservedTime`).
    pub usage_observed_at: Option<jiff::Timestamp>,
}

/// Where the engine persists its state and reports progress.
#[async_trait::async_trait]
pub trait Sink: ProgressSink {
    /// Persists (or clears) the create intent. An error aborts the create.
    async fn save_pending_create(&self, pending: Option<&PendingCreate>) -> Result<(), String>;
    /// Persists the vendor id as soon as it is known.
    async fn save_external_id(&self, id: &str) -> Result<(), String>;
    /// Checks that no other resource manages organization `id`. Called before adopting an
    /// org of a vendor without ownership markers, where the vendor cannot tell; `Err` names
    /// the resource that manages it.
    async fn claim(&self, id: &str) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
    /// The keys of Secret `name` in the resource's namespace (`spec.template.secrets`); `Err`
    /// says why they cannot be read.
    async fn template_secret(&self, name: &str) -> Result<Credentials, String> {
        Err(format!("Secret {name}: no Secrets can be read here"))
    }
}

/// Engine tuning.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Copy requests in flight per reconcile (the vendor rate limit still applies).
    pub concurrency: usize,
    /// A vendor-reported creation time this much earlier than the recorded intent still
    /// counts as ours (clock skew between us and the vendor).
    pub clock_skew: Duration,
    /// The caller keeps every create intent and vendor id durably before and after the create
    /// (the operator: on the resource). An Organization with neither has never created an org,
    /// so it is looked up by name only, not by scanning every visible org for its ownership
    /// marker: the cost of a create does not grow with the fleet. Without durable state (the
    /// CLI), an org renamed at the vendor is still found by its marker.
    pub durable_state: bool,
    /// How long usage read from the vendor stays in status before it is read again
    /// ([`super::usage`]); zero: every reconcile (the CLI).
    pub usage_interval: Duration,
    /// Template listings shared across organizations (the operator, per connection); `None`:
    /// each reconcile lists the template itself.
    pub templates: Option<copy::TemplateSource>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            clock_skew: Duration::from_secs(120),
            durable_state: false,
            usage_interval: Duration::ZERO,
            templates: None,
        }
    }
}

/// How to find the organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locate {
    /// By id; `adopt` = named in the spec (not created by us).
    ById {
        /// The vendor id.
        id: String,
        /// Named in the spec.
        adopt: bool,
    },
    /// Among all visible orgs, by ownership marker (or by name for a pending create).
    Search,
}

/// Decides how to find the organization. Pure.
pub fn locate(desired: &DesiredOrg, state: &OrgState) -> Locate {
    if let Some(id) = &desired.external_id {
        return Locate::ById {
            id: id.clone(),
            adopt: true,
        };
    }
    match &state.external_id {
        Some(id) => Locate::ById {
            id: id.clone(),
            adopt: false,
        },
        None => Locate::Search,
    }
}

/// Picks our organization among `candidates`: the one carrying our ownership marker, or —
/// when a create was pending — an unmarked one with the pending name created after the
/// intent was recorded (its marker was never written because the response was lost). Pure.
pub fn choose_existing<'a>(
    desired: &DesiredOrg,
    pending: Option<&PendingCreate>,
    candidates: &'a [OrgInfo],
    clock_skew: Duration,
) -> Option<&'a OrgInfo> {
    let mut owned: Vec<&OrgInfo> = candidates
        .iter()
        .filter(|o| o.owner.as_deref() == Some(desired.owner.key.as_str()))
        .collect();
    owned.sort_by_key(|o| o.id.parse::<u64>().unwrap_or(u64::MAX));
    if let Some(first) = owned.first() {
        return Some(first);
    }
    let pending = pending?;
    let earliest = pending.started_at - jiff::SignedDuration::try_from(clock_skew).ok()?;
    candidates
        .iter()
        .filter(|o| o.owner.is_none() && o.name == pending.name)
        .filter(|o| o.created_at.is_some_and(|t| t >= earliest))
        .min_by_key(|o| o.created_at)
}

/// Reconciles one organization. Never panics; every failure ends up in the report.
pub async fn reconcile_org(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    state: &OrgState,
    sink: &dyn Sink,
    options: &EngineOptions,
) -> OrgReport {
    let mut report = OrgReport::new(desired);
    match run(vendor, desired, state, sink, options, &mut report).await {
        Ok(()) => report.finish_ok(),
        Err(failure) => report.finish_err(failure),
    }
    report
}

/// The reason an observe-only reconcile stops at an organization it would create.
pub const SUSPENDED: &str = "Suspended";

/// Why a reconcile stopped, and which step it stopped at.
#[derive(Debug)]
pub struct Failure {
    /// The step that failed.
    pub step: Step,
    /// CamelCase reason.
    pub reason: String,
    /// Human-actionable message.
    pub message: String,
    /// Retry with backoff (true) or wait for a change (false).
    pub transient: bool,
}

impl Failure {
    fn vendor(step: Step, e: &VendorError) -> Self {
        Self {
            step,
            reason: e.category().to_string(),
            message: e.to_string(),
            transient: e.is_transient(),
        }
    }

    fn permanent(step: Step, reason: &str, message: impl Into<String>) -> Self {
        Self {
            step,
            reason: reason.to_string(),
            message: message.into(),
            transient: false,
        }
    }
}

async fn run(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    state: &OrgState,
    sink: &dyn Sink,
    options: &EngineOptions,
    report: &mut OrgReport,
) -> Result<(), Failure> {
    vendor
        .verify_credentials()
        .await
        .map_err(|e| Failure::vendor(Step::Credentials, &e))?;
    report.credentials_ok();

    let Some(org) = observe_or_create(vendor, desired, state, sink, options, report).await? else {
        // Observe-only, and the organization would be created: plan every copy as new.
        report.changes.push(Change::CreateOrg {
            name: desired.display_name.clone(),
        });
        copy_template(vendor, desired, None, sink, options, report).await?;
        return Err(Failure::permanent(
            Step::Create,
            SUSPENDED,
            "the organization does not exist yet and suspend is true: nothing is created",
        ));
    };
    report.external_id = Some(org.id.clone());

    // Settings (name, ownership marker, vendor block). A failure here is reported, but does
    // not hold back the copy: the two are independent at every vendor.
    let settings = match vendor.org_patch(&desired.org_desired(), &org) {
        None => {
            report.settings_in_sync(false);
            Ok(())
        }
        Some(patch) if desired.mode == Mode::ObserveOnly => {
            report.settings_drifted();
            report.changes.extend(setting_changes(&patch, &org.raw));
            Ok(())
        }
        Some(patch) => match vendor.patch_org(&org.id, patch).await {
            Ok(_) => {
                report.settings_in_sync(true);
                Ok(())
            }
            Err(e) => Err(Failure::vendor(Step::Settings, &e)),
        },
    };
    copy_template(vendor, desired, Some(&org), sink, options, report).await?;
    // Usage when due, or when the settings or the copy just changed what it counts (a new plan,
    // Rendered.ai's workspaces): after the copy, so it counts what the copy made.
    super::usage::refresh(vendor, &org, state, options, report).await;
    settings
}

/// Copies the template into `org`; `None`: the organization does not exist yet (observe-only),
/// so the copy is only planned.
async fn copy_template(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    org: Option<&OrgInfo>,
    sink: &dyn Sink,
    options: &EngineOptions,
    report: &mut OrgReport,
) -> Result<(), Failure> {
    let Some(template) = &desired.template else {
        report.no_template();
        return Ok(());
    };
    let template_org = match &template.selector {
        TemplateSelector::Id(id) => vendor
            .get_org(id)
            .await
            .map_err(|e| Failure::vendor(Step::Copy, &e))?
            .ok_or_else(|| {
                Failure::permanent(
                    Step::Copy,
                    "TemplateNotFound",
                    format!(
                        "template organization {id} does not exist or is not visible to these \
                         credentials (spec.template.externalId)"
                    ),
                )
            })?,
        TemplateSelector::Name(name) => {
            let all = vendor
                .find_orgs(Some(name))
                .await
                .map_err(|e| Failure::vendor(Step::Copy, &e))?;
            let matching: Vec<&OrgInfo> = all.iter().filter(|o| &o.name == name).collect();
            match matching.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(Failure::permanent(
                        Step::Copy,
                        "TemplateNotFound",
                        format!(
                            "no organization named {name:?} is visible (spec.template.displayName)"
                        ),
                    ));
                }
                many => {
                    return Err(Failure::permanent(
                        Step::Copy,
                        "TemplateAmbiguous",
                        format!(
                            "{} organizations are named {name:?} (ids {}); set spec.template.externalId",
                            many.len(),
                            many.iter()
                                .map(|o| o.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
    };
    if org.is_some_and(|o| o.id == template_org.id) {
        return Err(Failure::permanent(
            Step::Copy,
            "TemplateIsTarget",
            "the template is this organization itself; choose another template",
        ));
    }
    report.template_org = Some(template_org.id.clone());
    let caps = vendor.capabilities();
    let kinds = graph::selected(caps.kinds, template.include.as_deref()).map_err(|e| {
        Failure::permanent(
            Step::Copy,
            "Unsupported",
            format!("spec.template.include: {e}"),
        )
    })?;
    // Read once per reconcile, and only the Secrets the spec names.
    let mut inputs = copy::CopyInputs::default();
    for (object, secret) in &template.secrets {
        inputs.insert(object.clone(), sink.template_secret(secret).await);
    }
    let job = CopyJob {
        template_org: &template_org.id,
        target_org: org.map(|o| o.id.as_str()),
        owner: &desired.owner.key,
        kinds: &kinds,
        mode: desired.mode,
        prune: template.prune,
        concurrency: options.concurrency,
        inputs: &inputs,
        templates: options.templates.as_ref(),
    };
    let copy: CopyReport = copy::copy_template(vendor, &job, sink)
        .await
        .map_err(|e| Failure::vendor(Step::Copy, &e))?;
    report.copied(copy);
    Ok(())
}

async fn observe_or_create(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    state: &OrgState,
    sink: &dyn Sink,
    options: &EngineOptions,
    report: &mut OrgReport,
) -> Result<Option<OrgInfo>, Failure> {
    match locate(desired, state) {
        Locate::ById { id, adopt } => {
            let org = vendor
                .get_org(&id)
                .await
                .map_err(|e| Failure::vendor(Step::Create, &e))?;
            let Some(org) = org else {
                let field = if adopt {
                    "spec.externalId"
                } else {
                    "status.externalId"
                };
                return Err(Failure::permanent(
                    Step::Create,
                    "OrganizationNotFound",
                    format!(
                        "organization {id} ({field}) does not exist or is not visible to these credentials"
                    ),
                ));
            };
            if let Some(other) = &org.owner
                && other != &desired.owner.key
            {
                return Err(Failure::permanent(
                    Step::Create,
                    "OwnedByAnother",
                    format!("organization {id} is managed by orgops resource {other}"),
                ));
            }
            // Every reconcile, not just the first: of two resources that adopted the same org
            // at once, the one the caller ranks second then yields.
            if adopt || vendor.planned_org_id(&desired.owner).as_deref() != Some(org.id.as_str()) {
                claim(vendor, sink, &org.id).await?;
            }
            if adopt {
                report.adopted("by spec.externalId");
            } else {
                report.found();
            }
            if state.external_id.as_deref() != Some(org.id.as_str()) {
                if adopt && desired.mode == Mode::ObserveOnly {
                    report.changes.push(Change::AdoptOrg {
                        id: org.id.clone(),
                        how: "by spec.externalId".into(),
                    });
                }
                sink.save_external_id(&org.id)
                    .await
                    .map_err(|e| Failure::permanent(Step::Create, "StatusWriteFailed", e))?;
            }
            Ok(Some(org))
        }
        Locate::Search => {
            let found = search(vendor, desired, state.pending_create.as_ref(), options)
                .await
                .map_err(|e| Failure::vendor(Step::Create, &e))?;
            if let Some(org) = found {
                report.found();
                record_found(sink, &org.id, state.pending_create.is_some()).await?;
                return Ok(Some(org));
            }
            if !vendor.capabilities().create_org {
                return adopt_by_name(vendor, desired, sink, report).await.map(Some);
            }
            if desired.mode == Mode::ObserveOnly {
                return Ok(None);
            }
            create(vendor, desired, sink, options, report)
                .await
                .map(Some)
        }
    }
}

/// For vendors whose orgs cannot be created: the one visible org named `spec.displayName`.
async fn adopt_by_name(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    sink: &dyn Sink,
    report: &mut OrgReport,
) -> Result<OrgInfo, Failure> {
    let name = &desired.display_name;
    let named = vendor
        .find_orgs(Some(name))
        .await
        .map_err(|e| Failure::vendor(Step::Create, &e))?;
    let matching: Vec<&OrgInfo> = named.iter().filter(|o| &o.name == name).collect();
    let org = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Failure::permanent(
                Step::Create,
                "Unsupported",
                format!(
                    "{} organizations cannot be created through the API, and none visible to these credentials is named {name:?}; create it at the vendor, then set spec.externalId (or spec.displayName to its exact name)",
                    vendor.vendor()
                ),
            ));
        }
        many => {
            return Err(Failure::permanent(
                Step::Create,
                "OrganizationAmbiguous",
                format!(
                    "{} organizations are named {name:?} (ids {}); set spec.externalId",
                    many.len(),
                    many.iter()
                        .map(|o| o.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    claim(vendor, sink, &org.id).await?;
    let how = format!("by spec.displayName (the only visible organization named {name:?})");
    if desired.mode == Mode::ObserveOnly {
        report.changes.push(Change::AdoptOrg {
            id: org.id.clone(),
            how: how.clone(),
        });
    }
    report.adopted(&how);
    sink.save_external_id(&org.id)
        .await
        .map_err(|e| Failure::permanent(Step::Create, "StatusWriteFailed", e))?;
    Ok(org)
}

/// Where the vendor cannot mark an org as ours, asks the caller whether another resource
/// already manages it.
async fn claim(vendor: &dyn VendorClient, sink: &dyn Sink, id: &str) -> Result<(), Failure> {
    if vendor.capabilities().org_identity == OrgIdentity::Marker {
        return Ok(());
    }
    sink.claim(id)
        .await
        .map_err(|other| Failure::permanent(Step::Create, "OwnedByAnother", other))
}

/// Our organization among those visible: by ownership marker, or made by a pending create.
/// Cheap first: orgs with the (pending) name; then every org, for one renamed while its id was
/// not recorded. Only a create whose outcome is unknown pays for the scan (and, without
/// [`EngineOptions::durable_state`], every org about to be created or deleted without an id).
async fn search(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    pending: Option<&PendingCreate>,
    options: &EngineOptions,
) -> Result<Option<OrgInfo>, VendorError> {
    if let Some(id) = vendor.planned_org_id(&desired.owner) {
        // The id was ours to choose: the org exists under it or not at all.
        return vendor.get_org(&id).await;
    }
    if vendor.capabilities().org_identity != OrgIdentity::Marker {
        return Ok(None);
    }
    let name = pending
        .map(|p| p.name.as_str())
        .unwrap_or(&desired.display_name);
    let named = vendor.find_orgs(Some(name)).await?;
    if let Some(org) = choose_existing(desired, pending, &named, options.clock_skew) {
        return Ok(Some(org.clone()));
    }
    // Only a create whose outcome was never learned can have left an org under another name
    // (renamed since); with durable state, no intent means no create ever happened.
    if options.durable_state && pending.is_none() {
        return Ok(None);
    }
    let all = vendor.find_orgs(None).await?;
    Ok(choose_existing(desired, pending, &all, options.clock_skew).cloned())
}

/// The organization a resource being deleted stands for, if orgops created one: its recorded
/// id, else (no id recorded, e.g. a create whose outcome was never learned) the one a search by
/// ownership marker or pending create finds. `None`: orgops made nothing that could be deleted.
/// Adopted organizations (`spec.externalId`) are never returned: orgops did not create them.
pub async fn created_org(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    state: &OrgState,
    options: &EngineOptions,
) -> Result<Option<String>, VendorError> {
    // Adopted by id, or by name where orgs cannot be created: orgops made none of them.
    if desired.external_id.is_some() || !vendor.capabilities().create_org {
        return Ok(None);
    }
    if let Some(id) = &state.external_id {
        return Ok(Some(id.clone()));
    }
    Ok(
        search(vendor, desired, state.pending_create.as_ref(), options)
            .await?
            .map(|o| o.id),
    )
}

async fn record_found(sink: &dyn Sink, id: &str, had_pending: bool) -> Result<(), Failure> {
    sink.save_external_id(id)
        .await
        .map_err(|e| Failure::permanent(Step::Create, "StatusWriteFailed", e))?;
    if had_pending {
        sink.save_pending_create(None)
            .await
            .map_err(|e| Failure::permanent(Step::Create, "StatusWriteFailed", e))?;
    }
    Ok(())
}

async fn create(
    vendor: &dyn VendorClient,
    desired: &DesiredOrg,
    sink: &dyn Sink,
    options: &EngineOptions,
    report: &mut OrgReport,
) -> Result<OrgInfo, Failure> {
    let pending = PendingCreate {
        name: desired.display_name.clone(),
        started_at: jiff::Timestamp::now(),
    };
    // The intent must be durable before the request leaves: a crash after the vendor created
    // the org but before we learned its id is then resolved by `choose_existing`.
    sink.save_pending_create(Some(&pending))
        .await
        .map_err(|e| Failure::permanent(Step::Create, "StatusWriteFailed", e))?;
    match vendor.create_org(&desired.org_desired()).await {
        Ok(org) => {
            report.created();
            record_found(sink, &org.id, true).await?;
            Ok(org)
        }
        Err(e) if e.is_outcome_unknown() || e.is_transient() => {
            // Observe before anything else: the org may exist.
            tracing::info!(owner = %desired.owner.key, error = %e, "create outcome unknown; observing");
            let found = search(vendor, desired, Some(&pending), options)
                .await
                .map_err(|e| Failure::vendor(Step::Create, &e))?;
            match found {
                Some(org) => {
                    report.created();
                    record_found(sink, &org.id, true).await?;
                    Ok(org)
                }
                None => Err(Failure::vendor(Step::Create, &e)),
            }
        }
        Err(e) => Err(Failure::vendor(Step::Create, &e)),
    }
}

impl Requeue {
    /// The default wait after a transient failure (the controller applies its own backoff).
    pub const TRANSIENT: Duration = Duration::from_secs(5);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Vendor;
    use crate::vendors::Owner;
    use serde_json::Value;

    fn desired() -> DesiredOrg {
        DesiredOrg {
            owner: Owner {
                key: "ns/de".into(),
                uid: None,
            },
            generation: Some(1),
            vendor: Vendor::Rossum,
            display_name: "German department".into(),
            external_id: None,
            template: None,
            settings: Value::Null,
            mode: Mode::Apply,
            sync_interval: Duration::from_secs(600),
        }
    }

    fn org(id: &str, name: &str, owner: Option<&str>, created: i64) -> OrgInfo {
        OrgInfo {
            id: id.into(),
            name: name.into(),
            owner: owner.map(str::to_string),
            created_at: Some(jiff::Timestamp::from_second(created).unwrap()),
            usage: None,
            raw: Value::Null,
        }
    }

    #[test]
    fn locate_prefers_spec_then_status() {
        let mut d = desired();
        let s = OrgState {
            external_id: Some("5".into()),
            pending_create: None,
            usage_observed_at: None,
        };
        assert_eq!(
            locate(&d, &s),
            Locate::ById {
                id: "5".into(),
                adopt: false
            }
        );
        d.external_id = Some("9".into());
        assert_eq!(
            locate(&d, &s),
            Locate::ById {
                id: "9".into(),
                adopt: true
            }
        );
        assert_eq!(locate(&desired(), &OrgState::default()), Locate::Search);
    }

    #[test]
    fn marker_wins_even_after_a_rename() {
        let d = desired();
        let orgs = vec![
            org("1", "German department", None, 10),
            org("2", "Old name", Some("ns/de"), 5),
        ];
        assert_eq!(
            choose_existing(&d, None, &orgs, Duration::ZERO).unwrap().id,
            "2"
        );
    }

    #[test]
    fn unmarked_same_name_org_is_not_ours_without_pending_create() {
        let d = desired();
        let orgs = vec![org("1", "German department", None, 10)];
        assert!(choose_existing(&d, None, &orgs, Duration::ZERO).is_none());
    }

    #[test]
    fn pending_create_adopts_the_org_created_after_the_intent() {
        let d = desired();
        let pending = PendingCreate {
            name: "German department".into(),
            started_at: jiff::Timestamp::from_second(100).unwrap(),
        };
        let orgs = vec![
            org("1", "German department", None, 50), // older: someone else's
            org("2", "German department", Some("other/x"), 120),
            org("3", "German department", None, 101), // ours, marker never written
        ];
        assert_eq!(
            choose_existing(&d, Some(&pending), &orgs, Duration::from_secs(10))
                .unwrap()
                .id,
            "3"
        );
        let only_old = vec![orgs[0].clone()];
        assert!(choose_existing(&d, Some(&pending), &only_old, Duration::from_secs(10)).is_none());
    }
}
