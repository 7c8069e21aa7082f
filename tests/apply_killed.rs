//! `orgops apply` killed (SIGKILL, the real binary) at every step of creating an organization,
//! then run again: there is never a second organization. A proxy between orgops and the
//! simulator stops at a chosen request — before passing it on, or after the vendor processed it
//! but before the answer leaves — and the test kills orgops there. Also: a marker PATCH the
//! vendor refuses leaves the created id in the state file, and the next run adopts it.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use orgops::simulator::rossum::RossumSimulator;
use serde_json::Value;
use support::*;
use tokio::sync::Notify;

/// Where the proxy stops a request that matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Hold the request; the vendor never sees it.
    Before,
    /// Pass it on, let the vendor process it, hold the answer.
    After,
    /// Answer 400 instead of passing it on (every match, not only the first).
    Refuse,
}

struct Trap {
    method: Method,
    /// The path ends with this (`/organizations/create`), or is an org (`/organizations/{id}`).
    path: &'static str,
    stop: Stop,
}

impl Trap {
    fn matches(&self, method: &Method, path: &str) -> bool {
        method == self.method
            && if self.path == "/organizations/{id}" {
                path.rsplit_once("/organizations/")
                    .is_some_and(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            } else {
                path.ends_with(self.path)
            }
    }
}

struct Proxy {
    /// `http://127.0.0.1:port` of the simulator and of the proxy.
    upstream: String,
    public: Mutex<String>,
    trap: Mutex<Option<Trap>>,
    tripped: Notify,
    http: reqwest::Client,
}

async fn handle(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let public = p.public.lock().unwrap().clone();
    let stop = {
        let mut trap = p.trap.lock().unwrap();
        match trap.as_ref() {
            Some(t) if t.matches(&method, &path) => {
                let stop = t.stop;
                if stop != Stop::Refuse {
                    *trap = None;
                }
                Some(stop)
            }
            _ => None,
        }
    };
    match stop {
        Some(Stop::Before) => {
            p.tripped.notify_one();
            std::future::pending::<()>().await;
        }
        Some(Stop::Refuse) => {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"detail": "refused by the test proxy"}"#))
                .unwrap();
        }
        _ => {}
    }
    let mut forward = p
        .http
        .request(method, format!("{}{target}", p.upstream))
        .body(String::from_utf8_lossy(&body).replace(&public, &p.upstream));
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = headers.get(name) {
            forward = forward.header(name, v.as_bytes());
        }
    }
    let answer = forward.send().await.expect("the simulator answers");
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| v.as_bytes().to_vec());
    let text = answer.text().await.unwrap_or_default();
    if stop == Some(Stop::After) {
        p.tripped.notify_one();
        std::future::pending::<()>().await;
    }
    let mut out = Response::builder().status(status);
    if let Some(ct) = content_type {
        out = out.header("content-type", ct);
    }
    out.body(Body::from(text.replace(&p.upstream, &public)))
        .unwrap()
}

