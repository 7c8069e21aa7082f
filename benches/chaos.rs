//! Chaos campaign: N randomized trials (`tests/support/chaos.rs`) of vendor faults (including
//! requests processed but answered by a dropped connection), SIGKILL and SIGSTOP of one of two
//! `orgops run` replicas at random moments, random spec edits and deletions, against the
//! in-repo API server and the Rossum simulator; then checks each trial's vendor.
//!
//! `cargo bench --bench chaos -- [--trials N] [--seed S] [--parallel P] [--settle-seconds T]
//! [--connection cluster|namespaced]` (default 20 trials, a random seed, 6 at a time, each
//! trial's connection kind drawn at random) prints one line per trial (what chaos
//! happened, how long settling and deleting the namespace took, and every duplicate, lost or
//! stuck resource with the seed to replay it), then `N trials, D duplicates, L lost, S stuck`,
//! the elapsed time and trials per minute.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::chaos::{Env, Options, campaign};

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let seed = arg("--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000 * 1000)
            .unwrap_or(1)
    });
    let defaults = Options::default();
    let opts = Options {
        trials: arg("--trials").unwrap_or(20),
        seed,
        parallel: arg("--parallel").unwrap_or(6) as usize,
        settle: arg("--settle-seconds")
            .map(Duration::from_secs)
            .unwrap_or(defaults.settle),
        cluster_connection: match text_arg("--connection").as_deref() {
            Some("cluster") => Some(true),
            Some("namespaced") => Some(false),
            _ => None,
        },
        ..defaults
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        println!(
            "chaos campaign: {} trials from seed {} ({} at a time); logs of failed trials in {}",
            opts.trials,
            opts.seed,
            opts.parallel,
            opts.logs.display()
        );
        let start = Instant::now();
        let env = Arc::new(Env::start().await);
        let summary = campaign(env, opts, |r| println!("{}", r.lines())).await;
        let elapsed = start.elapsed();
        println!("{}", summary.line());
        println!("{}", summary.details());
        println!(
            "elapsed {:.1} s, {:.1} trials/minute",
            elapsed.as_secs_f64(),
            summary.trials as f64 * 60.0 / elapsed.as_secs_f64()
        );
    });
}
