//! `orgops simulate`: one vendor simulator as a server.
//!
//! Every simulator prints the same way, so scripts and people can use it as is: a first line
//! `<Vendor> simulator listening on <base URL>`, then each test credential it accepts and each
//! seeded org id, one `name: value` a line. The credentials are the simulator's own test
//! credentials, never a real account's.

use std::path::PathBuf;
use std::time::Duration;

use crate::simulator::dataloop::{self, DataloopSimulator};
use crate::simulator::openlattice::{self, OpenLatticeSimulator};
use crate::simulator::renderedai::{self, RenderedAiSimulator};
use crate::simulator::rossum::{
    Admin, DEFAULT_ADMIN, DEFAULT_CREATE_KEY, DEFAULT_PASSWORD, RossumSimulator, Seed,
};
use crate::simulator::{FaultSpec, ServeOptions};

/// Vendors `--vendor` accepts.
pub const VENDORS: &[&str] = &["rossum", "openlattice", "dataloop", "renderedai"];

/// Options of `orgops simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Vendor to simulate: rossum, openlattice, dataloop or renderedai.
    #[arg(long, default_value = "rossum")]
    pub vendor: String,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed file (JSON; rossum only); default: the built-in template org.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Multiply the seed's setup objects (benchmarks; rossum only).
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
    /// Faults, e.g. `5xx=0.05,429=0.05,reset=0.05,slow=0.05,drop=0.05,seed=1`, or `0.2`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency: u64,
    /// Requests per second before 429 (default: unlimited).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Group admin login (rossum).
    #[arg(long, default_value = DEFAULT_ADMIN)]
    pub admin_username: String,
    /// Group admin password (rossum).
    #[arg(long, default_value = DEFAULT_PASSWORD)]
    pub admin_password: String,
    /// create_key accepted by `organizations/create` (rossum).
    #[arg(long, default_value = DEFAULT_CREATE_KEY)]
    pub create_key: String,
    /// Lifetime of issued tokens in seconds (dataloop, renderedai; default 24 h).
    #[arg(long)]
    pub token_lifetime: Option<u64>,
    /// Stop serving the anatools 3.3.4 limits operations (renderedai).
    #[arg(long)]
    pub no_limits: bool,
    /// Stop serving the anatools 3.3.4 workspace guest flows (renderedai).
    #[arg(long)]
    pub no_workspace_guests: bool,
}

/// Runs the simulator until Ctrl-C or SIGTERM.
pub async fn run(args: SimulateArgs) -> Result<(), String> {
    if !VENDORS.contains(&args.vendor.as_str()) {
        return Err(format!(
            "--vendor {}: no such simulator; valid vendors: {}",
            args.vendor,
            VENDORS.join(", ")
        ));
    }
    let faults = FaultSpec::parse(&args.faults).map_err(|e| format!("--faults: {e}"))?;
    let options = ServeOptions {
        faults,
        latency: Duration::from_millis(args.latency),
        rate_limit: args.rate_limit,
    };
    if args.token_lifetime.is_some() && args.vendor != "dataloop" && args.vendor != "renderedai" {
        return Err("--token-lifetime is for the dataloop and renderedai simulators only".into());
    }
    if (args.no_limits || args.no_workspace_guests) && args.vendor != "renderedai" {
        return Err(
            "--no-limits and --no-workspace-guests are for the renderedai simulator only".into(),
        );
    }
    // The simulator runs while its handle lives, so each arm holds it until shutdown.
    match args.vendor.as_str() {
        "dataloop" => {
            if args.seed.is_some() || args.scale != 1 {
                return Err("--seed and --scale are for the rossum simulator only".into());
            }
            let mut opts = dataloop::Options {
                serve: options,
                ..Default::default()
            };
            if let Some(secs) = args.token_lifetime {
                opts.token_lifetime = Duration::from_secs(secs);
            }
            let sim = DataloopSimulator::start(args.port, opts).await?;
            print_lines(&dataloop_lines(&sim));
            shutdown_signal().await;
        }
        "renderedai" => {
            if args.seed.is_some() || args.scale != 1 {
                return Err("--seed and --scale are for the rossum simulator only".into());
            }
            let mut opts = renderedai::Options {
                serve: options,
                serve_limits: !args.no_limits,
                serve_workspace_guests: !args.no_workspace_guests,
                ..Default::default()
            };
            if let Some(secs) = args.token_lifetime {
                opts.token_lifetime = Some(Duration::from_secs(secs));
            }
            let sim = RenderedAiSimulator::start(args.port, opts).await?;
            print_lines(&renderedai_lines(&sim));
            shutdown_signal().await;
        }
        "openlattice" => {
            if args.seed.is_some() || args.scale != 1 {
                return Err("--seed and --scale are for the rossum simulator only".into());
            }
            let sim = OpenLatticeSimulator::start(
                args.port,
                openlattice::Options {
                    serve: options,
                    ..Default::default()
                },
            )
            .await?;
            print_lines(&openlattice_lines(&sim));
            shutdown_signal().await;
        }
        _ => {
            let (lines, _sim) = rossum(&args, options).await?;
            print_lines(&lines);
            shutdown_signal().await;
        }
    }
    Ok(())
}

