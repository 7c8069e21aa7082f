//! Every object of one kind the controllers watch, over all watched namespaces: one reflector
//! store per namespace (`--namespaces a,b` runs one controller per namespace), read as one.
//! Answers "who else claims this org" across namespaces and feeds the readiness metrics.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::reflector::Store;

use crate::api::{ClusterVendorConnection, OrgMembership, Organization, VendorConnection};

/// The reflector stores of one kind, one per watched namespace (or one for all).
pub struct Watched<K: kube::Resource<DynamicType = ()> + Clone + 'static>(
    Arc<RwLock<Vec<Store<K>>>>,
);

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Clone for Watched<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Default for Watched<K> {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Vec::new())))
    }
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Watched<K> {
    /// Adds the store of one more watched scope.
    pub fn add(&self, store: Store<K>) {
        if let Ok(mut stores) = self.0.write() {
            stores.push(store);
        }
    }

    /// Whether any store was added (the controllers started).
    pub fn is_started(&self) -> bool {
        self.0.read().is_ok_and(|s| !s.is_empty())
    }

    /// Every object in every store.
    pub fn state(&self) -> Vec<Arc<K>> {
        match self.0.read() {
            Ok(stores) => stores.iter().flat_map(|s| s.state()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// What the readiness metrics need of a resource.
pub trait HasReady {
    /// The metrics' `kind` label.
    const KIND: &'static str;
    /// The resource's conditions.
    fn conditions(&self) -> &[Condition];
}

impl HasReady for Organization {
    const KIND: &'static str = "organization";
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasReady for OrgMembership {
    const KIND: &'static str = "orgmembership";
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasReady for VendorConnection {
    const KIND: &'static str = "vendorconnection";
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasReady for ClusterVendorConnection {
    const KIND: &'static str = "clustervendorconnection";
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

/// Reasons that wait on a person, not on orgops or the vendor (an invitation nobody accepted
/// yet, a suspended Organization): not Ready, but no failure to alert on.
pub const WAITING_REASONS: &[&str] = &["Invited", "Suspended"];

/// One resource as the readiness metrics see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// `Ready` is `True`.
    pub ready: bool,
    /// The `Ready` reason (`Pending` before the first status), at most 64 characters.
    pub reason: String,
    /// Seconds since `Ready` last changed (since creation before the first status).
    pub age_seconds: i64,
}

/// The readiness of `object` at `now`. Pure.
pub fn readiness<K: HasReady + kube::Resource>(object: &K, now: Timestamp) -> Readiness {
    let ready = object.conditions().iter().find(|c| c.type_ == "Ready");
    let since = ready
        .map(|c| c.last_transition_time.0)
        .or_else(|| object.meta().creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    // Reasons are CamelCase codes orgops writes; bounded all the same (label cardinality).
    let reason: String = ready
        .map_or("Pending", |c| c.reason.as_str())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    Readiness {
        ready: ready.is_some_and(|c| c.status == "True"),
        reason: if reason.is_empty() {
            "Unknown".into()
        } else {
            reason
        },
        age_seconds: now.duration_since(since).as_secs().max(0),
    }
}

/// Every watched resource's readiness, by kind.
#[derive(Clone, Default)]
pub struct WatchedResources {
    /// Organizations.
    pub organizations: Watched<Organization>,
    /// OrgMemberships.
    pub memberships: Watched<OrgMembership>,
    /// VendorConnections.
    pub connections: Watched<VendorConnection>,
    /// ClusterVendorConnections.
    pub cluster_connections: Watched<ClusterVendorConnection>,
}

impl WatchedResources {
    /// `(kind, readiness)` of every watched resource (none before the controllers start).
    pub fn readiness(&self, now: Timestamp) -> Vec<(&'static str, Readiness)> {
        fn of<K: HasReady + kube::Resource<DynamicType = ()> + Clone>(
            w: &Watched<K>,
            now: Timestamp,
            out: &mut Vec<(&'static str, Readiness)>,
        ) {
            out.extend(
                w.state()
                    .iter()
                    .filter(|o| o.meta().deletion_timestamp.is_none())
                    .map(|o| (K::KIND, readiness(o.as_ref(), now))),
            );
        }
        let mut out = Vec::new();
        of(&self.organizations, now, &mut out);
        of(&self.memberships, now, &mut out);
        of(&self.connections, now, &mut out);
        of(&self.cluster_connections, now, &mut out);
        out
    }

    /// Names of the kinds (also when none is watched yet, so every series exists from start).
    pub const KINDS: [&'static str; 4] = [
        Organization::KIND,
        OrgMembership::KIND,
        VendorConnection::KIND,
        ClusterVendorConnection::KIND,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn org(conditions: Vec<Condition>, created: Timestamp) -> Organization {
        let mut o: Organization = serde_json::from_value(serde_json::json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "a", "namespace": "t"},
            "spec": {"vendor": "rossum", "displayName": "A"}
        }))
        .unwrap();
        o.metadata.creation_timestamp = Some(Time(created));
        o.status = Some(crate::api::OrganizationStatus {
            conditions,
            ..Default::default()
        });
        o
    }

    fn ready(status: &str, reason: &str, at: Timestamp) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(at),
            observed_generation: None,
        }
    }

    #[test]
    fn age_counts_from_the_last_ready_transition_else_from_creation() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let created: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let half: Timestamp = "2026-01-01T00:30:00Z".parse().unwrap();
        let r = readiness(
            &org(vec![ready("False", "CredentialsInvalid", half)], created),
            now,
        );
        assert_eq!(
            r,
            Readiness {
                ready: false,
                reason: "CredentialsInvalid".into(),
                age_seconds: 1800
            }
        );
        let r = readiness(&org(vec![], created), now);
        assert_eq!(
            (r.ready, r.reason.as_str(), r.age_seconds),
            (false, "Pending", 3600)
        );
        let r = readiness(&org(vec![ready("True", "Ready", half)], created), now);
        assert!(r.ready);
    }

    #[test]
    fn a_reason_is_bounded_and_plain() {
        let now = Timestamp::now();
        let r = readiness(
            &org(
                vec![ready(
                    "False",
                    &format!("{}\n{{x=\"y\"}}", "A".repeat(500)),
                    now,
                )],
                now,
            ),
            now,
        );
        assert_eq!(r.reason, "A".repeat(64));
    }
}
