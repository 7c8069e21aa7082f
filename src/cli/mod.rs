//! The `orgops` command line: `apply`, `simulate`, `crds`.

pub mod apply;
pub mod manifests;
pub mod progress;
pub mod run;
pub mod schema;
pub mod simulate;
pub mod state;
pub mod yaml;

use clap::{Parser, Subcommand};

/// Declarative tenant organizations at SaaS vendors.
#[derive(Debug, Parser)]
#[command(name = "orgops", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: watch Organizations in the cluster and reconcile them.
    Run(Box<run::RunArgs>),
    /// Reconcile Organization manifests against the vendor, without a cluster.
    Apply(apply::ApplyArgs),
    /// Run a vendor simulator (for demos, tests and benchmarks).
    Simulate(simulate::SimulateArgs),
    /// Print the CustomResourceDefinitions (what crds/ holds).
    Crds,
}
