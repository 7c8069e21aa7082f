//! An in-memory Kubernetes API server for tests and for trying orgops without a cluster.
//!
//! It keeps the API semantics kube-rs and kubectl rely on: discovery, CRUD with
//! resourceVersions and optimistic concurrency, generateName, finalizers and
//! deletionTimestamp, merge/JSON/apply patches, the status subresource and generation,
//! watches (resume, bookmarks, timeouts, 410 Gone, streaming lists), label and field
//! selectors, limit/continue, custom resources validated against their CRD schema and CEL
//! rules (422 with field causes), Tables and metadata-only (`PartialObjectMetadata`) responses,
//! Status errors, bearer-token authentication with RBAC evaluated from the stored Roles and
//! bindings, and the TokenReview and SubjectAccessReview APIs. Plain HTTP on loopback.

mod api;
mod attributes;
mod auth;
mod media;
mod protobuf;
mod rbac;
mod registry;
mod reviews;
mod schema;
mod selectors;
mod status;
mod store;
mod table;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use api::LoggedRequest;
pub use attributes::Attributes;
pub use registry::ResourceType;
pub use status::{ApiError, Cause};

/// Bearer token of the admin user in generated kubeconfigs.
pub const ADMIN_TOKEN: &str = "orgops-test-admin";

/// A running server; dropping it stops it.
pub struct TestApiServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Listening address.
    pub addr: SocketAddr,
    shared: Arc<api::Shared>,
    stop: watch::Sender<bool>,
}

impl TestApiServer {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(0).await
    }

    /// Starts on `127.0.0.1:port`.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(api::Shared {
            store: Mutex::new(store::Store::new()),
            requests: Mutex::new(HashMap::new()),
            auth: Mutex::new(auth::Tokens::default()),
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(api::handle)
            .with_state(shared.clone());
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            shared,
            stop,
        })
    }

    /// A kubeconfig (YAML) for the admin user.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_for("admin", ADMIN_TOKEN)
    }

    /// A kubeconfig (YAML) for a user authenticating with `token`.
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: orgops-test\n  cluster:\n    server: {url}\ncontexts:\n- name: orgops-test\n  context:\n    cluster: orgops-test\n    user: {user}\n    namespace: default\ncurrent-context: orgops-test\nusers:\n- name: {user}\n  user:\n    token: {token}\n",
            url = self.url
        )
    }

    /// Writes [`kubeconfig`](Self::kubeconfig) to `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Requests served so far, by `METHOD storage-key[/{name}][/sub]`.
    pub fn requests(&self) -> HashMap<String, u64> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Every request so far, in order: who sent it, its RBAC attributes, the `as=` form its
    /// response was negotiated to, and the status code, including requests refused with 401
    /// or 403 (which [`requests`](Self::requests) does not count).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Forgets the event log: watches from an older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        if let Ok(mut s) = self.shared.store.lock() {
            s.compact();
        }
    }

    /// Makes `token` the bearer token of `user`, granted `rules` (a JSON array of PolicyRules)
    /// cluster-wide on top of what stored bindings grant `user`. Replaces the previous call's
    /// token.
    pub fn enforce_rbac(&self, token: &str, user: &str, rules: &serde_json::Value) {
        if let Ok(mut t) = self.shared.auth.lock() {
            t.legacy = Some(rbac::Rbac::new(token, user, rules));
        }
    }

    /// Requests with bearer `token` authenticate as the ServiceAccount `namespace/name`
    /// (`system:serviceaccount:<namespace>:<name>`, groups `system:serviceaccounts`,
    /// `system:serviceaccounts:<namespace>`, `system:authenticated`) and are authorized from the
    /// Roles, ClusterRoles, RoleBindings and ClusterRoleBindings stored at request time. The
    /// ServiceAccount object need not exist; its uid is reported when it does.
    pub fn add_service_account_token(&self, token: &str, namespace: &str, name: &str) {
        if let Ok(mut t) = self.shared.auth.lock() {
            t.add_service_account(token, namespace, name);
        }
    }

    /// Stops serving.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Sends one HTTP/1.1 request with `headers` and returns the status line.
    fn send(addr: SocketAddr, path: &str, headers: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn the_request_log_names_the_user_the_form_and_the_answer() {
        let server = TestApiServer::start().await.unwrap();
        server.add_service_account_token("sa-token", "ops", "orgops");
        let addr = server.addr;
        let lines = tokio::task::spawn_blocking(move || {
            [
                send(
                    addr,
                    "/api/v1/namespaces/a/secrets",
                    "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1\r\n",
                ),
                send(
                    addr,
                    "/api/v1/namespaces/a/secrets?watch=true&timeoutSeconds=1",
                    "Authorization: Bearer sa-token\r\n",
                ),
                send(
                    addr,
                    "/api/v1/namespaces/a/secrets/s",
                    "Authorization: Bearer garbage\r\n",
                ),
            ]
        })
        .await
        .unwrap();
        assert!(lines[0].contains(" 200 "), "{lines:?}");
        let log = server.request_log();
        let seen: Vec<(&str, &str, &str, &str, &str, u16)> = log
            .iter()
            .map(|r| {
                let a = &r.attributes;
                (
                    r.user.as_str(),
                    a.verb.as_str(),
                    a.namespace.as_str(),
                    a.name.as_str(),
                    r.as_kind,
                    r.status,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("admin", "list", "a", "", "PartialObjectMetadataList", 200),
                (
                    "system:serviceaccount:ops:orgops",
                    "watch",
                    "a",
                    "",
                    "",
                    403
                ),
                ("", "get", "a", "s", "", 401),
            ]
        );
        // `requests()` counts only what was admitted.
        assert_eq!(server.requests().values().sum::<u64>(), 1);
    }
}
