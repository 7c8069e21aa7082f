//! Connections: which vendor account a client talks to, and the policy that decides whether a
//! connection may be used at all. Pure: nothing here makes a request.
//!
//! - A **namespaced** connection belongs to a tenant, so its endpoint must match the operator's
//!   allow-list ([`AllowedEndpoints`]); otherwise the credentials it names could be sent to any
//!   host the tenant controls.
//! - A **cluster** connection is the platform admin's: its endpoint is trusted, and it lists the
//!   namespaces whose Organizations may use it.

use std::collections::HashMap;

use url::Url;

use crate::api::Vendor;

/// Where a connection's credentials Secret lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretLocation {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
}

impl std::fmt::Display for SecretLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A connection as the operator and the CLI use it, converted once from its resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionConfig {
    /// `VendorConnection ns/name` or `ClusterVendorConnection name`, for messages and keys.
    pub id: String,
    /// The vendor.
    pub vendor: Vendor,
    /// The spec's endpoint, if any.
    pub endpoint: Option<String>,
    /// The credentials Secret.
    pub secret: SecretLocation,
    /// Requests per second, if the spec sets it.
    pub rate_limit: Option<u32>,
    /// A cluster connection: the admin's, so its endpoint needs no allow-list.
    pub trusted: bool,
    /// Namespaces whose Organizations may use it (`None`: all).
    pub allowed_namespaces: Option<Vec<String>>,
}

/// Why a connection cannot be used. `reason()` is the condition reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionProblem {
    /// The named connection does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The connection is for another vendor.
    #[error("{id} is for vendor {connection}, but the Organization's vendor is {organization}")]
    VendorMismatch {
        /// The connection.
        id: String,
        /// The connection's vendor.
        connection: Vendor,
        /// The Organization's vendor.
        organization: Vendor,
    },
    /// A cluster connection that does not list the Organization's namespace.
    #[error(
        "{id} does not allow namespace {namespace} (spec.allowedNamespaces); ask the platform admin to add it"
    )]
    NamespaceNotAllowed {
        /// The connection.
        id: String,
        /// The Organization's namespace.
        namespace: String,
    },
    /// The endpoint is not a usable URL (not echoed: it may hold a password).
    #[error("{id}: spec.endpoint is invalid: {why}")]
    InvalidEndpoint {
        /// The connection.
        id: String,
        /// What is wrong with it.
        why: String,
    },
    /// A namespaced connection's endpoint is not on the allow-list.
    #[error(
        "{id}: endpoint {endpoint} is not among the endpoints the operator allows for {vendor} ({allowed}); no request was made. Use an allowed endpoint, a ClusterVendorConnection, or ask the platform admin to extend --allowed-endpoints"
    )]
    EndpointNotAllowed {
        /// The connection.
        id: String,
        /// The endpoint (origin and path).
        endpoint: String,
        /// The vendor.
        vendor: Vendor,
        /// The allowed patterns for the vendor.
        allowed: String,
    },
    /// The credentials Secret does not exist or cannot be read.
    #[error("{id}: Secret {secret} (spec.credentialsSecretRef) {why}")]
    Secret {
        /// The connection.
        id: String,
        /// The Secret.
        secret: SecretLocation,
        /// `does not exist`, `cannot be read: …`.
        why: String,
    },
}

impl ConnectionProblem {
    /// CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectionProblem::NotFound(_) => "ConnectionNotFound",
            ConnectionProblem::VendorMismatch { .. } => "ConnectionVendorMismatch",
            ConnectionProblem::NamespaceNotAllowed { .. } => "NamespaceNotAllowed",
            ConnectionProblem::InvalidEndpoint { .. } => "InvalidEndpoint",
            ConnectionProblem::EndpointNotAllowed { .. } => "EndpointNotAllowed",
            ConnectionProblem::Secret { .. } => "SecretNotFound",
        }
    }
}

/// One allow-list entry: `scheme://host[:port][/path]`, where the host may start with `*.`
/// (one or more labels) and the port may be `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPattern {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
    any_port: bool,
    path: String,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Subdomain(String),
}

