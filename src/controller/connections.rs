//! The connection registry: one vendor client per connection — one login and one token bucket
//! shared by every Organization and OrgMembership that uses it — built from the connection
//! resource, the operator's [`ConnectionPolicy`], and the Secret it names (read with GET only).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use crate::api::{ClusterVendorConnection, ConnectionKind, Organization, VendorConnection};
use crate::vendors::connection::{ConnectionConfig, ConnectionPolicy, ConnectionProblem};
use crate::vendors::{Endpoints, HttpConfig, VendorClient, VendorError, connect};

/// Why an Organization cannot get a vendor client.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The Organization names no connection (written before `connectionRef` existed).
    #[error(
        "spec.connectionRef is not set: create a VendorConnection (or use a ClusterVendorConnection) and name it in spec.connectionRef; spec.connection is no longer read"
    )]
    NoReference,
    /// The connection cannot be used; a human must change something.
    #[error(transparent)]
    Problem(#[from] ConnectionProblem),
    /// The Secret lacks a key, or the client cannot be built.
    #[error(transparent)]
    Vendor(#[from] VendorError),
    /// The Kubernetes API failed (transient).
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl ConnectionError {
    /// CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectionError::NoReference => "ConnectionRefMissing",
            ConnectionError::Problem(p) => p.reason(),
            ConnectionError::Vendor(e) => e.category(),
            ConnectionError::Kube(_) => "KubernetesApi",
        }
    }

    /// True when only a human can fix it (so the resource is parked, not retried).
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectionError::Kube(_) => false,
            ConnectionError::Vendor(e) => !e.is_transient(),
            _ => true,
        }
    }
}

/// A usable connection.
#[derive(Clone)]
pub struct Resolved {
    /// The shared client.
    pub client: Arc<dyn VendorClient>,
    /// The connection as configured.
    pub config: ConnectionConfig,
    /// Changes whenever the connection's spec or its Secret changes.
    pub version: String,
    /// The endpoint in use.
    pub endpoint: String,
}

struct Built {
    /// Its Secret is gone or unusable: not for new work, but a deletion may still use it.
    retired: bool,
    uid: String,
    /// What the client was built from: a new generation with the same configuration (e.g. the
    /// deletion mark) keeps the client, so cleanup still works after the Secret is gone.
    config: ConnectionConfig,
    secret_version: String,
    resolved: Resolved,
}

/// Clients by connection, plus the operator-wide connection policy.
pub struct Connections {
    /// Allow-list, default endpoints and rates.
    pub policy: ConnectionPolicy,
    endpoints: Arc<Endpoints>,
    http: HttpConfig,
    built: Mutex<HashMap<String, Built>>,
}

/// A connection resource of either kind.
pub struct ConnectionObject {
    /// Its configuration.
    pub config: ConnectionConfig,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
}

impl From<&VendorConnection> for ConnectionObject {
    fn from(c: &VendorConnection) -> Self {
        Self {
            config: c.config(),
            uid: c.uid().unwrap_or_default(),
            generation: c.metadata.generation,
        }
    }
}

impl From<&ClusterVendorConnection> for ConnectionObject {
    fn from(c: &ClusterVendorConnection) -> Self {
        Self {
            config: c.config(),
            uid: c.uid().unwrap_or_default(),
            generation: c.metadata.generation,
        }
    }
}

/// The connection `name` of `api`, or `NotFound` naming `what`.
async fn fetch<K>(
    api: Api<K>,
    name: &str,
    what: String,
) -> Result<ConnectionObject, ConnectionError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    for<'a> ConnectionObject: From<&'a K>,
{
    match api.get_opt(name).await? {
        Some(k) => Ok(ConnectionObject::from(&k)),
        None => Err(ConnectionProblem::NotFound(format!("{what} (spec.connectionRef)")).into()),
    }
}

