//! `orgops apply`: the engine without a cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::manifests::{self, Manifests, Origin};
use super::progress::{CliSink, Display};
use super::state::StateFile;
use crate::api::conditions::{ConditionSpec, merge, types};
use crate::api::{MembershipPhase, OrgMembershipStatus, Organization, Vendor};
use crate::engine::status::organization_status;
use crate::engine::{DesiredOrg, EngineOptions, OrgReport, Requeue, reconcile_org};
use crate::simulator::ServeOptions;
use crate::simulator::dataloop::DataloopSimulator;
use crate::simulator::openlattice::OpenLatticeSimulator;
use crate::simulator::renderedai::RenderedAiSimulator;
use crate::simulator::rossum::{Admin, RossumSimulator, Seed, TEMPLATE_ORG};
use crate::vendors::connection::{ConnectionConfig, ConnectionPolicy};
use crate::vendors::{Credentials, Endpoints, HttpConfig, VendorClient, connect};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Columns, as `kubectl get orgs`.
    Table,
    /// The resources with their status.
    Yaml,
}

/// What `apply` and `plan` share: the manifests and how their vendors are reached.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// Manifest files or directories (multi-document YAML).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Run against embedded simulators (one per vendor the manifests use), each seeded with a
    /// template org; no request leaves the machine. Rossum: the manifests' Secrets become its
    /// admin credentials; OpenLattice and Dataloop: the simulator's admin token or API key
    /// replaces the manifests'.
    #[arg(long)]
    pub simulate: bool,
    /// Vendor requests in flight per organization (1 to 1024).
    #[arg(long, default_value_t = 16,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub concurrency: usize,
    /// Requests per second per vendor endpoint, 1 to 10000 (default: the vendor's documented
    /// limit; 100 with --simulate).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate_limit: Option<u32>,
    /// Reconcile attempts per organization while failures are transient (1 to 100).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// Where create intents are kept between runs, so a killed apply never creates an
    /// organization twice (default: $XDG_STATE_HOME/orgops/apply-state.json); `plan` reads it
    /// and never writes it.
    #[arg(long, env = "ORGOPS_STATE_FILE")]
    pub state_file: Option<PathBuf>,
}

/// Options of `orgops apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Manifests and vendors.
    #[command(flatten)]
    pub manifests: ManifestArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Why apply stopped before touching any vendor.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] manifests::ManifestError),
    /// The simulator could not start.
    #[error("simulator: {0}")]
    Simulator(String),
    /// The state file cannot be used.
    #[error("state file: {0}")]
    State(String),
}

/// One Organization of the manifests, checked and connected.
pub(crate) struct Planned {
    pub(crate) origin: Origin,
    pub(crate) org: Organization,
    pub(crate) desired: DesiredOrg,
    pub(crate) client: Arc<dyn VendorClient>,
    /// Key of the organization in the state file.
    pub(crate) key: String,
    /// The manifests' Secrets in the organization's namespace, by name
    /// (`spec.template.secrets`).
    pub(crate) secrets: BTreeMap<String, Credentials>,
}

/// The manifests, checked, with one client per connection: everything before the first
/// vendor request.
pub(crate) struct Prepared {
    pub(crate) manifests: Manifests,
    pub(crate) orgs: Vec<Planned>,
    pub(crate) memberships: Vec<crate::engine::membership::DesiredMembership>,
    pub(crate) state: Arc<StateFile>,
    /// Kept alive while the run lasts.
    pub(crate) simulator: Option<Simulators>,
}

/// Whether the state file may be written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateAccess {
    /// `apply`: intents and ids are written.
    ReadWrite,
    /// `plan`: what earlier runs recorded is read, nothing is written.
    ReadOnly,
}

