//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles. The holder
//! renews every `renew`; a replica takes over a Lease not renewed within its duration. Writes
//! use optimistic concurrency (resourceVersion), so two replicas can never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::Error;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the pod name; stable across container restarts).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew: Duration,
}

/// What to do with an observed Lease. Pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it (or the holder let it expire): take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a valid Lease: wait.
    Wait,
}

/// Decides from the Lease's spec, at `now`.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: jiff::Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec
        .renew_time
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    if now.as_second() - renewed.as_second() > duration {
        Decision::Acquire
    } else {
        Decision::Wait
    }
}

fn spec(config: &LeaseConfig, previous: Option<&LeaseSpec>, acquire: bool) -> LeaseSpec {
    let now = MicroTime(jiff::Timestamp::now());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.duration.as_secs() as i32),
        acquire_time: if acquire {
            Some(now.clone())
        } else {
            previous.and_then(|p| p.acquire_time.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(if acquire && previous.is_some() {
            transitions + 1
        } else {
            transitions
        }),
        ..LeaseSpec::default()
    }
}

/// Tries once to acquire or renew; `Ok(true)` when this replica holds the Lease afterwards.
pub async fn try_hold(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, Error> {
    let now = jiff::Timestamp::now();
    match api.get_opt(&config.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(config, None, true)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Some(mut lease) => {
            let decision = decide(lease.spec.as_ref(), &config.identity, now);
            if decision == Decision::Wait {
                return Ok(false);
            }
            lease.spec = Some(spec(
                config,
                lease.spec.as_ref(),
                decision == Decision::Acquire,
            ));
            // The resourceVersion in `lease` makes this a compare-and-swap.
            match api
                .replace(&config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), Error> {
    loop {
        match try_hold(api, config).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the Lease"),
        }
        tokio::time::sleep(config.renew).await;
    }
}

/// Renews until renewal fails for longer than the Lease duration; then returns (leadership is
/// lost and the caller must stop reconciling).
pub async fn keep(api: &Api<Lease>, config: &LeaseConfig) -> Error {
    let mut last_ok = std::time::Instant::now();
    loop {
        tokio::time::sleep(config.renew).await;
        match try_hold(api, config).await {
            Ok(true) => last_ok = std::time::Instant::now(),
            Ok(false) => {
                return Error::Setup(format!(
                    "lost the leader Lease {}/{} to another replica",
                    config.namespace, config.name
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election: renewal failed");
                if last_ok.elapsed() > config.duration {
                    return Error::Setup(format!(
                        "could not renew the leader Lease for {:?}",
                        config.duration
                    ));
                }
            }
        }
    }
}

/// Gives the Lease up (on graceful shutdown) so another replica takes over at once.
pub async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    if let Ok(Some(mut lease)) = api.get_opt(&config.name).await
        && lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(config.identity.as_str())
    {
        if let Some(s) = lease.spec.as_mut() {
            s.holder_identity = None;
        }
        let _ = api
            .replace(&config.name, &PostParams::default(), &lease)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(jiff::Timestamp::from_second(renewed).unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&lease("a", 999)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&lease("b", 990)), "a", now), Decision::Wait);
        assert_eq!(decide(Some(&lease("b", 980)), "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&lease("", 999)), "a", now), Decision::Acquire);
    }
}
