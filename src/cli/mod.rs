//! The `orgops` command line: `apply`, `plan`, `run`, `simulate`, `crds`.

pub mod apply;
pub mod manifests;
pub mod plan;
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
    /// Show what `apply` would change at each vendor, without changing anything. Exit code 0:
    /// no changes, 2: changes, 1: error (as `terraform plan -detailed-exitcode`).
    Plan(plan::PlanArgs),
    /// Run a vendor simulator (for demos, tests and benchmarks).
    Simulate(simulate::SimulateArgs),
    /// Print the CustomResourceDefinitions (what crds/ holds).
    Crds,
}