/// Runs apply; `Ok(true)` when every resource is Ready, memberships possibly Invited (the
/// rest is the person's to do: running apply again would not change it).
pub async fn run(args: ApplyArgs) -> Result<bool, ApplyError> {
    let display = Display::detect(args.quiet || args.output == Output::Yaml);
    let Prepared {
        manifests: m,
        orgs: planned,
        memberships,
        state,
        simulator,
    } = prepare(&args.manifests, &display, StateAccess::ReadWrite).await?;

    let options = EngineOptions {
        concurrency: args.manifests.concurrency.max(1),
        ..EngineOptions::default()
    };
    let claims = crate::cli::progress::Claims::default();
    let results = futures::future::join_all(planned.iter().map(|p| {
        let display = display.clone();
        let options = options.clone();
        let state = state.clone();
        let claims = claims.clone();
        async move {
            let attempts = args.manifests.attempts.max(1);
            reconcile_until_settled(p, display, state, claims, &options, attempts).await
        }
    }))
    .await;

    let mut all_ready = true;
    let mut orgs_out = Vec::new();
    for (p, report) in planned.iter().zip(&results) {
        all_ready &= report.ready;
        display.println(&summary(p, report));
        let mut org = p.org.clone();
        org.status = Some(organization_status(
            report,
            None,
            org.metadata.generation,
            jiff::Timestamp::now(),
        ));
        orgs_out.push((p.origin.clone(), org));
    }
    // Memberships after their organizations, one at a time: the same person in two orgs must
    // not race to be created twice.
    let mut memberships_out = Vec::new();
    let mut claimed: Vec<(String, String, String)> = Vec::new();
    for ((origin, mem), desired) in m.memberships.iter().zip(&memberships) {
        let name = mem.metadata.name.clone().unwrap_or_default();
        let organization = planned.iter().zip(&results).find(|(p, _)| {
            let ns = p.org.metadata.namespace.as_deref().unwrap_or("default");
            format!("{ns}/{}", p.org.metadata.name.as_deref().unwrap_or("")) == desired.organization
        });
        let first_claim = claimed
            .iter()
            .find(|(o, e, _)| *o == desired.organization && e.eq_ignore_ascii_case(&desired.email))
            .map(|(_, _, n)| n.clone());
        let report = match organization {
            _ if first_claim.is_some() => member_status(
                MembershipPhase::Failed,
                None,
                "Conflict",
                &format!(
                    "OrgMembership {} already gives {} access to {}; this one is ignored ({origin})",
                    first_claim.unwrap_or_default(),
                    desired.email,
                    desired.organization
                ),
            ),
            Some((p, org_report))
                if org_report.ready
                    || org_report.external_id.is_some()
                        && p.desired.mode == crate::engine::Mode::ObserveOnly =>
            {
                claimed.push((
                    desired.organization.clone(),
                    desired.email.clone(),
                    name.clone(),
                ));
                let id = org_report.external_id.clone().unwrap_or_default();
                let r = crate::engine::membership::reconcile_member(
                    p.client.as_ref(),
                    &desired.member(&id),
                    p.desired.mode,
                )
                .await;
                display.println(&if r.ready {
                    format!(
                        "{name}: {} has access to {} ({})",
                        desired.email,
                        desired.organization,
                        if r.changed { "granted" } else { "unchanged" }
                    )
                } else {
                    format!(
                        "{name}: NOT READY ({}): {}",
                        r.ready_reason(),
                        r.ready_message()
                    )
                });
                OrgMembershipStatus {
                    observed_generation: mem.metadata.generation,
                    external_id: r.external_id.clone(),
                    phase: Some(r.phase),
                    conditions: merge(
                        &[],
                        &r.conditions,
                        mem.metadata.generation,
                        jiff::Timestamp::now(),
                    ),
                }
            }
            _ => member_status(
                MembershipPhase::WaitingForOrganization,
                None,
                "WaitingForOrganization",
                &format!("Organization {} is not Ready", desired.organization),
            ),
        };
        // An invitation sent is as far as apply can go: it succeeded, and the table says
        // Invited (accepting is the person's part; another run would change nothing).
        all_ready &= matches!(
            report.phase,
            Some(MembershipPhase::Ready | MembershipPhase::Invited)
        );
        let mut mem = mem.clone();
        mem.status = Some(report);
        memberships_out.push(mem);
    }
    match args.output {
        Output::Table => print!("{}", table(&orgs_out, &memberships_out)),
        Output::Yaml => {
            for (_, o) in &orgs_out {
                println!("---\n{}", serde_saphyr::to_string(o).unwrap_or_default());
            }
            for mem in &memberships_out {
                println!("---\n{}", serde_saphyr::to_string(mem).unwrap_or_default());
            }
        }
    }
    drop(simulator);
    Ok(all_ready)
}

