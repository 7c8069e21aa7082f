//! What every reconcile shares: the Kubernetes client, the recorder, metrics, vendor clients
//! (one per endpoint and Secret version, so tokens and rate limits are reused), and per-object
//! memory used to skip echo reconciles and to back off failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::metrics::Metrics;
use crate::api::Vendor;
use crate::engine::EngineOptions;
use crate::vendors::{
    Credentials, Endpoints, HttpConfig, VendorClient, VendorError, connect, default_rate,
};

/// What a successful reconcile saw, to recognise a trigger that changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Version of what the resource depends on (its Secret; for memberships the Organization).
    pub dependency_version: Option<String>,
    /// When the next drift check is due.
    pub next_sync: Instant,
}

/// Shared controller state.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limits per vendor endpoint, shared by every reconcile.
    pub endpoints: Arc<Endpoints>,
    /// Engine tuning.
    pub engine: EngineOptions,
    /// Requests per second per vendor endpoint, by vendor name and (`*`) for all vendors;
    /// absent: the vendor's documented limit.
    pub vendor_rates: HashMap<String, u32>,
    /// Endpoint by vendor name, for Organizations without `spec.connection.endpoint`.
    pub vendor_endpoints: HashMap<String, String>,
    /// Drift re-check period for resources without `spec.syncInterval`.
    pub default_sync_interval: Duration,
    clients: Mutex<HashMap<String, Arc<dyn VendorClient>>>,
    seen: Mutex<HashMap<String, Seen>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for `client`.
    pub fn new(
        client: Client,
        endpoints: Arc<Endpoints>,
        engine: EngineOptions,
        vendor_rates: HashMap<String, u32>,
        vendor_endpoints: HashMap<String, String>,
        default_sync_interval: Duration,
    ) -> Self {
        let reporter = Reporter {
            controller: "orgops".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            metrics: Metrics::new(endpoints.clone()),
            client,
            endpoints,
            engine,
            vendor_rates,
            vendor_endpoints,
            default_sync_interval,
            clients: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The vendor client for these credentials, built once per Secret version.
    pub fn vendor_client(
        &self,
        vendor: Vendor,
        endpoint: Option<&str>,
        credentials: Credentials,
        secret_version: &str,
    ) -> Result<Arc<dyn VendorClient>, VendorError> {
        let key = format!(
            "{vendor} {} {} {secret_version}",
            endpoint.unwrap_or("-"),
            credentials.secret
        );
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let config = HttpConfig {
            rate_per_second: self
                .vendor_rates
                .get(vendor.as_str())
                .or(self.vendor_rates.get("*"))
                .copied()
                .unwrap_or(default_rate(vendor)),
            ..HttpConfig::default()
        };
        let client = connect(vendor, endpoint, credentials, config, &self.endpoints)?;
        if let Ok(mut m) = self.clients.lock() {
            // Older versions of the same Secret are of no further use.
            let prefix = key
                .rsplit_once(' ')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            m.retain(|k, _| !k.starts_with(&prefix));
            m.insert(key, client.clone());
        }
        Ok(client)
    }

    /// What the last successful reconcile of `uid` saw.
    pub fn seen(&self, uid: &str) -> Option<Seen> {
        self.seen.lock().ok().and_then(|m| m.get(uid).cloned())
    }

    /// Records a successful reconcile.
    pub fn remember(&self, uid: &str, seen: Option<Seen>) {
        if let Ok(mut m) = self.seen.lock() {
            match seen {
                Some(s) => m.insert(uid.to_string(), s),
                None => m.remove(uid),
            };
        }
    }

    /// Counts a failure of `uid` and returns the backoff before the next attempt.
    pub fn backoff(&self, uid: &str) -> Duration {
        let n = self
            .failures
            .lock()
            .map(|mut m| {
                let n = m.entry(uid.to_string()).or_default();
                *n += 1;
                *n
            })
            .unwrap_or(1);
        crate::vendors::http::backoff(Duration::from_secs(5), Duration::from_secs(300), n)
    }

    /// Forgets the failures of `uid`.
    pub fn succeeded(&self, uid: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(uid);
        }
    }
}