impl EndpointPattern {
    /// Parses one pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?}: expected scheme://host[:port][/path]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(format!("{text:?}: the scheme must be http or https"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') || path.contains(['?', '#']) {
            return Err(format!(
                "{text:?}: no user, query or fragment in an endpoint pattern"
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            match bracketed.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
                None => return Err(format!("{text:?}: unclosed [ in the host")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let (port, any_port) = match port {
            None => (None, false),
            Some("*") => (None, true),
            Some(p) => (
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("{text:?}: invalid port {p:?}"))?,
                ),
                false,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = match host.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => {
                HostPattern::Subdomain(suffix.to_string())
            }
            _ if host.is_empty() || host.contains('*') => {
                return Err(format!(
                    "{text:?}: the host must be a name or `*.` followed by a domain"
                ));
            }
            _ => HostPattern::Exact(host),
        };
        Ok(Self {
            scheme,
            host,
            port,
            any_port,
            path: path.trim_end_matches('/').to_string(),
            text: text.to_string(),
        })
    }

    /// True when `url` is on this pattern's origin and under its path.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let host_ok = match &self.host {
            HostPattern::Exact(h) => host == *h,
            HostPattern::Subdomain(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
        };
        let port_ok = self.any_port
            || url.port_or_known_default() == self.port.or(default_port(&self.scheme));
        let path = url.path();
        let path_ok = self.path.is_empty()
            || path == self.path
            || path.starts_with(&format!("{}/", self.path));
        host_ok && port_ok && path_ok
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

impl std::fmt::Display for EndpointPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The endpoints namespaced connections may use, per vendor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedEndpoints {
    by_vendor: HashMap<Vendor, Vec<EndpointPattern>>,
}

impl Default for AllowedEndpoints {
    /// Each vendor's public API hosts.
    fn default() -> Self {
        let mut by_vendor = HashMap::new();
        for vendor in ALL_VENDORS {
            let patterns = super::public_endpoints(vendor)
                .iter()
                .filter_map(|p| EndpointPattern::parse(p).ok())
                .collect();
            by_vendor.insert(vendor, patterns);
        }
        Self { by_vendor }
    }
}

const ALL_VENDORS: [Vendor; 4] = [
    Vendor::Rossum,
    Vendor::Dataloop,
    Vendor::RenderedAi,
    Vendor::OpenLattice,
];

impl AllowedEndpoints {
    /// An allow-list from `(vendor, pattern)` pairs; a vendor without pairs allows nothing.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (Vendor, &'a str)>,
    ) -> Result<Self, String> {
        let mut by_vendor: HashMap<Vendor, Vec<EndpointPattern>> = HashMap::new();
        for (vendor, pattern) in pairs {
            by_vendor
                .entry(vendor)
                .or_default()
                .push(EndpointPattern::parse(pattern)?);
        }
        Ok(Self { by_vendor })
    }

    /// The patterns allowed for `vendor`, comma-separated (for messages).
    pub fn describe(&self, vendor: Vendor) -> String {
        match self.by_vendor.get(&vendor) {
            Some(p) if !p.is_empty() => p
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            _ => "none".to_string(),
        }
    }

    /// True when `url` matches one of `vendor`'s patterns.
    pub fn allows(&self, vendor: Vendor, url: &Url) -> bool {
        self.by_vendor
            .get(&vendor)
            .is_some_and(|p| p.iter().any(|p| p.matches(url)))
    }
}

/// Checks an endpoint's form: http(s), a host, no user info, query or fragment.
pub fn parse_endpoint(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err("the scheme must be http or https".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed; put them in the Secret".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a query or fragment is not allowed".into());
    }
    Ok(url)
}

/// The operator-wide settings a connection is judged and built with.
#[derive(Clone, Debug, Default)]
pub struct ConnectionPolicy {
    /// Endpoints namespaced connections may use.
    pub allowed: AllowedEndpoints,
    /// Endpoint per vendor for connections without one (set by the admin, so trusted).
    pub default_endpoints: HashMap<Vendor, String>,
    /// Requests per second per vendor for connections without `rateLimit`.
    pub default_rates: HashMap<Vendor, u32>,
}

/// A connection that passed the policy: the endpoint to use and the rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The endpoint (the spec's, the admin's default, or the vendor's public API).
    pub endpoint: String,
    /// Requests per second shared by every user of the connection.
    pub rate: u32,
}

impl ConnectionPolicy {
    /// Decides whether an Organization of `vendor` in `namespace` may use `config`.
    pub fn admit(
        &self,
        config: &ConnectionConfig,
        vendor: Vendor,
        namespace: &str,
    ) -> Result<Admitted, ConnectionProblem> {
        if config.vendor != vendor {
            return Err(ConnectionProblem::VendorMismatch {
                id: config.id.clone(),
                connection: config.vendor,
                organization: vendor,
            });
        }
        if let Some(allowed) = &config.allowed_namespaces
            && !allowed.iter().any(|n| n == namespace)
        {
            return Err(ConnectionProblem::NamespaceNotAllowed {
                id: config.id.clone(),
                namespace: namespace.to_string(),
            });
        }
        self.check(config)
    }

