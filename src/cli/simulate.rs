//! `orgops simulate`: one vendor simulator as a server.

use std::path::PathBuf;
use std::time::Duration;

use crate::simulator::rossum::{
    Admin, DEFAULT_ADMIN, DEFAULT_CREATE_KEY, DEFAULT_PASSWORD, RossumSimulator, Seed,
};
use crate::simulator::{FaultSpec, ServeOptions};

/// Options of `orgops simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Vendor to simulate.
    #[arg(long, default_value = "rossum")]
    pub vendor: String,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed file (JSON); default: the built-in template org.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Multiply the seed's setup objects (benchmarks).
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
    /// Group admin login.
    #[arg(long, default_value = DEFAULT_ADMIN)]
    pub admin_username: String,
    /// Group admin password.
    #[arg(long, default_value = DEFAULT_PASSWORD)]
    pub admin_password: String,
    /// create_key accepted by `organizations/create`.
    #[arg(long, default_value = DEFAULT_CREATE_KEY)]
    pub create_key: String,
}

/// Runs the simulator until Ctrl-C or SIGTERM.
pub async fn run(args: SimulateArgs) -> Result<(), String> {
    if args.vendor != "rossum" {
        return Err(format!(
            "--vendor {}: only the rossum simulator is part of this build",
            args.vendor
        ));
    }
    let seed = match &args.seed {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("--seed {}: {e}", p.display()))?;
            Seed::from_json(&text).map_err(|e| format!("--seed {}: {e}", p.display()))?
        }
        None => Seed::template()?,
    }
    .scaled(args.scale);
    let faults = FaultSpec::parse(&args.faults).map_err(|e| format!("--faults: {e}"))?;
    let admin = Admin {
        username: args.admin_username.clone(),
        password: args.admin_password.clone(),
        create_key: args.create_key.clone(),
    };
    let options = ServeOptions {
        faults,
        latency: Duration::from_millis(args.latency),
        rate_limit: args.rate_limit,
    };
    let sim = RossumSimulator::start(args.port, &seed, &[admin], options).await?;
    // These are the simulator's own test credentials, printed so a human can use them.
    println!("Rossum simulator listening on {}", sim.base_url);
    println!("  admin username: {}", args.admin_username);
    println!("  admin password: {}", args.admin_password);
    println!("  create key:     {}", args.create_key);
    println!(
        "  template org:   {}",
        crate::simulator::rossum::TEMPLATE_ORG
    );
    shutdown_signal().await;
    Ok(())
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
