//! `orgops run`: flags and environment of the operator.

use std::net::SocketAddr;
use std::time::Duration;

use crate::api::Vendor;
use crate::controller::{self, RunOptions};
use crate::vendors::connection::{AllowedEndpoints, ConnectionPolicy, parse_endpoint};

/// Options of `orgops run` (each also read from an `ORGOPS_…` environment variable).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Namespaces to watch (repeat or comma-separate); default: all.
    #[arg(long = "namespace", env = "ORGOPS_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Reconciles running at once.
    #[arg(long, env = "ORGOPS_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Vendor requests in flight per reconcile.
    #[arg(long, env = "ORGOPS_COPY_CONCURRENCY", default_value_t = 16)]
    pub copy_concurrency: usize,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "ORGOPS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Requests per second per vendor endpoint, for every vendor (default: each vendor's
    /// documented limit).
    #[arg(long, env = "ORGOPS_VENDOR_RATE_LIMIT")]
    pub vendor_rate_limit: Option<u32>,
    /// Per-vendor request rates, e.g. `rossum=10,dataloop=5` (win over --vendor-rate-limit).
    #[arg(long, env = "ORGOPS_VENDOR_RATE_LIMITS", value_delimiter = ',', value_parser = key_value)]
    pub vendor_rate_limits: Vec<(String, String)>,
    /// Default endpoint per vendor for connections without spec.endpoint, e.g.
    /// `rossum=https://acme.rossum.app/api/v1` (trusted: it is the admin's).
    #[arg(long, env = "ORGOPS_VENDOR_ENDPOINTS", value_delimiter = ',', value_parser = key_value)]
    pub vendor_endpoints: Vec<(String, String)>,
    /// Endpoints a namespaced VendorConnection may use, per vendor: `vendor=scheme://host[:port][/path]`,
    /// the host may start with `*.` and the port may be `*` (repeat or comma-separate). Default:
    /// each vendor's public API hosts. ClusterVendorConnections are not restricted.
    #[arg(long, env = "ORGOPS_ALLOWED_ENDPOINTS", value_delimiter = ',', value_parser = key_value)]
    pub allowed_endpoints: Vec<(String, String)>,
    /// How often each connection's credentials are checked at the vendor, e.g. `5m`.
    #[arg(long, env = "ORGOPS_CONNECTION_CHECK_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    pub connection_check_interval: Duration,
    /// Only callers the Kubernetes API authorizes (TokenReview, then a SubjectAccessReview for
    /// `get` on the non-resource URL `/metrics`) may read /metrics.
    #[arg(long, env = "ORGOPS_METRICS_AUTH", default_value_t = false, action = clap::ArgAction::Set)]
    pub metrics_auth: bool,
    /// PEM certificate chain: serve /metrics, /healthz and /readyz over HTTPS (re-read when
    /// the file changes). Needs --metrics-tls-key-file.
    #[arg(
        long,
        env = "ORGOPS_METRICS_TLS_CERT_FILE",
        requires = "metrics_tls_key_file"
    )]
    pub metrics_tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --metrics-tls-cert-file.
    #[arg(
        long,
        env = "ORGOPS_METRICS_TLS_KEY_FILE",
        requires = "metrics_tls_cert_file"
    )]
    pub metrics_tls_key_file: Option<std::path::PathBuf>,
    /// Check the configuration, print it, and exit without connecting to anything.
    #[arg(long)]
    pub validate_config: bool,
    /// Elect a leader through a Lease so that only one replica acts.
    #[arg(long, env = "ORGOPS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "ORGOPS_LEASE_NAME", default_value = "orgops-leader")]
    pub lease_name: String,
    /// Namespace of the leader Lease (in a pod: its own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a Lease stays valid without renewal; a killed leader is replaced within it.
    #[arg(long, env = "ORGOPS_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// This replica's identity (in a pod: its name, stable across container restarts).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Drift re-check period of Organizations without `spec.syncInterval`, e.g. `10m`
    /// (30s to 24h).
    #[arg(long, env = "ORGOPS_DEFAULT_SYNC_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    pub default_sync_interval: Duration,
    /// Log format.
    #[arg(long, env = "ORGOPS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the operator with the ambient kubeconfig or in-cluster configuration.
