//! Deep-copy benchmark: the template fixture scaled to ~1,000 objects, copied through the Rossum
//! simulator with 50 ms latency per request and a server-side rate limit, at Rossum's documented
//! 10 req/s and at 100 req/s, plus a one-at-a-time copy at 100 req/s for the speed-up.
//!
//! `cargo bench --bench deep_copy` (optional args: `--scale N`, `--latency-ms N`, `--quick`,
//! `--skip-10`).
//! Prints, per run: requests, elapsed, elapsed ÷ (requests ÷ rate) — the rate-limit bound,
//! target ≤ 1.2 — and the speed-up of the concurrent copy over the one-at-a-time copy
//! (target ≥ 5× at 100 req/s).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orgops::api::Vendor;
use orgops::engine::copy::{KindProgress, ProgressSink};
use orgops::engine::org::Sink;
use orgops::engine::{
    DesiredOrg, EngineOptions, Mode, PendingCreate, TemplateSelector, TemplateSpec, reconcile_org,
};
use orgops::simulator::rossum::{Admin, RossumSimulator, Seed};
use orgops::simulator::{FaultSpec, ServeOptions};
use orgops::vendors::{Credentials, Endpoints, HttpConfig, Owner, connect};
use secrecy::SecretString;

struct NullSink;
impl ProgressSink for NullSink {
    fn copy_progress(&self, _: &BTreeMap<&'static str, KindProgress>) {}
}
#[async_trait::async_trait]
impl Sink for NullSink {
    async fn save_pending_create(&self, _: Option<&PendingCreate>) -> Result<(), String> {
        Ok(())
    }
    async fn save_external_id(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

struct Outcome {
    requests: u64,
    objects: u32,
    elapsed: Duration,
}

async fn run(scale: usize, latency: Duration, rate: u32, concurrency: usize) -> Outcome {
    let admin = Admin {
        username: "bench@orgops.example".into(),
        password: "bench-password".into(),
        create_key: "bench-key".into(),
    };
    let seed = Seed::template().expect("fixture").scaled(scale);
    let options = ServeOptions {
        faults: FaultSpec::none(),
        latency,
        rate_limit: Some(rate),
    };
    let sim = RossumSimulator::start(0, &seed, std::slice::from_ref(&admin), options)
        .await
        .expect("simulator");
    let mut values = BTreeMap::new();
    values.insert("username".to_string(), SecretString::from(admin.username));
    values.insert("password".to_string(), SecretString::from(admin.password));
    values.insert(
        "createKey".to_string(),
        SecretString::from(admin.create_key),
    );
    let config = HttpConfig {
        rate_per_second: rate,
        ..HttpConfig::default()
    };
    let client = connect(
        Vendor::Rossum,
        Some(&sim.base_url),
        Credentials::new("bench/creds", values),
        config,
        &Endpoints::default(),
    )
    .expect("client");
    let desired = DesiredOrg {
        owner: Owner {
            key: "bench/org".into(),
            uid: None,
        },
        generation: None,
        vendor: Vendor::Rossum,
        display_name: "Bench org".into(),
        external_id: None,
        template: Some(TemplateSpec {
            selector: TemplateSelector::Name("Template org".into()),
            include: None,
            secrets: Default::default(),
            prune: false,
        }),
        settings: serde_json::json!({"firstUser": {"email": "bench-first@orgops.example"}}),
        mode: Mode::Apply,
        sync_interval: Duration::from_secs(600),
    };
    let engine = EngineOptions {
        concurrency,
        ..EngineOptions::default()
    };
    let start = Instant::now();
    let report = reconcile_org(
        client.as_ref(),
        &desired,
        &Default::default(),
        &NullSink,
        &engine,
    )
    .await;
    let elapsed = start.elapsed();
    assert!(
        report.ready,
        "bench copy not Ready: {}",
        report.ready_message()
    );
    let throttled = sim.running.stats.throttled.load(Ordering::Relaxed);
    if throttled > 0 {
        eprintln!("  note: the simulator throttled {throttled} requests");
    }
    Outcome {
        requests: sim.running.stats.requests.load(Ordering::Relaxed),
        objects: report.copy.map(|c| c.totals().total).unwrap_or(0),
        elapsed,
    }
}

fn line(label: &str, rate: u32, o: &Outcome) -> f64 {
    let bound = o.requests as f64 / f64::from(rate);
    let ratio = o.elapsed.as_secs_f64() / bound;
    println!(
        "{label:<34} objects {:>5}  requests {:>5}  elapsed {:>7.2}s  rate-limit bound {:>7.2}s  ratio {:>5.2}",
        o.objects,
        o.requests,
        o.elapsed.as_secs_f64(),
        bound,
        ratio
    );
    ratio
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let quick = args.iter().any(|a| a == "--quick");
    let scale = arg("--scale", if quick { 1 } else { 5 });
    let latency = Duration::from_millis(arg("--latency-ms", 50) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "deep copy of the template fixture x{scale}, {} ms latency per request",
        latency.as_millis()
    );
    runtime.block_on(async {
        let r10 = if args.iter().any(|a| a == "--skip-10") {
            f64::NAN
        } else {
            let slow = run(scale, latency, 10, 16).await;
            line("concurrent @ 10 req/s", 10, &slow)
        };
        let fast = run(scale, latency, 100, 16).await;
        let r100 = line("concurrent @ 100 req/s", 100, &fast);
        let serial = run(scale, latency, 100, 1).await;
        line("one at a time @ 100 req/s", 100, &serial);
        let speedup = serial.elapsed.as_secs_f64() / fast.elapsed.as_secs_f64();
        println!();
        println!("rate-limit bound ratio @ 10 req/s:  {r10:.2} (target <= 1.2)");
        println!("rate-limit bound ratio @ 100 req/s: {r100:.2} (target <= 1.2)");
        println!("speed-up over one at a time @ 100 req/s: {speedup:.1}x (target >= 5x)");
    });
}