/// Loads and checks the manifests, starts the simulators (`--simulate`) and connects one
/// client per connection. Bad input fails here, before any vendor request.
pub(crate) async fn prepare(
    args: &ManifestArgs,
    display: &Display,
    access: StateAccess,
) -> Result<Prepared, ApplyError> {
    let m = manifests::load(&args.files)?;
    let endpoints = Endpoints::default();
    let state = Arc::new(if args.simulate {
        // A fresh simulator each run: nothing to remember.
        StateFile::in_memory()
    } else {
        match args.state_file.clone().or_else(StateFile::default_path) {
            Some(path) if access == StateAccess::ReadOnly => {
                StateFile::read_only(&path).map_err(ApplyError::State)?
            }
            Some(path) => StateFile::open(&path).map_err(ApplyError::State)?,
            None => StateFile::in_memory(),
        }
    });

    let simulator = if args.simulate {
        let sims = Simulators::start(&m).await?;
        if let Some(sim) = &sims.rossum {
            display.println(&format!(
                "Simulated Rossum at {} (template org {TEMPLATE_ORG:?}); the manifests' Secrets are its admins",
                sim.base_url
            ));
        }
        if let Some(sim) = &sims.openlattice {
            display.println(&format!(
                "Simulated OpenLattice at {} (template org {:?}, id {}); the manifests' tokens are replaced by the simulator's admin token",
                sim.base_url,
                crate::simulator::openlattice::seed::TEMPLATE_ORG_TITLE,
                sim.template_org_id
            ));
        }
        if let Some(sim) = &sims.dataloop {
            display.println(&format!(
                "Simulated Dataloop at {} (template org {:?}, target org {:?} to adopt); the manifests' credentials are replaced by the simulator's admin API key",
                sim.base_url,
                crate::simulator::dataloop::seed::TEMPLATE_ORG_NAME,
                crate::simulator::dataloop::seed::TARGET_ORG_NAME,
            ));
        }
        if let Some(sim) = &sims.renderedai {
            display.println(&format!(
                "Simulated Rendered.ai at {} (template org {:?}, target org {:?} to adopt); the manifests' credentials are replaced by the simulator's API key",
                sim.graphql_url,
                crate::simulator::renderedai::seed::TEMPLATE_ORG_NAME,
                crate::simulator::renderedai::seed::TARGET_ORG_NAME,
            ));
        }
        Some(sims)
    } else {
        None
    };

    // Everything is checked before the first request: bad input touches no vendor.
    // One client per connection: one login and one rate limit for all of its organizations.
    let mut clients: BTreeMap<String, Arc<dyn VendorClient>> = BTreeMap::new();
    for (id, (origin, config)) in &m.connections {
        let mut credentials = manifests::credentials(
            &config.secret.to_string(),
            &m.secrets[&config.secret.to_string()].1,
        );
        if let Some(sims) = &simulator {
            // Simulated: the manifest's own credentials never leave this process.
            credentials = sims.credentials(config.vendor, credentials);
        }
        let policy = ConnectionPolicy::default();
        let trusted = ConnectionConfig {
            trusted: true,
            endpoint: match &simulator {
                Some(sims) => Some(sims.endpoint(config.vendor).ok_or_else(|| {
                    ApplyError::Manifest(manifests::ManifestError {
                        location: format!("{origin} {id}: spec.vendor"),
                        message: format!(
                            "--simulate has no {} simulator in this build",
                            config.vendor
                        ),
                    })
                })?),
                None => config.endpoint.clone(),
            },
            ..config.clone()
        };
        let admitted = policy.check(&trusted).map_err(|e| {
            ApplyError::Manifest(manifests::ManifestError {
                location: format!("{origin} {id}: spec.endpoint"),
                message: e.to_string(),
            })
        })?;
        let config = HttpConfig {
            rate_per_second: args.rate_limit.unwrap_or(if simulator.is_some() {
                100
            } else {
                config.rate_limit.unwrap_or(admitted.rate)
            }),
            ..HttpConfig::default()
        };
        let client = connect(
            trusted.vendor,
            Some(&admitted.endpoint),
            credentials,
            config,
            &endpoints,
        )
        .map_err(|e| {
            let field = match &e {
                crate::vendors::VendorError::Unsupported { .. } => "spec.vendor",
                _ => "spec.credentialsSecretRef",
            };
            ApplyError::Manifest(manifests::ManifestError {
                location: format!("{origin} {id}: {field}"),
                message: e.to_string(),
            })
        })?;
        clients.insert(id.clone(), client);
    }
    let mut planned = Vec::new();
    for (origin, org) in &m.organizations {
        let desired =
            DesiredOrg::from_resource(org).map_err(|e| at(origin, org, &e.field, e.message))?;
        let connection = manifests::connection_of(&m, org)
            .map_err(|e| at(origin, org, "spec.connectionRef", e))?;
        let client = clients[&connection.id].clone();
        let key = format!(
            "{} {} {}",
            org.spec.vendor,
            connection.endpoint.as_deref().unwrap_or("-"),
            desired.owner.key
        );
        let ns = org.metadata.namespace.as_deref().unwrap_or("default");
        let secrets = m
            .secrets
            .iter()
            .filter_map(|(key, (_, secret))| {
                let name = key.strip_prefix(ns)?.strip_prefix('/')?;
                Some((name.to_string(), manifests::credentials(key, secret)))
            })
            .collect();
        planned.push(Planned {
            origin: origin.clone(),
            org: org.clone(),
            desired,
            client,
            key,
            secrets,
        });
    }

    let mut memberships = Vec::new();
    for (origin, mem) in &m.memberships {
        let desired =
            crate::engine::membership::DesiredMembership::from_resource(mem).map_err(|e| {
                ApplyError::Manifest(manifests::ManifestError {
                    location: format!(
                        "{origin} OrgMembership/{}: {}",
                        mem.metadata.name.as_deref().unwrap_or(""),
                        e.field
                    ),
                    message: e.message,
                })
            })?;
        memberships.push(desired);
    }
    Ok(Prepared {
        manifests: m,
        orgs: planned,
        memberships,
        state,
        simulator,
    })
}

