//! A few trials of the chaos campaign (`tests/support/chaos.rs`): vendor faults, SIGKILL and
//! SIGSTOP of one of two replicas, spec edits and deletions — and afterwards no duplicate,
//! nothing lost, nothing stuck. `cargo bench --bench chaos` runs many more.
//!
//! `ORGOPS_CHAOS_TRIALS` and `ORGOPS_CHAOS_SEED` change the trials (default: 3, seeds 1–3).

mod support;

use std::sync::Arc;

use support::chaos::{Env, Options, campaign};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_trials_leave_no_duplicate_nothing_lost_and_nothing_stuck() {
    let env = Arc::new(Env::start().await);
    let trials = env_u64("ORGOPS_CHAOS_TRIALS", 3);
    let opts = Options {
        trials,
        seed: env_u64("ORGOPS_CHAOS_SEED", 1),
        parallel: trials.clamp(1, 3) as usize,
        ..Options::default()
    };
    let summary = campaign(env, opts, |r| println!("{}", r.lines())).await;
    println!("{}", summary.line());
    println!("{}", summary.details());
    assert!(
        summary.clean(),
        "{}; replay a failed trial with `cargo bench --bench chaos -- --trials 1 --seed S` (seeds {:?})",
        summary.line(),
        summary.failed_seeds
    );
}