    /// Decides whether `config` itself is usable (endpoint form and allow-list), whoever uses it.
    pub fn check(&self, config: &ConnectionConfig) -> Result<Admitted, ConnectionProblem> {
        let rate = config
            .rate_limit
            .or_else(|| self.default_rates.get(&config.vendor).copied())
            .unwrap_or_else(|| super::default_rate(config.vendor))
            .max(1);
        let (endpoint, needs_allow_list) = match &config.endpoint {
            Some(e) => (e.clone(), !config.trusted),
            None => match self.default_endpoints.get(&config.vendor) {
                Some(e) => (e.clone(), false),
                None => (super::default_endpoint(config.vendor).to_string(), false),
            },
        };
        let url = parse_endpoint(&endpoint).map_err(|why| ConnectionProblem::InvalidEndpoint {
            id: config.id.clone(),
            why,
        })?;
        if needs_allow_list && !self.allowed.allows(config.vendor, &url) {
            return Err(ConnectionProblem::EndpointNotAllowed {
                id: config.id.clone(),
                endpoint: url.to_string(),
                vendor: config.vendor,
                allowed: self.allowed.describe(config.vendor),
            });
        }
        Ok(Admitted {
            endpoint: url.as_str().trim_end_matches('/').to_string(),
            rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn namespaced(endpoint: Option<&str>) -> ConnectionConfig {
        ConnectionConfig {
            id: "VendorConnection t/rossum".into(),
            vendor: Vendor::Rossum,
            endpoint: endpoint.map(str::to_string),
            secret: SecretLocation {
                namespace: "t".into(),
                name: "creds".into(),
            },
            rate_limit: None,
            trusted: false,
            allowed_namespaces: Some(vec!["t".into()]),
        }
    }

    #[test]
    fn patterns_match_origin_and_path_prefix() {
        let p = EndpointPattern::parse("https://*.rossum.app").unwrap();
        assert!(p.matches(&url("https://acme.rossum.app/api/v1")));
        assert!(p.matches(&url("https://a.b.rossum.app/api/v1")));
        assert!(!p.matches(&url("https://rossum.app/api/v1")));
        assert!(!p.matches(&url("https://evilrossum.app/api/v1")));
        assert!(!p.matches(&url("https://acme.rossum.app.evil.com/api/v1")));
        assert!(!p.matches(&url("http://acme.rossum.app/api/v1")));
        assert!(!p.matches(&url("https://acme.rossum.app:8443/api/v1")));

        let p = EndpointPattern::parse("https://elis.rossum.ai/api").unwrap();
        assert!(p.matches(&url("https://elis.rossum.ai/api/v1")));
        assert!(p.matches(&url("https://ELIS.rossum.ai:443/api")));
        assert!(!p.matches(&url("https://elis.rossum.ai/apix")));
        assert!(!p.matches(&url("https://elis.rossum.ai/")));

        let p = EndpointPattern::parse("http://127.0.0.1:*").unwrap();
        assert!(p.matches(&url("http://127.0.0.1:4321/api/v1")));
        assert!(!p.matches(&url("http://127.0.0.2:4321/api/v1")));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "elis.rossum.ai",
            "ftp://x",
            "https://*",
            "https://a.*.com",
            "https://u:p@x.com",
            "https://x.com:99999",
            "https://x.com/?q",
        ] {
            assert!(EndpointPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn namespaced_connections_need_an_allowed_endpoint_and_cluster_ones_do_not() {
        let policy = ConnectionPolicy::default();
        assert!(policy.admit(&namespaced(None), Vendor::Rossum, "t").is_ok());
        assert!(
            policy
                .admit(
                    &namespaced(Some("https://acme.rossum.app/api/v1")),
                    Vendor::Rossum,
                    "t"
                )
                .is_ok()
        );
        let refused = policy
            .admit(
                &namespaced(Some("https://attacker.example/api/v1")),
                Vendor::Rossum,
                "t",
            )
            .unwrap_err();
        assert_eq!(refused.reason(), "EndpointNotAllowed");
        assert!(
            refused.to_string().contains("attacker.example"),
            "{refused}"
        );

        let mut cluster = namespaced(Some("https://rossum.internal.example/api/v1"));
        cluster.trusted = true;
        cluster.allowed_namespaces = None;
        assert!(policy.admit(&cluster, Vendor::Rossum, "anywhere").is_ok());
        cluster.allowed_namespaces = Some(vec!["a".into()]);
        assert_eq!(
            policy
                .admit(&cluster, Vendor::Rossum, "b")
                .unwrap_err()
                .reason(),
            "NamespaceNotAllowed"
        );
        assert_eq!(
            policy
                .admit(&cluster, Vendor::Dataloop, "a")
                .unwrap_err()
                .reason(),
            "ConnectionVendorMismatch"
        );
    }

    #[test]
    fn endpoints_with_credentials_or_queries_are_invalid_even_when_trusted() {
        let policy = ConnectionPolicy::default();
        for bad in [
            "https://user:pw@elis.rossum.ai/api/v1",
            "https://elis.rossum.ai/api/v1?x=1",
            "file:///etc/passwd",
        ] {
            let mut c = namespaced(Some(bad));
            c.trusted = true;
            assert_eq!(
                policy.check(&c).unwrap_err().reason(),
                "InvalidEndpoint",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_admins_default_endpoint_and_rate_apply() {
        let mut policy = ConnectionPolicy::default();
        policy.default_endpoints.insert(
            Vendor::Rossum,
            "https://rossum.internal.example/api/v1".into(),
        );
        policy.default_rates.insert(Vendor::Rossum, 3);
        let a = policy.check(&namespaced(None)).unwrap();
        assert_eq!(a.endpoint, "https://rossum.internal.example/api/v1");
        assert_eq!(a.rate, 3);
        let mut c = namespaced(None);
        c.rate_limit = Some(7);
        assert_eq!(policy.check(&c).unwrap().rate, 7);
    }
}
