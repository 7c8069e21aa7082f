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
    /// With --namespace: the name of the operator's RoleBinding in each watched namespace, which
    /// it keeps (a finalizer) until a deleted namespace holds none of its finalizers, so that
    /// deleting a namespace never strands them.
    #[arg(long, env = "ORGOPS_RBAC_BINDING_NAME")]
    pub rbac_binding_name: Option<String>,
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
    /// Seconds the leader keeps acting without renewing its Lease; then it stops writing to
    /// vendors, cancels its reconciles and exits, before another replica may take the Lease.
    /// Less than --lease-duration-seconds; default: two thirds of it (10 for 15).
    #[arg(long, env = "ORGOPS_LEASE_RENEW_DEADLINE", value_parser = parse_seconds)]
    pub lease_renew_deadline_seconds: Option<Duration>,
    /// Seconds between attempts to renew (or to acquire) the Lease. Less than the renew
    /// deadline; default: 2/15 of the lease duration (2 for 15), at most half the deadline.
    #[arg(long, env = "ORGOPS_LEASE_RETRY_PERIOD", value_parser = parse_seconds)]
    pub lease_retry_period_seconds: Option<Duration>,
    /// This replica's identity (in a pod: its name, stable across container restarts).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Drift re-check period of Organizations without `spec.syncInterval`, e.g. `10m`
    /// (1s to 24h; at least --min-sync-interval).
    #[arg(long, env = "ORGOPS_DEFAULT_SYNC_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    pub default_sync_interval: Duration,
    /// The shortest drift re-check period any Organization gets, whatever its
    /// `spec.syncInterval`: a floor that keeps tenants from using up a shared connection's rate
    /// limit (1s to 24h).
    #[arg(long, env = "ORGOPS_MIN_SYNC_INTERVAL", default_value = "30s", value_parser = parse_interval)]
    pub min_sync_interval: Duration,
    /// How often usage, limits and billing are read into status (`kubectl get orgs -o wide`),
    /// e.g. `1h`: a slower clock than drift, since some vendors charge extra requests for it
    /// (1s to 24h; a reconcile that changes settings or creates copies reads it at once).
    #[arg(long, env = "ORGOPS_USAGE_INTERVAL", default_value = "1h", value_parser = parse_interval)]
    pub usage_interval: Duration,
    /// How often each template in use is read, once for every Organization copying it; a
    /// change re-syncs all of them at once (1s to 24h).
    #[arg(long, env = "ORGOPS_TEMPLATE_INTERVAL", default_value = "1m", value_parser = parse_interval)]
    pub template_interval: Duration,
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
    let lease = match args.leader_election {
        true => Some(lease(args)?),
        false => None,
    };
    Ok(RunOptions {
        namespaces: args.namespaces.clone(),
        concurrency: args.concurrency,
        listen: args.listen,
        policy,
        connection_check_interval: args.connection_check_interval,
        own_namespace: Some(args.lease_namespace.clone()),
        metrics_auth: args.metrics_auth,
        rbac_binding: args.rbac_binding_name.clone(),
        metrics_tls: match (&args.metrics_tls_cert_file, &args.metrics_tls_key_file) {
            (Some(cert), Some(key)) => Some(controller::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        copy_concurrency: args.copy_concurrency,
        default_sync_interval: args.default_sync_interval.max(args.min_sync_interval),
        min_sync_interval: args.min_sync_interval,
        usage_interval: args.usage_interval,
        template_interval: args.template_interval,
        lease,
    })
}

/// The Lease settings, with `retry period < renew deadline < lease duration`: the leader must
/// stop before its Lease can be taken.
fn lease(args: &RunArgs) -> Result<controller::leader::LeaseConfig, controller::Error> {
    let duration = Duration::from_secs(args.lease_duration_seconds.max(2));
    let renew_deadline = args
        .lease_renew_deadline_seconds
        .unwrap_or(duration * 2 / 3);
    if renew_deadline >= duration {
        return Err(controller::Error::Setup(format!(
            "--lease-renew-deadline-seconds ({}) must be less than --lease-duration-seconds ({}): \
             the leader must stop before another replica may take its Lease",
            renew_deadline.as_secs_f64(),
            duration.as_secs()
        )));
    }
    let retry_period = args
        .lease_retry_period_seconds
        .unwrap_or_else(|| (duration * 2 / 15).min(renew_deadline / 2));
    if retry_period >= renew_deadline {
        return Err(controller::Error::Setup(format!(
            "--lease-retry-period-seconds ({}) must be less than the renew deadline ({}): \
             the leader must be able to retry a failed renewal",
            retry_period.as_secs_f64(),
            renew_deadline.as_secs_f64()
        )));
    }
    Ok(controller::leader::LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args.lease_namespace.clone(),
        identity: args.identity.clone().unwrap_or_else(default_identity),
        duration,
        renew_deadline,
        retry_period,
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

/// The same bounds as `spec.syncInterval` (1s..24h).
fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::engine::desired::check_sync_interval(s).map_err(|why| format!("{s:?} {why}"))
}

/// A positive number of seconds, e.g. `10` or `0.5`.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("{s:?} is not vendor=value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn lease_of(args: &[&str]) -> Result<controller::leader::LeaseConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("orgops").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        options(&cli.run)
            .map_err(|e| e.to_string())
            .map(|o| o.lease.expect("leader election is on"))
    }

    #[test]
    fn lease_timings_default_to_client_go_ratios() {
        let l = lease_of(&["--identity", "a"]).unwrap();
        assert_eq!(l.duration, Duration::from_secs(15));
        assert_eq!(l.renew_deadline, Duration::from_secs(10));
        assert_eq!(l.retry_period, Duration::from_secs(2));
        // They scale with a short lease and stay ordered.
        let l = lease_of(&["--lease-duration-seconds", "3"]).unwrap();
        assert_eq!(l.renew_deadline, Duration::from_secs(2));
        assert_eq!(l.retry_period, Duration::from_millis(400));
        // An explicit deadline bounds the default retry period.
        let l = lease_of(&[
            "--lease-duration-seconds",
            "60",
            "--lease-renew-deadline-seconds",
            "4",
        ])
        .unwrap();
        assert_eq!(l.renew_deadline, Duration::from_secs(4));
        assert_eq!(l.retry_period, Duration::from_secs(2));
        let l = lease_of(&[
            "--lease-duration-seconds",
            "4",
            "--lease-renew-deadline-seconds",
            "2.5",
            "--lease-retry-period-seconds",
            "0.5",
        ])
        .unwrap();
        assert_eq!(l.renew_deadline, Duration::from_millis(2500));
        assert_eq!(l.retry_period, Duration::from_millis(500));
    }

    #[test]
    fn lease_timings_out_of_order_are_refused() {
        let err = lease_of(&["--lease-renew-deadline-seconds", "15"]).unwrap_err();
        assert!(
            err.contains("must be less than --lease-duration-seconds (15)"),
            "{err}"
        );
        let err = lease_of(&["--lease-renew-deadline-seconds", "20"]).unwrap_err();
        assert!(err.contains("--lease-renew-deadline-seconds (20)"), "{err}");
        let err = lease_of(&["--lease-retry-period-seconds", "10"]).unwrap_err();
        assert!(
            err.contains("must be less than the renew deadline (10)"),
            "{err}"
        );
        for bad in ["0", "-1", "soon", "inf"] {
            let err = lease_of(&[&format!("--lease-retry-period-seconds={bad}")]).unwrap_err();
            assert!(
                err.contains("not a positive number of seconds"),
                "{bad}: {err}"
            );
        }
        // Without leader election the Lease settings are not used, so not checked.
        let cli = Cli::try_parse_from([
            "orgops",
            "--leader-election=false",
            "--lease-renew-deadline-seconds",
            "99",
        ])
        .unwrap();
        assert!(options(&cli.run).unwrap().lease.is_none());
    }
}
