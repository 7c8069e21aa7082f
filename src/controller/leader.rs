//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles. After
//! client-go's `leaderelection`:
//!
//! - The holder renews every `retry_period`. When no renewal has succeeded within
//!   `renew_deadline` (less than the lease duration) of the start of the last successful one, it
//!   stops leading: [`keep`] returns, the controllers are dropped and the process exits, all
//!   *before* another replica may take the Lease. Its vendor writes stop even earlier if need be:
//!   the write [`Fence`] lapses at that same deadline, on the monotonic clock, whatever the leader
//!   loop is doing (a frozen and resumed process included).
//! - A standby never compares the holder's `renewTime` with its own wall clock. It records, on
//!   its own monotonic clock, when it last saw the Lease change ([`Observation`]), and takes the
//!   Lease over only when the lease duration has passed since then ([`decide`]). A holder whose
//!   clock is far ahead or behind is thus neither taken over early nor waited for forever.
//! - Every Lease request has a timeout; a renewal that times out has failed.
//! - Writes use optimistic concurrency (resourceVersion), so two replicas never both win one.
//!
//! Why the holder stops first: it moves its deadline to (start of a renewal) + `renew_deadline`;
//! a standby sees that renewal after it was written, so its own takeover time is at least (start
//! of that renewal) + lease duration, later by `duration - renew_deadline`.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::Error;
use crate::vendors::Fence;

/// Lease settings (`retry_period < renew_deadline < duration`, checked by `orgops run`).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the pod name; stable across container restarts).
    pub identity: String,
    /// How long a Lease stays valid without renewal (written to the Lease).
    pub duration: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the holder renews, and a standby tries to acquire.
    pub retry_period: Duration,
}

/// What a replica last saw of the Lease, and when on its own monotonic clock it saw that
/// change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// `spec.holderIdentity` (empty: nobody).
    pub holder: String,
    /// `spec.renewTime` as the holder wrote it: compared for equality only, never with a clock.
    pub renew_time: Option<jiff::Timestamp>,
    /// `metadata.resourceVersion`: changes with every write, even by a holder whose clock stands
    /// still.
    pub resource_version: Option<String>,
    /// `spec.leaseDurationSeconds` (or our own duration when unset).
    pub duration: Duration,
    /// When this replica first saw the Lease as it is now.
    pub seen_at: Instant,
}

impl Observation {
    /// The record after reading `lease` at `now`: `seen_at` stays as it was unless the holder,
    /// the renew time or the resourceVersion changed. `default_duration` stands in for an unset
    /// or non-positive `leaseDurationSeconds`. Pure.
    pub fn after(
        previous: Option<&Observation>,
        lease: &Lease,
        default_duration: Duration,
        now: Instant,
    ) -> Observation {
        let spec = lease.spec.as_ref();
        let holder = spec
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        let renew_time = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let resource_version = lease.metadata.resource_version.clone();
        let duration = spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(default_duration);
        let unchanged = previous.filter(|p| {
            p.holder == holder
                && p.renew_time == renew_time
                && p.resource_version == resource_version
        });
        Observation {
            seen_at: unchanged.map(|p| p.seen_at).unwrap_or(now),
            holder,
            renew_time,
            resource_version,
            duration,
        }
    }
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

/// Decides from what this replica observed of the Lease, at `now` on its monotonic clock: a
/// Lease held by another replica expires `duration` after this replica last saw it change.
pub fn decide(observed: &Observation, identity: &str, now: Instant) -> Decision {
    if observed.holder == identity {
        return Decision::Renew;
    }
    if observed.holder.is_empty() {
        return Decision::Acquire;
    }
    if now.saturating_duration_since(observed.seen_at) >= observed.duration {
        Decision::Acquire
    } else {
        Decision::Wait
    }
}

fn spec(config: &LeaseConfig, previous: Option<&LeaseSpec>, acquire: bool) -> LeaseSpec {
    // Written for people and other tools; no replica of ours compares it with a clock.
    let now = MicroTime(jiff::Timestamp::now());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.duration.as_secs().try_into().unwrap_or(i32::MAX)),
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

/// One Lease request, given up after the renew deadline (a renewal cannot use more anyway).
async fn request<T>(
    config: &LeaseConfig,
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(config.renew_deadline, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::Setup(format!(
            "{what} the leader Lease {}/{}: no answer within {:?}",
            config.namespace, config.name, config.renew_deadline
        ))),
    }
}