pub async fn run(args: RunArgs) -> Result<(), controller::Error> {
    let options = options(&args)?;
    if args.validate_config {
        println!("{options:#?}");
        return Ok(());
    }
    let client = kube::Client::try_default()
        .await
        .map_err(|e| controller::Error::Setup(format!("cannot reach the Kubernetes API: {e}")))?;
    controller::run(client, options).await
}

fn options(args: &RunArgs) -> Result<RunOptions, controller::Error> {
    let mut policy = ConnectionPolicy::default();
    for (k, v) in &args.vendor_rate_limits {
        let rate: u32 = v.parse().ok().filter(|r| *r > 0).ok_or_else(|| {
            controller::Error::Setup(format!(
                "--vendor-rate-limits {k}={v}: not a positive number"
            ))
        })?;
        policy.default_rates.insert(vendor(k)?, rate);
    }
    if let Some(r) = args.vendor_rate_limit {
        for v in VENDORS {
            policy.default_rates.entry(v).or_insert(r.max(1));
        }
    }
    for (k, v) in &args.vendor_endpoints {
        parse_endpoint(v)
            .map_err(|e| controller::Error::Setup(format!("--vendor-endpoints {k}={v}: {e}")))?;
        policy.default_endpoints.insert(vendor(k)?, v.clone());
    }
    if !args.allowed_endpoints.is_empty() {
        let pairs = args
            .allowed_endpoints
            .iter()
            .map(|(k, v)| Ok((vendor(k)?, v.as_str())))
            .collect::<Result<Vec<_>, controller::Error>>()?;
        policy.allowed = AllowedEndpoints::from_pairs(pairs)
            .map_err(|e| controller::Error::Setup(format!("--allowed-endpoints: {e}")))?;
    }
    Ok(RunOptions {
        namespaces: args.namespaces.clone(),
        concurrency: args.concurrency,
        listen: args.listen,
        policy,
        connection_check_interval: args.connection_check_interval,
        own_namespace: Some(args.lease_namespace.clone()),
        metrics_auth: args.metrics_auth,
        metrics_tls: match (&args.metrics_tls_cert_file, &args.metrics_tls_key_file) {
            (Some(cert), Some(key)) => Some(controller::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        copy_concurrency: args.copy_concurrency,
        default_sync_interval: args.default_sync_interval,
        lease: args
            .leader_election
            .then(|| controller::leader::LeaseConfig {
                name: args.lease_name.clone(),
                namespace: args.lease_namespace.clone(),
                identity: args.identity.clone().unwrap_or_else(default_identity),
                duration: Duration::from_secs(args.lease_duration_seconds.max(2)),
                renew: Duration::from_secs((args.lease_duration_seconds / 3).max(1)),
            }),
    })
}

const VENDORS: [Vendor; 4] = [
    Vendor::Rossum,
    Vendor::Dataloop,
    Vendor::RenderedAi,
    Vendor::OpenLattice,
];

fn vendor(name: &str) -> Result<Vendor, controller::Error> {
    VENDORS
        .into_iter()
        .find(|v| v.as_str() == name)
        .ok_or_else(|| {
            controller::Error::Setup(format!(
                "unknown vendor {name:?}; use one of {}",
                VENDORS.map(Vendor::as_str).join(", ")
            ))
        })
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "orgops".to_string());
    format!("{host}-{}", std::process::id())
}

/// The same bounds as `spec.syncInterval` (30s..24h): a default below them would let every
/// Organization without its own interval hog the shared rate limits.
fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::engine::desired::check_sync_interval(s).map_err(|why| format!("{s:?} {why}"))
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("{s:?} is not vendor=value"))
}