fn member_status(
    phase: MembershipPhase,
    external_id: Option<String>,
    reason: &str,
    message: &str,
) -> OrgMembershipStatus {
    OrgMembershipStatus {
        observed_generation: None,
        external_id,
        phase: Some(phase),
        conditions: merge(
            &[],
            &[ConditionSpec::new(types::READY, false, reason, message)],
            None,
            jiff::Timestamp::now(),
        ),
    }
}

fn at(origin: &Origin, org: &Organization, field: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Manifest(manifests::ManifestError {
        location: format!(
            "{origin} Organization/{}: {field}",
            org.metadata.name.as_deref().unwrap_or("")
        ),
        message: message.into(),
    })
}

async fn reconcile_until_settled(
    p: &Planned,
    display: Display,
    durable: Arc<crate::cli::state::StateFile>,
    claims: crate::cli::progress::Claims,
    options: &EngineOptions,
    attempts: u32,
) -> OrgReport {
    let name = p.org.metadata.name.clone().unwrap_or_default();
    let sink = CliSink::new(&name, display, durable.clone(), &p.key)
        .with_secrets(p.secrets.clone())
        .with_claims(claims);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut report = crate::vendors::http::in_flow(
            name.clone(),
            reconcile_org(
                p.client.as_ref(),
                &p.desired,
                &sink.org_state(),
                &sink,
                options,
            ),
        )
        .await;
        if let Err(e) = sink.settle(&report) {
            // Harmless: the next run finds the org by the id still on disk, or by its marker.
            tracing::warn!(org = %name, error = %e, "could not update the state file");
        }
        point_at_state_file(&mut report, &durable, &p.key);
        if report.requeue != Requeue::Backoff || attempt >= attempts {
            sink.finish();
            return report;
        }
        tracing::info!(org = %name, reason = report.ready_reason(), "transient failure; reconciling again");
        tokio::time::sleep(Duration::from_secs(1) * attempt).await;
    }
}