impl Connections {
    /// An empty registry.
    pub fn new(policy: ConnectionPolicy, endpoints: Arc<Endpoints>, http: HttpConfig) -> Self {
        Self {
            policy,
            endpoints,
            http,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The connection an Organization names, as its vendor client. `cleanup`: for a deletion,
    /// which may use the last client built even if the Secret has gone since (as it does when a
    /// namespace is deleted, in no particular order).
    pub async fn for_organization(
        &self,
        kube: &Client,
        org: &Organization,
        cleanup: bool,
    ) -> Result<Resolved, ConnectionError> {
        let namespace = org.namespace().unwrap_or_default();
        let reference = org
            .spec
            .connection_ref
            .as_ref()
            .ok_or(ConnectionError::NoReference)?;
        let object = match reference.kind {
            ConnectionKind::VendorConnection => {
                fetch(
                    Api::<VendorConnection>::namespaced(kube.clone(), &namespace),
                    &reference.name,
                    format!("VendorConnection {namespace}/{}", reference.name),
                )
                .await?
            }
            ConnectionKind::ClusterVendorConnection => {
                fetch(
                    Api::<ClusterVendorConnection>::all(kube.clone()),
                    &reference.name,
                    format!("ClusterVendorConnection {}", reference.name),
                )
                .await?
            }
        };
        self.policy
            .admit(&object.config, org.spec.vendor, &namespace)?;
        if let Some(r) = self.cached(&object, cleanup) {
            return Ok(r);
        }
        match self.refresh(kube, &object).await {
            Err(ConnectionError::Problem(_)) if cleanup => self
                .cached(&object, true)
                .ok_or_else(|| unreachable_secret(&object)),
            other => other,
        }
    }

    fn cached(&self, object: &ConnectionObject, retired_too: bool) -> Option<Resolved> {
        let built = self.built.lock().ok()?;
        let b = built.get(&object.config.id)?;
        (b.uid == object.uid && b.config == object.config && (retired_too || !b.retired))
            .then(|| b.resolved.clone())
    }

    /// Reads the connection's Secret (GET) and returns its client: the one already built for
    /// this version of the connection and Secret, else a new one (which makes no request yet).
    pub async fn refresh(
        &self,
        kube: &Client,
        object: &ConnectionObject,
    ) -> Result<Resolved, ConnectionError> {
        let config = &object.config;
        let admitted = self.policy.check(config)?;
        let secret = Api::<Secret>::namespaced(kube.clone(), &config.secret.namespace)
            .get_opt(&config.secret.name)
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 403 => {
                    ConnectionError::Problem(ConnectionProblem::Secret {
                        id: config.id.clone(),
                        secret: config.secret.clone(),
                        why: format!(
                            "cannot be read by the operator ({}); grant it get on Secrets in namespace {}",
                            s.message, config.secret.namespace
                        ),
                    })
                }
                other => ConnectionError::Kube(other),
            })?
            .ok_or_else(|| ConnectionProblem::Secret {
                id: config.id.clone(),
                secret: config.secret.clone(),
                why: "does not exist".into(),
            })?;
        let secret_version = secret.resource_version().unwrap_or_default();
        let mut built = match self.built.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(b) = built.get(&config.id)
            && b.uid == object.uid
            && b.config == object.config
            && b.secret_version == secret_version
            && !b.retired
        {
            return Ok(b.resolved.clone());
        }
        let credentials = crate::api::credentials_from_secret(&config.secret.to_string(), &secret);
        // The connection's own token bucket (its rate in the key, so a new rate is a new
        // bucket); the vendor comes first for the metrics' label.
        let http = HttpConfig {
            rate_per_second: admitted.rate,
            rate_key: Some(format!(
                "{} {} {} {}/s",
                config.vendor, config.id, object.uid, admitted.rate
            )),
            ..self.http.clone()
        };
        let client = connect(
            config.vendor,
            Some(&admitted.endpoint),
            credentials,
            http,
            &self.endpoints,
        )?;
        let resolved = Resolved {
            client,
            config: config.clone(),
            version: format!(
                "{}/{}/{secret_version}",
                object.uid,
                object.generation.unwrap_or_default()
            ),
            endpoint: admitted.endpoint,
        };
        built.insert(
            config.id.clone(),
            Built {
                retired: false,
                uid: object.uid.clone(),
                config: object.config.clone(),
                secret_version,
                resolved: resolved.clone(),
            },
        );
        Ok(resolved)
    }

    /// Stops handing out a connection's client for new work (its Secret is gone or unusable);
    /// a deletion may still use it.
    pub fn retire(&self, id: &str) {
        if let Ok(mut built) = self.built.lock()
            && let Some(b) = built.get_mut(id)
        {
            b.retired = true;
        }
    }

    /// Drops the client of a connection that is gone.
    pub fn forget(&self, id: &str) {
        if let Ok(mut built) = self.built.lock() {
            built.remove(id);
        }
    }
}

fn unreachable_secret(object: &ConnectionObject) -> ConnectionError {
    ConnectionProblem::Secret {
        id: object.config.id.clone(),
        secret: object.config.secret.clone(),
        why: "cannot be read, and no client was built from it before".into(),
    }
    .into()
}