/// Starts a proxy to `sim`; its base URL (same path as the simulator's).
async fn proxy(sim: &RossumSimulator) -> (Arc<Proxy>, String) {
    let origin = |url: &str| {
        let u = url::Url::parse(url).unwrap();
        format!("http://{}:{}", u.host_str().unwrap(), u.port().unwrap())
    };
    let p = Arc::new(Proxy {
        upstream: origin(&sim.base_url),
        public: Mutex::new(String::new()),
        trap: Mutex::new(None),
        tripped: Notify::new(),
        http: reqwest::Client::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    *p.public.lock().unwrap() = public.clone();
    let app = axum::Router::new().fallback(handle).with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let base = sim.base_url.replace(&p.upstream, &public);
    (p, base)
}

fn manifests(dir: &Path, endpoint: &str) -> PathBuf {
    let path = dir.join("manifests.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: rossum-admin, namespace: tenants}}\nstringData:\n  username: {ADMIN}\n  password: {PASSWORD}\n  createKey: {CREATE_KEY}\n---\napiVersion: orgops.io/v1alpha1\nkind: VendorConnection\nmetadata: {{name: rossum, namespace: tenants}}\nspec:\n  vendor: rossum\n  endpoint: {endpoint}\n  credentialsSecretRef: {{name: rossum-admin}}\n---\napiVersion: orgops.io/v1alpha1\nkind: Organization\nmetadata: {{name: nordics, namespace: tenants}}\nspec:\n  vendor: rossum\n  displayName: Nordics\n  connectionRef: {{name: rossum}}\n  settings: {{rossum: {{firstUser: {{email: nordics@tenants.example}}}}}}\n"
        ),
    )
    .unwrap();
    path
}

fn apply(manifests: &Path, state: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgops"));
    c.args(["apply", "-f"])
        .arg(manifests)
        .arg("--state-file")
        .arg(state)
        .args(["--rate-limit", "200", "--attempts", "1", "-q"])
        .env("XDG_STATE_HOME", state.parent().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

fn named_nordics(sim: &RossumSimulator) -> Vec<Value> {
    sim.all_objects("organizations")
        .into_iter()
        .filter(|o| o["name"] == "Nordics")
        .collect()
}

/// Runs apply until the proxy stops `trap`, kills it there, and runs apply again: one org,
/// marked as this Organization's, and nothing left in the state file.
async fn killed_at(trap: Trap) {
    let sim = simulator("").await;
    let (proxy, endpoint) = proxy(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let files = manifests(dir.path(), &endpoint);
    let state = dir.path().join("state.json");

    let description = format!("{:?} {} {}", trap.stop, trap.method, trap.path);
    *proxy.trap.lock().unwrap() = Some(trap);
    let mut first = apply(&files, &state).spawn().unwrap();
    tokio::select! {
        _ = proxy.tripped.notified() => {}
        out = first.wait() => panic!("{description}: apply ended ({out:?}) before the trap"),
        _ = tokio::time::sleep(Duration::from_secs(60)) => panic!("{description}: trap never hit"),
    }
    first.start_kill().unwrap();
    let status = first.wait().await.unwrap();
    assert!(!status.success(), "{description}: not killed");

    let again = apply(&files, &state).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{description}: the second run failed\n{stdout}\n{stderr}"
    );
    let orgs = named_nordics(&sim);
    assert_eq!(orgs.len(), 1, "{description}: {} organizations", orgs.len());
    assert_eq!(
        orgs[0]["metadata"]["orgops"]["owner"], "tenants/nordics",
        "{description}: not marked"
    );
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("nordics "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row.get(2).copied(),
        Some(orgs[0]["id"].to_string().as_str()),
        "{description}: the second run reports another org\n{stdout}"
    );
    let left: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        left,
        serde_json::json!({}),
        "{description}: state left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_create_request_reaches_the_vendor() {
    killed_at(Trap {
        method: Method::POST,
        path: "/organizations/create",
        stop: Stop::Before,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_vendor_created_the_org_before_the_answer_arrived() {
    killed_at(Trap {
        method: Method::POST,
        path: "/organizations/create",
        stop: Stop::After,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_create_answer_while_getting_a_token_for_the_marker() {
    // The id is known here and only here: before the fix the intent had already left the
    // state file, and the next run created a second organization.
    killed_at(Trap {
        method: Method::POST,
        path: "/auth/membership_token",
        stop: Stop::Before,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_marker_patch_reaches_the_vendor() {
    killed_at(Trap {
        method: Method::PATCH,
        path: "/organizations/{id}",
        stop: Stop::Before,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_vendor_wrote_the_marker_before_the_answer_arrived() {
    killed_at(Trap {
        method: Method::PATCH,
        path: "/organizations/{id}",
        stop: Stop::After,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_marker_patch_keeps_the_id_and_the_next_run_adopts_it() {
    let sim = simulator("").await;
    let (proxy, endpoint) = proxy(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let files = manifests(dir.path(), &endpoint);
    let state = dir.path().join("state.json");

    *proxy.trap.lock().unwrap() = Some(Trap {
        method: Method::PATCH,
        path: "/organizations/{id}",
        stop: Stop::Refuse,
    });
    let first = apply(&files, &state).output().await.unwrap();
    assert_eq!(
        first.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let orgs = named_nordics(&sim);
    assert_eq!(orgs.len(), 1);
    assert!(
        orgs[0]["metadata"].get("orgops").is_none(),
        "marker written"
    );
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let entry = kept.as_object().unwrap().values().next().expect("an entry");
    assert_eq!(entry["externalId"], orgs[0]["id"].to_string(), "{kept}");
    assert_eq!(entry["name"], "Nordics");

    *proxy.trap.lock().unwrap() = None;
    let again = apply(&files, &state).output().await.unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let orgs = named_nordics(&sim);
    assert_eq!(orgs.len(), 1, "a second organization was created");
    assert_eq!(orgs[0]["metadata"]["orgops"]["owner"], "tenants/nordics");
    let left: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(left, serde_json::json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_on_disk_whose_org_is_gone_is_reported_not_replaced() {
    let sim = simulator("").await;
    let dir = tempfile::tempdir().unwrap();
    let files = manifests(dir.path(), &sim.base_url);
    let state = dir.path().join("state.json");
    let key = format!("rossum {} tenants/nordics", sim.base_url);
    std::fs::write(
        &state,
        serde_json::json!({ &key: {"name": "Nordics", "startedAt": "2020-01-01T00:00:00Z",
                                   "externalId": "987654"} })
        .to_string(),
    )
    .unwrap();
    let run = apply(&files, &state).output().await.unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(named_nordics(&sim).is_empty(), "created one anyway");
    let yaml = apply(&files, &state)
        .args(["-o", "yaml"])
        .output()
        .await
        .unwrap();
    let docs: Vec<orgops::api::Organization> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&yaml.stdout)).unwrap();
    let ready = docs[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("a Ready condition");
    assert_eq!(ready.reason, "OrganizationNotFound");
    for needle in ["987654", state.to_str().unwrap(), &key] {
        assert!(
            ready.message.contains(needle),
            "{needle} not in {}",
            ready.message
        );
    }
    assert!(named_nordics(&sim).is_empty(), "created one anyway");
}
