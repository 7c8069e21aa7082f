//! In-memory vendor simulators for tests, benchmarks and the demo.
//!
//! Each simulator is an axum [`Router`] over in-memory state that speaks its vendor's real wire
//! format. [`serve`] runs a router on a loopback listener behind the transport faults that
//! cannot be expressed as responses (connection resets, responses dropped after the request
//! was processed), per-request latency, and a request-rate limit answered with `429`.
//!
//! Simulators build on [`kit`] (store, auth, pagination, and the [`kit::SimulatorHandle`] tests
//! use for every vendor).

pub mod dataloop;
pub mod faults;
pub mod kit;
pub mod openlattice;
pub mod renderedai;
pub mod rossum;
mod rossum_handle;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use governor::{DefaultDirectRateLimiter, Quota};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

pub use faults::{Fault, FaultSpec};

/// Transport behaviour around a simulator's router.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Injected faults.
    pub faults: FaultSpec,
    /// Added to every request.
    pub latency: Duration,
    /// Requests per second before `429` (none when `None`).
    pub rate_limit: Option<u32>,
}

/// Counters of what the transport did, for tests.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests answered with an injected fault (any kind).
    pub faults: AtomicU64,
    /// Requests processed whose response was then dropped.
    pub dropped: AtomicU64,
    /// … of which writes (any method but GET): the client cannot know whether they happened.
    pub dropped_writes: AtomicU64,
    /// Requests refused by the rate limit.
    pub throttled: AtomicU64,
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Running {
    /// Address it listens on.
    pub addr: SocketAddr,
    /// Transport counters.
    pub stats: Arc<ServeStats>,
    faults: Arc<RwLock<FaultSpec>>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Stops accepting connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Replaces the injected faults for requests that arrive from now on (a chaos campaign
    /// turns them on and off while a run is under way).
    pub fn set_faults(&self, faults: FaultSpec) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, thiserror::Error)]
#[error("injected fault: connection closed")]
struct InjectedClose;

/// Serves `app` on `listener` with `options` until the returned handle is dropped.
pub fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let stats = Arc::new(ServeStats::default());
    let (stop, mut stopped) = watch::channel(false);
    let limiter = options
        .rate_limit
        .and_then(NonZeroU32::new)
        .map(|n| Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(n))));
    let ServeOptions {
        faults, latency, ..
    } = options;
    let faults = Arc::new(RwLock::new(faults));
    let loop_faults = faults.clone();
    let loop_stats = stats.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let app = app.clone();
            let faults = loop_faults.clone();
            let stats = loop_stats.clone();
            let limiter = limiter.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let app = app.clone();
                let faults = faults.clone();
                let stats = stats.clone();
                let limiter = limiter.clone();
                async move { handle(req, app, latency, &faults, &stats, limiter.as_deref()).await }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Running {
        addr,
        stats,
        faults,
        stop,
    })
}

async fn handle(
    req: hyper::Request<Incoming>,
    app: Router,
    latency: Duration,
    faults: &RwLock<FaultSpec>,
    stats: &ServeStats,
    limiter: Option<&DefaultDirectRateLimiter>,
) -> Result<axum::response::Response, InjectedClose> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(l) = limiter
        && l.check().is_err()
    {
        stats.throttled.fetch_add(1, Ordering::Relaxed);
        return Ok(throttled());
    }
    let req = req.map(Body::new);
    let (fault, slow_delay) = {
        let faults = faults.read().unwrap_or_else(PoisonError::into_inner);
        (faults.pick(), faults.slow_delay)
    };
    if fault.is_some() {
        stats.faults.fetch_add(1, Ordering::Relaxed);
    }
    let call = |req| async move {
        match app.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    };
    match fault {
        None => Ok(call(req).await),
        Some(Fault::ServerError) => Ok(json_response(
            503,
            r#"{"detail":"Service temporarily unavailable, try again later."}"#,
        )),
        Some(Fault::Throttle) => Ok(throttled()),
        Some(Fault::Reset) => Err(InjectedClose),
        Some(Fault::Slow) => {
            tokio::time::sleep(slow_delay).await;
            Ok(call(req).await)
        }
        Some(Fault::DropResponse) => {
            let write = req.method() != axum::http::Method::GET;
            let _ = call(req).await;
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            if write {
                stats.dropped_writes.fetch_add(1, Ordering::Relaxed);
            }
            Err(InjectedClose)
        }
    }
}

fn throttled() -> axum::response::Response {
    let mut r = json_response(
        429,
        r#"{"detail":"Request was throttled. Expected available in 1 second."}"#,
    );
    r.headers_mut()
        .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    r
}

fn json_response(status: u16, body: &'static str) -> axum::response::Response {
    axum::response::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// Binds `127.0.0.1:port` (0 = any free port).
pub async fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn faults_can_be_changed_while_serving() {
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = bind_loopback(0).await.unwrap();
        let running = serve(listener, app, ServeOptions::default()).unwrap();
        let url = format!("http://{}/", running.addr);
        let status = || async { reqwest::get(&url).await.map(|r| r.status().as_u16()).ok() };
        assert_eq!(status().await, Some(200));
        running.set_faults(FaultSpec::parse("5xx=1").unwrap());
        assert_eq!(status().await, Some(503));
        running.set_faults(FaultSpec::parse("reset=1").unwrap());
        assert_eq!(status().await, None);
        running.set_faults(FaultSpec::parse("drop=1").unwrap());
        assert_eq!(status().await, None);
        running.set_faults(FaultSpec::none());
        assert_eq!(status().await, Some(200));
        assert_eq!(running.stats.faults.load(Ordering::Relaxed), 3);
        assert_eq!(running.stats.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(running.stats.dropped_writes.load(Ordering::Relaxed), 0);
    }
}
