//! What every reconcile shares: the Kubernetes client, the recorder, metrics, vendor clients
//! (one per connection, so logins and rate limits are shared), and per-object memory used to
//! skip echo reconciles and to back off failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::connections::Connections;
use super::metrics::Metrics;
use super::watched::WatchedResources;
use crate::engine::EngineOptions;
use crate::vendors::connection::ConnectionPolicy;
use crate::vendors::{Endpoints, Fence, HttpConfig};

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

/// Drift re-check periods set by the operator.
#[derive(Clone, Copy, Debug)]
pub struct SyncIntervals {
    /// For resources without `spec.syncInterval`.
    pub default: Duration,
    /// The floor for every resource.
    pub min: Duration,
}

impl Context {
    /// The drift re-check period of a resource that asks for `asked` (`None`: the default),
    /// never below the operator's floor.
    pub fn sync_interval(&self, asked: Option<Duration>) -> Duration {
        asked
            .unwrap_or(self.default_sync_interval)
            .max(self.min_sync_interval)
    }
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
    /// Vendor clients per connection, and the connection policy.
    pub connections: Connections,
    /// How often connections are checked at the vendor.
    pub connection_check_interval: Duration,
    /// Drift re-check period for resources without `spec.syncInterval`.
    pub default_sync_interval: Duration,
    /// No resource is re-checked more often than this.
    pub min_sync_interval: Duration,
    /// Vendor writes go out only while it holds (closed until the Lease is held, or opened for
    /// good without leader election).
    pub fence: Arc<Fence>,
    /// Every resource the controllers watch, over all watched namespaces (filled as the
    /// controllers start): answers which resource manages an org of a vendor without ownership
    /// markers, and feeds the readiness metrics.
    pub watched: WatchedResources,
    /// Shared template listings and the fan-out of template changes.
    pub templates: Arc<super::templates::TemplateFanOut>,
    seen: Mutex<HashMap<String, Seen>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for `client`.
    pub fn new(
        client: Client,
        endpoints: Arc<Endpoints>,
        engine: EngineOptions,
        policy: ConnectionPolicy,
        sync: SyncIntervals,
        connection_check_interval: Duration,
        template_interval: Duration,
    ) -> Self {
        let reporter = Reporter {
            controller: "orgops".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let fence = Arc::new(Fence::closed());
        let watched = WatchedResources::default();
        let http = HttpConfig {
            fence: Some(fence.clone()),
            ..HttpConfig::default()
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            metrics: Metrics::new(endpoints.clone(), watched.clone()),
            connections: Connections::new(policy, endpoints.clone(), http),
            fence,
            watched,
            templates: Arc::new(super::templates::TemplateFanOut::new(template_interval)),
            client,
            endpoints,
            engine,
            default_sync_interval: sync.default,
            min_sync_interval: sync.min,
            connection_check_interval,
            seen: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
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
