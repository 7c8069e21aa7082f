//! Prometheus metrics: reconciles, failures, durations, copies, leadership, and vendor
//! requests (read from the shared HTTP layer at scrape time).

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::watched::{WAITING_REASONS, WatchedResources};
use crate::vendors::Endpoints;

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `organization` or `orgmembership`.
    pub kind: String,
    /// `ready`, `not_ready`, `error`, `skipped`.
    pub result: String,
}

/// Labels of failure counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Resource kind.
    pub kind: String,
    /// Bounded reason.
    pub reason: String,
}

/// Labels per resource kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Resource kind or vendor.
    pub kind: String,
}

/// All metrics.
pub struct Metrics {
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Failures by kind and reason.
    pub failures: Family<FailureLabels, Counter>,
    /// Reconcile duration.
    pub duration: Family<KindLabels, Histogram>,
    /// Template objects created or updated at vendors.
    pub objects_copied: Family<KindLabels, Counter>,
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// Template changes seen and fanned out to every Organization copying the template.
    pub template_changes: Counter,
    registry: Registry,
}

#[derive(Debug)]
struct VendorRequests(Arc<Endpoints>);

impl Collector for VendorRequests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "vendor_requests",
            "Requests sent to vendor APIs, by vendor, method and status (0 = no response)",
            None,
            MetricType::Counter,
        )?;
        for (endpoint, counts) in self.0.snapshot() {
            let vendor = endpoint.split(' ').next().unwrap_or("").to_string();
            for ((method, status), n) in counts {
                let labels = vec![
                    ("vendor".to_string(), vendor.clone()),
                    ("method".to_string(), method),
                    ("status".to_string(), status.to_string()),
                ];
                ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Readiness of the watched resources, read from the controllers' caches at scrape time: what
/// `kubectl get` shows, so a new leader reports the same as the old one.
struct ResourceReadiness(WatchedResources);

impl std::fmt::Debug for ResourceReadiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResourceReadiness")
    }
}

impl Collector for ResourceReadiness {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.0.readiness(jiff::Timestamp::now());
        let mut counts: std::collections::BTreeMap<(&str, bool, &str), i64> = Default::default();
        let mut oldest: std::collections::BTreeMap<&str, i64> =
            WatchedResources::KINDS.iter().map(|k| (*k, 0)).collect();
        for (kind, r) in &all {
            *counts
                .entry((kind, r.ready, r.reason.as_str()))
                .or_default() += 1;
            if !r.ready && !WAITING_REASONS.contains(&r.reason.as_str()) {
                let age = oldest.entry(kind).or_default();
                *age = (*age).max(r.age_seconds);
            }
        }
        let mut metric = encoder.encode_descriptor(
            "resources",
            "Watched resources by kind, Ready status and Ready reason",
            None,
            MetricType::Gauge,
        )?;
        for ((kind, ready, reason), n) in counts {
            let labels = [
                ("kind", kind.to_string()),
                ("ready", ready.to_string()),
                ("reason", reason.to_string()),
            ];
            ConstGauge::new(n).encode(metric.encode_family(&labels)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "not_ready_seconds_max",
            "Longest time a watched resource of this kind has not been Ready (waiting on a person, as Invited or Suspended, not counted)",
            None,
            MetricType::Gauge,
        )?;
        for (kind, age) in oldest {
            ConstGauge::new(age).encode(metric.encode_family(&[("kind", kind.to_string())])?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Metrics registered under `orgops_`, including vendor requests of `endpoints` and the
    /// readiness of the `watched` resources.
    pub fn new(endpoints: Arc<Endpoints>, watched: WatchedResources) -> Self {
        let mut registry = Registry::with_prefix("orgops");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ])
        });
        let objects_copied = Family::<KindLabels, Counter>::default();
        let leader = Gauge::default();
        let template_changes = Counter::default();
        registry.register(
            "template_changes",
            "Template changes seen and fanned out to every Organization copying the template",
            template_changes.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciles by kind and reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        registry.register(
            "objects_copied",
            "Template objects created or updated at vendors",
            objects_copied.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register_collector(Box::new(VendorRequests(endpoints)));
        registry.register_collector(Box::new(ResourceReadiness(watched)));
        Self {
            reconciles,
            failures,
            duration,
            objects_copied,
            leader,
            template_changes,
            registry,
        }
    }

    /// Text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one reconcile of `kind` with `result`.
    pub fn reconciled(&self, kind: &str, result: &str) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Starts timing a reconcile of `kind`; the duration is recorded when the guard drops.
    pub fn timer(&self, kind: &str) -> Timer<'_> {
        Timer {
            metrics: self,
            kind: kind.to_string(),
            start: Instant::now(),
        }
    }
}

/// Records a reconcile's duration on drop.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    kind: String,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&KindLabels {
                kind: self.kind.clone(),
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn membership(
        name: &str,
        ready: &str,
        reason: &str,
        minutes_ago: i64,
    ) -> crate::api::OrgMembership {
        let at = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes_ago);
        serde_json::from_value(serde_json::json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": "OrgMembership",
            "metadata": {"name": name, "namespace": "t", "uid": name},
            "spec": {"organizationRef": {"name": "o"}, "user": {"email": "a@b.example"}, "role": "member"},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason,
                "message": "", "lastTransitionTime": at.to_string()}]}
        }))
        .unwrap()
    }

    #[test]
    fn readiness_is_counted_by_reason_and_waiting_on_a_person_is_no_age() {
        let watched = WatchedResources::default();
        let mut writer: Writer<crate::api::OrgMembership> = Writer::default();
        for m in [
            membership("ready", "True", "Ready", 90),
            membership("invited", "False", "Invited", 600),
            membership("failing", "False", "RoleConflict", 45),
        ] {
            writer.apply_watcher_event(&Event::Apply(m));
        }
        watched.memberships.add(writer.as_reader());
        let text = Metrics::new(Arc::new(Endpoints::default()), watched).encode();
        for line in [
            "orgops_resources{kind=\"orgmembership\",ready=\"true\",reason=\"Ready\"} 1",
            "orgops_resources{kind=\"orgmembership\",ready=\"false\",reason=\"Invited\"} 1",
            "orgops_resources{kind=\"orgmembership\",ready=\"false\",reason=\"RoleConflict\"} 1",
            "orgops_not_ready_seconds_max{kind=\"organization\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        // The invitation (10 h) does not count; the role conflict (45 min) does.
        let age: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("orgops_not_ready_seconds_max{kind=\"orgmembership\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((2700..2760).contains(&age), "{age}");
    }
}