/// Without a cluster, the id the engine calls `status.externalId` is the state file's: say so,
/// and how to let go of an organization deleted at the vendor (orgops never guesses that: a
/// second organization is worse than a question).
fn point_at_state_file(report: &mut OrgReport, durable: &StateFile, key: &str) {
    if durable.entry(key).and_then(|e| e.external_id).is_none() {
        return;
    }
    let file = durable
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "memory".to_string());
    let recorded = format!(
        "recorded in the state file {file}; if it was deleted at the vendor, remove the entry \
         {key:?} there and apply again"
    );
    for c in &mut report.conditions {
        c.message = c.message.replace("status.externalId", &recorded);
    }
}

fn summary(p: &Planned, r: &OrgReport) -> String {
    let name = p.org.metadata.name.as_deref().unwrap_or("");
    let id = r.external_id.as_deref().unwrap_or("-");
    let (created, updated, failed) = r
        .copy
        .as_ref()
        .map(|c| (c.created, c.updated, c.totals().failed))
        .unwrap_or_default();
    let org_part = if r.org_created {
        format!("created organization {id}")
    } else {
        format!("organization {id}")
    };
    if !r.ready {
        return format!(
            "{name}: {org_part}; NOT READY ({}): {}",
            r.ready_reason(),
            r.ready_message()
        );
    }
    if !r.org_created && !r.settings_updated && created == 0 && updated == 0 {
        return format!("{name}: {org_part} unchanged: nothing to create or update");
    }
    let settings = if r.settings_updated {
        ", settings updated"
    } else {
        ""
    };
    format!(
        "{name}: {org_part}{settings}; copies created: {created}, updated: {updated}, failed: {failed}"
    )
}

