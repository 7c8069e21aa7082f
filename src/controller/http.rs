//! `/metrics`, `/healthz`, `/readyz`, over HTTP or (with certificate files) HTTPS; `/metrics`
//! optionally only for callers the Kubernetes API authorizes ([`super::metrics_auth`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::context::Context;
use super::metrics_auth::{Decision, MetricsAuth};
use super::tls::TlsFiles;

/// What the HTTP endpoints read.
#[derive(Clone)]
pub struct Health {
    /// The controller context (metrics).
    pub ctx: Arc<Context>,
    /// True once the controllers run (this replica leads, or waits to).
    pub ready: Arc<AtomicBool>,
    /// Checks scrapes of `/metrics`; `None`: anyone may read it.
    pub auth: Option<Arc<MetricsAuth>>,
}

async fn metrics(State(h): State<Health>, headers: HeaderMap) -> Response {
    if let Some(auth) = &h.auth {
        let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        match auth.check(header).await {
            Decision::Allowed => {}
            Decision::Unauthenticated => {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(WWW_AUTHENTICATE, "Bearer")],
                    "Unauthorized\n",
                )
                    .into_response();
            }
            Decision::Forbidden(user) => {
                return (
                    StatusCode::FORBIDDEN,
                    format!("Forbidden: user {user:?} may not get /metrics\n"),
                )
                    .into_response();
            }
            Decision::Unavailable => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot reach the Kubernetes API to check the token\n",
                )
                    .into_response();
            }
        }
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.ctx.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Serves the endpoints on `addr` (HTTPS when `tls` is given) until the process stops.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    tls: Option<&TlsFiles>,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health);
    let acceptor = tls
        .map(super::tls::acceptor)
        .transpose()
        .map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    match acceptor {
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            });
        }
        Some(acceptor) => {
            tokio::spawn(serve_tls(listener, acceptor, app));
        }
    }
    Ok(bound)
}

async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A client that never finishes the handshake must not hold a task forever.
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    _ => return,
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}
