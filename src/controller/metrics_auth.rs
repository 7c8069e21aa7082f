//! Authenticated `/metrics`, as controller-runtime's secure metrics serving does it: the
//! caller's bearer token is checked with a `TokenReview`, and the user it names must be allowed
//! `get` on the non-resource URL `/metrics` by a `SubjectAccessReview`. Decisions are cached
//! for a minute, keyed by the SHA-256 of the token (the token itself is never kept).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

/// What the server answers a scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The caller may read `/metrics`.
    Allowed,
    /// No token, or the API server does not know it: 401.
    Unauthenticated,
    /// A known user without `get` on `/metrics`: 403, naming the user.
    Forbidden(String),
    /// The API server could not be asked: 503, not cached.
    Unavailable,
}

/// Checks scrapes against the Kubernetes API.
pub struct MetricsAuth {
    client: kube::Client,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], (Decision, Instant)>>,
}

/// Cached decisions at most; the oldest half is dropped beyond it.
const CACHE_LIMIT: usize = 1024;

impl MetricsAuth {
    /// Checks with `client`, caching decisions for a minute.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            ttl: Duration::from_secs(60),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The decision for an `Authorization` header value.
    pub async fn check(&self, authorization: Option<&str>) -> Decision {
        let Some(token) = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Decision::Unauthenticated;
        };
        let key = digest(token);
        if let Some(d) = self.cached(&key) {
            return d;
        }
        let decision = self.review(token).await;
        if decision != Decision::Unavailable
            && let Ok(mut cache) = self.cache.lock()
        {
            if cache.len() >= CACHE_LIMIT {
                let mut by_age: Vec<_> = cache.iter().map(|(k, (_, t))| (*t, *k)).collect();
                by_age.sort();
                for (_, k) in by_age.into_iter().take(CACHE_LIMIT / 2) {
                    cache.remove(&k);
                }
            }
            cache.insert(key, (decision.clone(), Instant::now() + self.ttl));
        }
        decision
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Decision> {
        let cache = self.cache.lock().ok()?;
        let (d, until) = cache.get(key)?;
        (Instant::now() < *until).then(|| d.clone())
    }

    async fn review(&self, token: &str) -> Decision {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = match Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview failed");
                return Decision::Unavailable;
            }
        };
        let Some(status) = reviewed.status.filter(|s| s.authenticated == Some(true)) else {
            return Decision::Unauthenticated;
        };
        let user = status.user.unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                uid: user.uid.clone(),
                groups: user.groups.clone(),
                extra: user.extra.clone(),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        match Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
        {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => Decision::Allowed,
            Ok(_) => Decision::Forbidden(user.username.unwrap_or_default()),
            Err(e) => {
                tracing::warn!(error = %e, "SubjectAccessReview failed");
                Decision::Unavailable
            }
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