fn table(orgs: &[(Origin, Organization)], memberships: &[crate::api::OrgMembership]) -> String {
    let mut rows = vec![
        vec![
            "NAME",
            "VENDOR",
            "EXTERNAL-ID",
            "PHASE",
            "PROGRESS",
            "READY",
            "AGE",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>(),
    ];
    for (_, o) in orgs {
        let s = o.status.clone().unwrap_or_default();
        rows.push(vec![
            o.metadata.name.clone().unwrap_or_default(),
            o.spec.vendor.to_string(),
            s.external_id.unwrap_or_default(),
            s.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
            s.progress.unwrap_or_default(),
            crate::api::conditions::status_of(&s.conditions, types::READY)
                .unwrap_or("")
                .to_string(),
            "<unknown>".to_string(),
        ]);
    }
    let mut out = columns(&rows);
    if !memberships.is_empty() {
        let mut rows = vec![
            vec!["NAME", "ORG", "EMAIL", "ROLE", "PHASE", "AGE"]
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>(),
        ];
        for m in memberships {
            let s = m.status.clone().unwrap_or_default();
            rows.push(vec![
                m.metadata.name.clone().unwrap_or_default(),
                m.spec.organization_ref.name.clone(),
                m.spec.user.email.clone(),
                m.spec.role.clone(),
                s.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
                "<unknown>".to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    out
}

fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The simulators `--simulate` runs: one per vendor the manifests' connections use.
pub(crate) struct Simulators {
    rossum: Option<RossumSimulator>,
    openlattice: Option<OpenLatticeSimulator>,
    dataloop: Option<DataloopSimulator>,
    renderedai: Option<RenderedAiSimulator>,
}

impl Simulators {
    async fn start(m: &Manifests) -> Result<Self, ApplyError> {
        let uses = |v: Vendor| m.connections.values().any(|(_, c)| c.vendor == v);
        let rossum = if uses(Vendor::Rossum) {
            Some(start_simulator(m).await?)
        } else {
            None
        };
        let openlattice = if uses(Vendor::OpenLattice) {
            Some(
                OpenLatticeSimulator::start(0, Default::default())
                    .await
                    .map_err(ApplyError::Simulator)?,
            )
        } else {
            None
        };
        let dataloop = if uses(Vendor::Dataloop) {
            Some(
                DataloopSimulator::start(0, Default::default())
                    .await
                    .map_err(ApplyError::Simulator)?,
            )
        } else {
            None
        };
        let renderedai = if uses(Vendor::RenderedAi) {
            Some(
                RenderedAiSimulator::start(0, Default::default())
                    .await
                    .map_err(ApplyError::Simulator)?,
            )
        } else {
            None
        };
        Ok(Self {
            rossum,
            openlattice,
            dataloop,
            renderedai,
        })
    }

    /// The simulator standing in for `vendor`, if there is one.
    fn endpoint(&self, vendor: Vendor) -> Option<String> {
        match vendor {
            Vendor::Rossum => self.rossum.as_ref().map(|s| s.base_url.clone()),
            Vendor::OpenLattice => self.openlattice.as_ref().map(|s| s.base_url.clone()),
            Vendor::Dataloop => self.dataloop.as_ref().map(|s| s.base_url.clone()),
            Vendor::RenderedAi => self.renderedai.as_ref().map(|s| s.graphql_url.clone()),
        }
    }

    /// The credentials to use with `vendor`'s simulator: the manifest's become the Rossum
    /// simulator's admins; OpenLattice's token and Dataloop's and Rendered.ai's credentials are
    /// replaced by the simulator's admin token and API key (the Secret's name is kept, for
    /// messages).
    fn credentials(&self, vendor: Vendor, manifest: Credentials) -> Credentials {
        let replaced = |key: &str, value: &str| {
            Credentials::new(
                manifest.secret.clone(),
                BTreeMap::from([(
                    key.to_string(),
                    secrecy::SecretString::from(value.to_string()),
                )]),
            )
        };
        match vendor {
            Vendor::OpenLattice => match &self.openlattice {
                Some(sim) => replaced("token", &sim.admin_token),
                None => manifest,
            },
            Vendor::Dataloop => match &self.dataloop {
                Some(sim) => replaced(
                    crate::vendors::dataloop::client::API_KEY_KEY,
                    &sim.admin_api_key,
                ),
                None => manifest,
            },
            Vendor::RenderedAi => match &self.renderedai {
                Some(sim) => replaced(
                    crate::vendors::renderedai::client::API_KEY_KEY,
                    &sim.api_key,
                ),
                None => manifest,
            },
            Vendor::Rossum => manifest,
        }
    }
}

async fn start_simulator(m: &Manifests) -> Result<RossumSimulator, ApplyError> {
    let mut admins = BTreeMap::new();
    for (id, (origin, config)) in &m.connections {
        if config.vendor != Vendor::Rossum {
            continue;
        }
        let key = config.secret.to_string();
        let creds = manifests::credentials(&key, &m.secrets[&key].1);
        let get = |k: &str| creds.get(k).map(|v| v.expose_secret().to_string());
        let (Some(username), Some(password)) = (get("username"), get("password")) else {
            return Err(ApplyError::Manifest(manifests::ManifestError {
                location: format!("{origin} {id}: spec.credentialsSecretRef"),
                message: format!(
                    "with --simulate, Secret {key} needs the keys username and password (they become the simulator's admin)"
                ),
            }));
        };
        admins.insert(
            username.clone(),
            Admin {
                username,
                password,
                create_key: get("createKey").unwrap_or_else(|| "simulator-create-key".into()),
            },
        );
    }
    let admins: Vec<Admin> = admins.into_values().collect();
    let seed = Seed::template().map_err(ApplyError::Simulator)?;
    RossumSimulator::start(0, &seed, &admins, ServeOptions::default())
        .await
        .map_err(ApplyError::Simulator)
}