/// Tries once to acquire or renew; `Ok(true)` when this replica holds the Lease afterwards.
/// `observed` carries what this replica saw of the Lease from one try to the next.
pub async fn try_hold(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<Observation>,
) -> Result<bool, Error> {
    let Some(mut lease) = request(config, "cannot read", api.get_opt(&config.name)).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec(config, None, true)),
        };
        return match request(
            config,
            "cannot create",
            api.create(&PostParams::default(), &lease),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let now = Instant::now();
    let seen = Observation::after(observed.as_ref(), &lease, config.duration, now);
    let decision = decide(&seen, &config.identity, now);
    *observed = Some(seen);
    if decision == Decision::Wait {
        return Ok(false);
    }
    lease.spec = Some(spec(
        config,
        lease.spec.as_ref(),
        decision == Decision::Acquire,
    ));
    // The resourceVersion in `lease` makes this a compare-and-swap.
    match request(
        config,
        "cannot write",
        api.replace(&config.name, &PostParams::default(), &lease),
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this replica holds the Lease; opens `fence` for `renew_deadline` from the start
/// of the winning attempt, and returns that start (for [`keep`]).
pub async fn acquire(api: &Api<Lease>, config: &LeaseConfig, fence: &Fence) -> Instant {
    let mut observed = None;
    loop {
        let start = Instant::now();
        match try_hold(api, config, &mut observed).await {
            Ok(true) => {
                fence.valid_until(start + config.renew_deadline);
                return start;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the Lease"),
        }
        tokio::time::sleep(config.retry_period).await;
    }
}

/// Renews every `retry_period` while leading since `since` (the start of the acquiring
/// attempt), moving `fence` forward after each success. Returns when leadership is lost —
/// another replica holds the Lease, or no renewal succeeded within `renew_deadline` (a request
/// that times out has failed) — with `fence` closed; the caller must stop reconciling.
pub async fn keep(api: &Api<Lease>, config: &LeaseConfig, fence: &Fence, since: Instant) -> Error {
    let mut renewed = since;
    let mut observed = None;
    loop {
        let deadline = renewed + config.renew_deadline;
        tokio::time::sleep_until((Instant::now() + config.retry_period).min(deadline).into()).await;
        // Checked first thing after a wait: a process resumed after a freeze stops here.
        let start = Instant::now();
        if start >= deadline {
            fence.close();
            return Error::Setup(format!(
                "could not renew the leader Lease {}/{} within {:?}; stopped leading",
                config.namespace, config.name, config.renew_deadline
            ));
        }
        match tokio::time::timeout(deadline - start, try_hold(api, config, &mut observed)).await {
            Ok(Ok(true)) => {
                renewed = start;
                fence.valid_until(start + config.renew_deadline);
            }
            Ok(Ok(false)) => {
                fence.close();
                return Error::Setup(format!(
                    "lost the leader Lease {}/{} to another replica",
                    config.namespace, config.name
                ));
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewal failed"),
            Err(_) => tracing::warn!(
                timeout = ?(deadline - start),
                "leader election: renewal timed out"
            ),
        }
    }
}

/// Gives the Lease up (on graceful shutdown) so another replica takes over at once.
pub async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    if let Ok(Some(mut lease)) = request(config, "cannot read", api.get_opt(&config.name)).await
        && lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(config.identity.as_str())
    {
        if let Some(s) = lease.spec.as_mut() {
            s.holder_identity = None;
        }
        let _ = request(
            config,
            "cannot release",
            api.replace(&config.name, &PostParams::default(), &lease),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn lease(holder: &str, renewed: jiff::Timestamp, version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..LeaseSpec::default()
            }),
        }
    }

    fn wall(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let seen = |holder: &str| {
            Observation::after(None, &lease(holder, wall(1_000), "1"), 15 * SECOND, t0)
        };
        assert_eq!(decide(&seen("a"), "a", t0), Decision::Renew);
        // Our own Lease is renewed whenever we last saw it.
        assert_eq!(decide(&seen("a"), "a", t0 + 3600 * SECOND), Decision::Renew);
        assert_eq!(decide(&seen(""), "a", t0), Decision::Acquire);
        assert_eq!(decide(&seen("b"), "a", t0), Decision::Wait);
        assert_eq!(decide(&seen("b"), "a", t0 + 14 * SECOND), Decision::Wait);
        assert_eq!(decide(&seen("b"), "a", t0 + 15 * SECOND), Decision::Acquire);
    }

    #[test]
    fn expiry_runs_on_the_observers_clock_whatever_the_holders_clock_says() {
        let t0 = Instant::now();
        // The holder's clock is an hour behind ours, or a day ahead: its renewTime says nothing
        // about when it renewed. Only how long we have seen no change counts.
        for skewed in [wall(1_000 - 3_600), wall(1_000 + 86_400)] {
            let mut observed = None;
            let mut at = t0;
            for (step, version) in ["1", "2", "3"].into_iter().enumerate() {
                // Renewed every 5 s (by our clock): its renewTime moves, and so does the
                // resourceVersion.
                let renewed = skewed + jiff::SignedDuration::from_secs(5 * step as i64);
                at = t0 + 5 * SECOND * step as u32;
                let seen = Observation::after(
                    observed.as_ref(),
                    &lease("b", renewed, version),
                    15 * SECOND,
                    at,
                );
                assert_eq!(seen.seen_at, at, "a renewal is seen as one");
                assert_eq!(decide(&seen, "a", at), Decision::Wait, "{skewed}");
                observed = Some(seen);
            }
            // Then it stops renewing: nothing changes for 14 s, then 15 s, of our time.
            let last = lease("b", skewed + jiff::SignedDuration::from_secs(10), "3");
            let seen = Observation::after(observed.as_ref(), &last, 15 * SECOND, at + 14 * SECOND);
            assert_eq!(seen.seen_at, at);
            assert_eq!(decide(&seen, "a", at + 14 * SECOND), Decision::Wait);
            assert_eq!(decide(&seen, "a", at + 15 * SECOND), Decision::Acquire);
        }
    }

    #[test]
    fn a_fresh_observer_waits_a_full_duration_even_for_an_old_renew_time() {
        // A renewTime a year old (or a holder clock a year behind) does not make the Lease
        // takeable: this replica has not yet seen it stand still for a lease duration.
        let t0 = Instant::now();
        let stale = lease("b", wall(1_000), "7");
        let seen = Observation::after(None, &stale, 15 * SECOND, t0);
        assert_eq!(decide(&seen, "a", t0 + SECOND), Decision::Wait);
        let again = Observation::after(Some(&seen), &stale, 15 * SECOND, t0 + 15 * SECOND);
        assert_eq!(decide(&again, "a", t0 + 15 * SECOND), Decision::Acquire);
    }

    #[test]
    fn a_holder_whose_clock_stands_still_or_goes_back_still_renews() {
        let t0 = Instant::now();
        let first = Observation::after(None, &lease("b", wall(1_000), "1"), 15 * SECOND, t0);
        // Same renewTime, new resourceVersion: a write happened, so it renewed.
        let stuck = Observation::after(
            Some(&first),
            &lease("b", wall(1_000), "2"),
            15 * SECOND,
            t0 + 10 * SECOND,
        );
        assert_eq!(stuck.seen_at, t0 + 10 * SECOND);
        // A renewTime earlier than before (its clock was set back) is a change too.
        let back = Observation::after(
            Some(&stuck),
            &lease("b", wall(400), "3"),
            15 * SECOND,
            t0 + 20 * SECOND,
        );
        assert_eq!(back.seen_at, t0 + 20 * SECOND);
        assert_eq!(decide(&back, "a", t0 + 30 * SECOND), Decision::Wait);
        // A new holder is a change as well.
        let other = Observation::after(
            Some(&back),
            &lease("c", wall(400), "3"),
            15 * SECOND,
            t0 + 25 * SECOND,
        );
        assert_eq!(other.seen_at, t0 + 25 * SECOND);
    }

    #[test]
    fn the_lease_duration_comes_from_the_lease_or_else_from_us() {
        let t0 = Instant::now();
        let mut l = lease("b", wall(1_000), "1");
        if let Some(s) = l.spec.as_mut() {
            s.lease_duration_seconds = Some(60);
        }
        let seen = Observation::after(None, &l, 15 * SECOND, t0);
        assert_eq!(decide(&seen, "a", t0 + 30 * SECOND), Decision::Wait);
        assert_eq!(decide(&seen, "a", t0 + 60 * SECOND), Decision::Acquire);
        for unusable in [None, Some(0), Some(-5)] {
            if let Some(s) = l.spec.as_mut() {
                s.lease_duration_seconds = unusable;
            }
            let seen = Observation::after(None, &l, 15 * SECOND, t0);
            assert_eq!(seen.duration, 15 * SECOND, "{unusable:?}");
        }
    }

    #[test]
    fn the_holder_stops_before_a_standby_may_take_over() {
        // The invariant the timings give: the holder's fence lapses (renewal start + renew
        // deadline) before any standby's takeover (its sighting of that renewal, which comes
        // after the renewal started, + duration).
        let config = LeaseConfig {
            name: "l".into(),
            namespace: "ns".into(),
            identity: "a".into(),
            duration: 15 * SECOND,
            renew_deadline: 10 * SECOND,
            retry_period: 2 * SECOND,
        };
        let renewal_start = Instant::now();
        let fence = Fence::closed();
        fence.valid_until(renewal_start + config.renew_deadline);
        let written = renewal_start + Duration::from_millis(300);
        let seen = Observation::after(
            None,
            &lease("a", wall(1_000), "9"),
            config.duration,
            written,
        );
        let first_takeover = written + config.duration;
        assert_eq!(decide(&seen, "b", first_takeover), Decision::Acquire);
        assert_eq!(
            decide(&seen, "b", first_takeover - Duration::from_millis(1)),
            Decision::Wait
        );
        assert!(!fence.allows_at(first_takeover - Duration::from_millis(1)));
    }
}