fn print_lines(lines: &[String]) {
    for l in lines {
        println!("{l}");
    }
}

/// What `orgops simulate --vendor openlattice` prints.
pub fn openlattice_lines(sim: &OpenLatticeSimulator) -> Vec<String> {
    vec![
        format!("OpenLattice simulator listening on {}", sim.base_url),
        format!("admin token: {}", sim.admin_token),
        format!("admin subject: {}", openlattice::seed::ADMIN_SUBJECT),
        format!("user token: {}", sim.user_token),
        format!("user subject: {}", openlattice::seed::USER_SUBJECT),
        format!("template org id: {}", sim.template_org_id),
        format!(
            "template org name: {}",
            openlattice::seed::TEMPLATE_ORG_NAME
        ),
    ]
}

/// What `orgops simulate --vendor dataloop` prints: the `/api/v1` base, dtlpy's `gate_url`,
/// the admin's token, API key, e-mail and password (for `dl.login_m2m`), the plain user's
/// token, e-mail and password, and both seeded orgs.
pub fn dataloop_lines(sim: &DataloopSimulator) -> Vec<String> {
    use crate::simulator::dataloop::seed;
    vec![
        format!("Dataloop simulator listening on {}", sim.base_url),
        format!("gate url: {}", sim.gate_url),
        format!("admin token: {}", sim.admin_token),
        format!("admin api key: {}", sim.admin_api_key),
        format!("admin email: {}", seed::ADMIN_EMAIL),
        format!("admin password: {}", seed::ADMIN_PASSWORD),
        format!("user token: {}", sim.user_token),
        format!("user email: {}", seed::USER_EMAIL),
        format!("user password: {}", seed::USER_PASSWORD),
        format!("template org id: {}", sim.template_org_id),
        format!("template org name: {}", seed::TEMPLATE_ORG_NAME),
        format!("target org id: {}", sim.target_org_id),
        format!("target org name: {}", seed::TARGET_ORG_NAME),
    ]
}

/// What `orgops simulate --vendor renderedai` prints: the GraphQL endpoint (anatools'
/// `endpoint`), the status endpoint (3.3.4's `statusAPI`), the admin's API keys (user, org and
/// workspace scope), e-mail and password, the member's, and both seeded orgs.
pub fn renderedai_lines(sim: &RenderedAiSimulator) -> Vec<String> {
    use crate::simulator::renderedai::seed;
    vec![
        format!("Rendered.ai simulator listening on {}", sim.graphql_url),
        format!("status url: {}", sim.status_url()),
        format!("api key: {}", sim.api_key),
        format!("org api key: {}", seed::ORG_API_KEY),
        format!("workspace api key: {}", seed::WORKSPACE_API_KEY),
        format!("admin email: {}", sim.admin_email),
        format!("admin password: {}", sim.admin_password),
        format!("member email: {}", seed::MEMBER_EMAIL),
        format!("member password: {}", seed::MEMBER_PASSWORD),
        format!("template org id: {}", sim.template_org_id),
        format!("template org name: {}", seed::TEMPLATE_ORG_NAME),
        format!("target org id: {}", sim.target_org_id),
        format!("target org name: {}", seed::TARGET_ORG_NAME),
    ]
}

async fn rossum(
    args: &SimulateArgs,
    options: ServeOptions,
) -> Result<(Vec<String>, RossumSimulator), String> {
    let seed = match &args.seed {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("--seed {}: {e}", p.display()))?;
            Seed::from_json(&text).map_err(|e| format!("--seed {}: {e}", p.display()))?
        }
        None => Seed::template()?,
    }
    .scaled(args.scale);
    let admin = Admin {
        username: args.admin_username.clone(),
        password: args.admin_password.clone(),
        create_key: args.create_key.clone(),
    };
    let sim = RossumSimulator::start(args.port, &seed, &[admin], options).await?;
    let template = crate::simulator::rossum::TEMPLATE_ORG;
    let mut lines = vec![
        format!("Rossum simulator listening on {}", sim.base_url),
        format!("admin username: {}", args.admin_username),
        format!("admin password: {}", args.admin_password),
        format!("create key: {}", args.create_key),
        format!("template org: {template}"),
    ];
    if let Some(id) = sim.org_id(template) {
        lines.push(format!("template org id: {id}"));
    }
    Ok((lines, sim))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
