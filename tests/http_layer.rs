//! The shared vendor HTTP layer against scripted loopback servers: what is retried, what is
//! not, `Retry-After`, the shared rate limit, re-login on 401, origin pinning, redirects, the
//! response size cap and per-flow fairness; and the pieces each vendor needs: `text/plain`
//! bodies, a credential in a header of its own, its error-body format, POSTs that are safe to
//! repeat, statuses the caller reads itself, expiring tokens, offset and cursor pagination.
//!
//! "Nothing was sent there" is always checked on the request log of a second listener.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method as AxumMethod, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use orgops::vendors::http::{
    ErrorFormat, HttpConfig, HttpError, Repeat, Request, Token, TokenCache, Transport, in_flow,
    page_offset_url,
};
use orgops::vendors::{Endpoints, VendorError};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

/// One scripted answer.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
}

impl From<u16> for Answer {
    fn from(status: u16) -> Self {
        let headers = if status == 429 {
            vec![("retry-after", "1".to_string())]
        } else {
            Vec::new()
        };
        Answer {
            status,
            headers,
            body: json!({"detail": format!("scripted {status}")}),
        }
    }
}

impl Answer {
    /// A redirect to `location`.
    fn redirect(status: u16, location: impl Into<String>) -> Self {
        Answer {
            status,
            headers: vec![("location", location.into())],
            body: json!({}),
        }
    }

    /// A 200 with `body`.
    fn ok(body: Value) -> Self {
        Answer {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header.
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// Path and query.
    uri: String,
    authorization: Option<String>,
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct Script {
    /// Answers, in order; then 200.
    answers: Mutex<Vec<Answer>>,
    hits: AtomicU32,
    seen: Mutex<Vec<Seen>>,
}

impl Script {
    fn answering<A: Into<Answer>>(answers: impl IntoIterator<Item = A>) -> Arc<Self> {
        Arc::new(Script {
            answers: Mutex::new(answers.into_iter().map(Into::into).collect()),
            ..Script::default()
        })
    }

    fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves `app` on a fresh loopback port; returns `http://127.0.0.1:<port>`.
async fn bind(app: Router) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Url::parse(&format!("http://{addr}/")).unwrap()
}

/// Serves `script`; returns the URL `…/api/v1/x` on it.
async fn serve(script: Arc<Script>) -> Url {
    let app = Router::new().route(
        "/{*path}",
        any(
            move |method: AxumMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
                let script = script.clone();
                async move {
                    script.hits.fetch_add(1, Ordering::SeqCst);
                    script.seen.lock().unwrap().push(Seen {
                        method: method.to_string(),
                        uri: uri.to_string(),
                        authorization: headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string()),
                        headers: headers.clone(),
                        body: String::from_utf8_lossy(&body).to_string(),
                    });
                    let next = {
                        let mut a = script.answers.lock().unwrap();
                        if a.is_empty() {
                            Answer::from(200)
                        } else {
                            a.remove(0)
                        }
                    };
                    let mut resp = (
                        StatusCode::from_u16(next.status).unwrap(),
                        axum::Json(next.body),
                    )
                        .into_response();
                    for (name, value) in next.headers {
                        resp.headers_mut().insert(name, value.parse().unwrap());
                    }
                    resp
                }
            },
        ),
    );
    bind(app).await.join("api/v1/x").unwrap()
}

/// The origin of `url` as the layer prints it.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn fast() -> HttpConfig {
    HttpConfig {
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        rate_per_second: 1000,
        ..HttpConfig::default()
    }
}

#[tokio::test]
async fn safe_requests_are_retried_after_5xx() {
    let script = Script::answering([503, 502, 500]);
    let url = serve(script.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let resp = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(script.hits(), 4);
}

#[tokio::test]
async fn a_post_is_never_blindly_resent_after_a_5xx() {
    let script = Script::answering([503]);
    let url = serve(script.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::POST, url.clone()).json(serde_json::json!({"a": 1})))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(script.hits(), 1);
}

#[tokio::test]
async fn a_post_is_resent_after_429_because_it_was_not_processed_and_retry_after_is_honoured() {
    let script = Script::answering([429]);
    let url = serve(script.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let start = Instant::now();
    let resp = t
        .send(&Request::new(Method::POST, url.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(script.hits(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_carry_the_vendor_message() {
    let script = Script::answering([400]);
    let url = serve(script.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::PATCH, url.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("scripted 400"));
    assert_eq!(script.hits(), 1);
}

#[tokio::test]
async fn one_rate_limit_is_shared_by_every_client_of_an_endpoint() {
    let script = Script::answering::<u16>([]);
    let url = serve(script.clone()).await;
    let endpoints = Endpoints::default();
    let config = HttpConfig {
        rate_per_second: 20,
        ..fast()
    };
    // Two transports (two reconciles) of the same endpoint.
    let a = Transport::new("test", &url, config.clone(), &endpoints).unwrap();
    let b = Transport::new("test", &url, config, &endpoints).unwrap();
    let start = Instant::now();
    let reqs = (0..20).map(|i| {
        let t = if i % 2 == 0 { a.clone() } else { b.clone() };
        let url = url.clone();
        async move { t.send(&Request::new(Method::GET, url)).await.unwrap() }
    });
    futures::future::join_all(reqs).await;
    // 20 requests at 20/s with a burst of 10: at least ~0.45 s.
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        a.stats().total(),
        20,
        "both transports count on the shared endpoint"
    );
}

#[tokio::test]
async fn expired_tokens_are_renewed_once_and_bad_credentials_name_the_secret() {
    use orgops::simulator::ServeOptions;
    use orgops::simulator::rossum::{Admin, RossumSimulator, Seed};
    let admin = Admin {
        username: "a@example.com".into(),
        password: "right-password-123".into(),
        create_key: "k".into(),
    };
    let sim = RossumSimulator::start(
        0,
        &Seed::template().unwrap(),
        std::slice::from_ref(&admin),
        ServeOptions::default(),
    )
    .await
    .unwrap();
    let creds = |pw: &str| {
        let mut v = std::collections::BTreeMap::new();
        v.insert(
            "username".to_string(),
            secrecy::SecretString::from(admin.username.clone()),
        );
        v.insert(
            "password".to_string(),
            secrecy::SecretString::from(pw.to_string()),
        );
        orgops::vendors::Credentials::new("ns/rossum-creds", v)
    };
    let endpoints = Endpoints::default();
    let c = orgops::vendors::connect(
        orgops::api::Vendor::Rossum,
        Some(&sim.base_url),
        creds("right-password-123"),
        fast(),
        &endpoints,
    )
    .unwrap();
    assert!(!c.find_orgs(None).await.unwrap().is_empty());
    // Every token expires at the vendor.
    sim.with_db(|db| db.tokens.clear());
    assert!(
        !c.find_orgs(None).await.unwrap().is_empty(),
        "re-login after 401"
    );

    let bad = orgops::vendors::connect(
        orgops::api::Vendor::Rossum,
        Some(&sim.base_url),
        creds("wrong-password-456"),
        fast(),
        &endpoints,
    )
    .unwrap();
    let err = bad.verify_credentials().await.unwrap_err();
    assert!(matches!(err, VendorError::InvalidCredentials { .. }));
    let text = format!("{err} {err:?}");
    assert!(text.contains("ns/rossum-creds"));
    assert!(!text.contains("wrong-password-456") && !text.contains("right-password-123"));
}

#[tokio::test]
async fn a_token_secret_works_and_a_bad_token_names_the_secret() {
    use orgops::simulator::ServeOptions;
    use orgops::simulator::rossum::{Admin, RossumSimulator, Seed};
    let admin = Admin {
        username: "t@example.com".into(),
        password: "token-test-password".into(),
        create_key: "k".into(),
    };
    let sim = RossumSimulator::start(
        0,
        &Seed::template().unwrap(),
        std::slice::from_ref(&admin),
        ServeOptions::default(),
    )
    .await
    .unwrap();
    let key: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/auth/login", sim.base_url))
        .form(&[
            ("username", admin.username.as_str()),
            ("password", admin.password.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = |t: &str| {
        let mut v = std::collections::BTreeMap::new();
        v.insert(
            "token".to_string(),
            secrecy::SecretString::from(t.to_string()),
        );
        orgops::vendors::Credentials::new("ns/rossum-token", v)
    };
    let endpoints = Endpoints::default();
    let good = orgops::vendors::connect(
        orgops::api::Vendor::Rossum,
        Some(&sim.base_url),
        token(key["key"].as_str().unwrap()),
        fast(),
        &endpoints,
    )
    .unwrap();
    good.verify_credentials().await.unwrap();
    assert!(
        good.find_orgs(None)
            .await
            .unwrap()
            .iter()
            .any(|o| o.name == "Template org")
    );

    let bad = orgops::vendors::connect(
        orgops::api::Vendor::Rossum,
        Some(&sim.base_url),
        token("not-a-real-token-0000"),
        fast(),
        &endpoints,
    )
    .unwrap();
    let err = bad.verify_credentials().await.unwrap_err();
    assert_eq!(err.category(), "CredentialsInvalid");
    assert!(
        err.to_string().contains("ns/rossum-token")
            && !err.to_string().contains("not-a-real-token")
    );
}

/// A page body in the shape the pagination tests use.
fn page(results: Value, next: Option<String>) -> Answer {
    Answer::ok(json!({"results": results, "next": next}))
}

fn split(page: Value) -> Result<(Vec<Value>, Option<String>), String> {
    let items = page["results"].as_array().cloned().ok_or("no results")?;
    Ok((items, page["next"].as_str().map(str::to_string)))
}

fn bearer() -> SecretString {
    SecretString::from("Bearer secret-token-123")
}

#[tokio::test]
async fn a_request_to_another_origin_is_refused_without_sending_anything() {
    let vendor = Script::answering::<u16>([]);
    let other = Script::answering::<u16>([]);
    let url = serve(vendor.clone()).await;
    let elsewhere = serve(other.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::GET, elsewhere.clone()).authorization(bearer()))
        .await
        .unwrap_err();
    match &err {
        HttpError::OffOrigin { url: to, allowed } => {
            assert_eq!(to, &origin(&elsewhere));
            assert_eq!(allowed, &origin(&url));
        }
        other => panic!("expected OffOrigin, got {other}"),
    }
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        format!(
            "refused to send a request to {}: the connection's origin is {}",
            origin(&elsewhere),
            origin(&url)
        )
    );
    assert_eq!(other.hits(), 0);
    assert_eq!(vendor.hits(), 0);
    assert_eq!(t.stats().total(), 0, "not even counted as an attempt");
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_the_token_stays_home() {
    let other = Script::answering::<u16>([]);
    let elsewhere = serve(other.clone()).await;
    let vendor = Script::answering([page(
        json!([1, 2]),
        Some(elsewhere.join("steal?page=2").unwrap().to_string()),
    )]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .get_all_pages(url.clone(), Some(bearer()), split)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::OffOrigin { url: to, .. } if *to == origin(&elsewhere)),
        "{err}"
    );
    assert_eq!(vendor.hits(), 1);
    assert_eq!(other.hits(), 0);
    assert!(other.seen().is_empty(), "the bearer token never reached it");
}

#[tokio::test]
async fn a_relative_next_link_is_resolved_against_the_page_and_followed() {
    let vendor = Script::answering([
        page(json!([1, 2]), Some("x?page=2".into())),
        page(json!([3]), Some("/api/v1/x?page=3".into())),
        page(json!([4]), None),
    ]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let items = t
        .get_all_pages(url.clone(), Some(bearer()), split)
        .await
        .unwrap();
    assert_eq!(items, vec![json!(1), json!(2), json!(3), json!(4)]);
    let uris: Vec<_> = vendor.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(uris, ["/api/v1/x", "/api/v1/x?page=2", "/api/v1/x?page=3"]);
}

#[tokio::test]
async fn a_post_redirected_elsewhere_is_not_followed_and_the_password_stays_home() {
    let other = Script::answering::<u16>([]);
    let elsewhere = serve(other.clone()).await;
    let vendor = Script::answering([Answer::redirect(
        307,
        elsewhere.join("auth/login").unwrap().to_string(),
    )]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let login = Request::new(Method::POST, url.join("auth/login").unwrap())
        .json(json!({"username": "a", "password": "hunter2-password"}))
        .repeat(orgops::vendors::http::Repeat::Safe);
    let err = t.send(&login).await.unwrap_err();
    assert_eq!(err.status(), Some(307), "{err}");
    assert!(err.to_string().contains(&origin(&elsewhere)), "{err}");
    assert!(!err.is_transient());
    assert_eq!(vendor.hits(), 1, "not retried either");
    assert_eq!(vendor.seen()[0].method, "POST");
    assert_eq!(other.hits(), 0);
    assert!(other.seen().iter().all(|s| !s.body.contains("hunter2")));
}

#[tokio::test]
async fn a_write_is_not_redirected_even_within_the_origin() {
    let vendor = Script::answering([Answer::redirect(308, "/api/v1/moved")]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::PATCH, url.clone()).json(json!({"a": 1})))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(308), "{err}");
    assert!(err.to_string().contains("redirected to"), "{err}");
    assert_eq!(vendor.hits(), 1);
}

#[tokio::test]
async fn a_get_redirected_to_another_origin_is_refused() {
    let other = Script::answering::<u16>([]);
    let elsewhere = serve(other.clone()).await;
    let vendor = Script::answering([Answer::redirect(
        302,
        elsewhere.join("api/v1/x").unwrap().to_string(),
    )]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::GET, url.clone()).authorization(bearer()))
        .await
        .unwrap_err();
    let HttpError::OffOrigin { url: to, allowed } = &err else {
        panic!("expected OffOrigin, got {err}");
    };
    assert_eq!((to, allowed), (&origin(&elsewhere), &origin(&url)));
    assert_eq!(vendor.hits(), 1);
    assert_eq!(other.hits(), 0);
}

#[tokio::test]
async fn a_get_follows_redirects_within_the_origin_up_to_five_hops() {
    let vendor = Script::answering([
        Answer::redirect(301, "/api/v1/a"),
        Answer::redirect(302, "b"),
        Answer::ok(json!({"here": true})),
    ]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let resp = t
        .send(&Request::new(Method::GET, url.clone()).authorization(bearer()))
        .await
        .unwrap();
    assert_eq!(resp.json().unwrap(), json!({"here": true}));
    let seen = vendor.seen();
    let uris: Vec<_> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["/api/v1/x", "/api/v1/a", "/api/v1/b"]);
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer secret-token-123")),
        "the credential is kept within the origin"
    );

    // A redirect loop ends after five hops.
    let looping = Script::answering((0..20).map(|_| Answer::redirect(307, "/api/v1/x")));
    let url = serve(looping.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(307), "{err}");
    assert!(err.to_string().contains("more than 5"), "{err}");
    assert_eq!(looping.hits(), 6);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap() {
    // The server streams 64 KiB chunks for as long as the client reads.
    let streamed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = streamed.clone();
    let app = Router::new().route(
        "/{*path}",
        any(move || {
            let counter = counter.clone();
            async move {
                let chunks = futures::stream::repeat_with(move || {
                    counter.fetch_add(64 * 1024, Ordering::SeqCst);
                    Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; 64 * 1024]))
                });
                axum::body::Body::from_stream(chunks)
            }
        }),
    );
    let url = bind(app).await.join("api/v1/x").unwrap();
    let config = HttpConfig {
        max_response_bytes: 1024 * 1024,
        // Without the cap the read would only end here, as a transport error.
        timeout: Duration::from_secs(20),
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    let start = Instant::now();
    let err = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpError::ResponseTooLarge {
                max_bytes: 1048576,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("1048576 bytes"), "{err}");
    assert!(!err.is_transient());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(t.stats().total(), 1, "not retried");
    // The client stopped reading: the server got rid of little more than the cap (plus socket
    // buffers), not the hundreds of MiB it would stream in the meantime.
    let sent = streamed.load(Ordering::SeqCst);
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes streamed");
}

#[tokio::test]
async fn a_create_answered_with_a_huge_body_is_an_unknown_outcome_not_a_failure() {
    // The vendor processed the POST; only its answer is too large to read. The engine must
    // observe before creating again, as after a lost response.
    let app = Router::new().route(
        "/{*path}",
        any(|| async { (axum::http::StatusCode::CREATED, vec![b'x'; 256 * 1024]) }),
    );
    let url = bind(app).await.join("api/v1/queues").unwrap();
    let config = HttpConfig {
        max_response_bytes: 64 * 1024,
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::POST, url.clone()).json(serde_json::json!({"name": "q"})))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(t.stats().total(), 1, "never re-sent");
    // A read of the same size stays a plain, non-transient refusal.
    let err = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::ResponseTooLarge { .. }), "{err}");
}

#[tokio::test]
async fn an_over_long_content_length_is_refused_before_reading() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A raw server that announces 10 GiB, sends nothing of it and keeps the connection open:
    // a client that reads waits for the timeout instead.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            content-length: 10737418240\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let url = Url::parse(&format!("http://{addr}/api/v1/x")).unwrap();
    let config = HttpConfig {
        timeout: Duration::from_secs(20),
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    let start = Instant::now();
    let err = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap_err();
    let default_cap = HttpConfig::default().max_response_bytes;
    assert_eq!(default_cap, 32 * 1024 * 1024);
    assert!(
        matches!(err, HttpError::ResponseTooLarge { max_bytes, .. } if max_bytes == default_cap),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// A 429 asking to wait `retry_after`.
fn throttled(retry_after: impl Into<String>) -> Answer {
    Answer::from(429).header("retry-after", retry_after)
}

#[tokio::test]
async fn a_long_retry_after_is_capped_per_wait() {
    let script = Script::answering([throttled("300")]);
    let url = serve(script.clone()).await;
    let config = HttpConfig {
        max_retry_after: Duration::from_secs(1),
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    let start = Instant::now();
    let resp = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(30),
        "{took:?}"
    );
    assert_eq!(script.hits(), 2);
}

#[tokio::test]
async fn throttling_beyond_the_total_budget_gives_up_with_the_429() {
    let script = Script::answering((0..50).map(|_| throttled("300")));
    let url = serve(script.clone()).await;
    let config = HttpConfig {
        max_retry_after: Duration::from_secs(1),
        max_throttle_wait: Duration::from_secs(2),
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    let start = Instant::now();
    let err = t
        .send(&Request::new(Method::POST, url.clone()))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, HttpError::Status { status: 429, .. }),
        "{err}"
    );
    assert!(
        err.is_transient(),
        "the controller backs off and tries later"
    );
    assert!(err.to_string().contains("max_throttle_wait"), "{err}");
    // About 2 s of waiting; the vendor asked for 300 s per 429.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(30),
        "{took:?}"
    );
    let hits = script.hits();
    assert!((2..=10).contains(&hits), "{hits} attempts");
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured_and_capped() {
    let in_an_hour = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&in_an_hour)
        .unwrap();
    let script = Script::answering([throttled(date)]);
    let url = serve(script.clone()).await;
    let config = HttpConfig {
        // Above the 1 s default, so an unparsed date would show as a shorter wait.
        max_retry_after: Duration::from_secs(2),
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    let start = Instant::now();
    t.send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(30),
        "{took:?}"
    );
    assert_eq!(script.hits(), 2);
}

/// Asserts that the 5 requests whose URI ends in `quiet`, queued once `before` requests had
/// arrived, arrived among the next 20 and each right after one of the busy flow's: one token
/// per flow per turn.
fn assert_takes_turns(script: &Script, quiet: &str, before: usize) {
    let positions: Vec<usize> = script
        .seen()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.uri.ends_with(quiet))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(positions.len(), 5);
    assert!(
        positions.iter().all(|p| *p < before + 20),
        "the quiet flow arrived at {positions:?}, having queued after request {before}"
    );
    // The quiet flow does not overtake the busy one either: the two alternate.
    assert!(
        positions.windows(2).all(|w| w[1] - w[0] == 2),
        "the quiet flow arrived at {positions:?}; the flows should take turns"
    );
}

#[tokio::test]
async fn a_busy_flow_does_not_starve_a_quiet_one() {
    let script = Script::answering::<u16>([]);
    let url = serve(script.clone()).await;
    let config = HttpConfig {
        rate_per_second: 20,
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    let request = |flow: &str| {
        let t = t.clone();
        let url = url.join(&format!("x?flow={flow}")).unwrap();
        async move { t.send(&Request::new(Method::GET, url)).await.map(|_| ()) }
    };
    // Organization A queues 100 requests at once.
    let mut busy = tokio::task::JoinSet::new();
    for _ in 0..100 {
        busy.spawn(in_flow("a", request("a")));
    }
    // Once A has spent the burst (and so has every request queued), B asks for 5.
    while script.hits() < 12 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = script.seen().len();
    let quiet = in_flow("b", futures::future::join_all((0..5).map(|_| request("b")))).await;
    assert!(quiet.iter().all(Result::is_ok));
    // Turns alternate between A and B, so B's 5 arrive among the next ~10 requests; first come
    // first served would put them after A's remaining ~88.
    assert_takes_turns(&script, "flow=b", before);
    assert!(
        script.hits() < 60,
        "B finished long before A ({} requests so far)",
        script.hits()
    );

    // A gives up its queued requests: they take no tokens, so A's next request is served at
    // once (handing the 80-odd tokens to dropped requests first would take 4 s at 20/s).
    busy.abort_all();
    while busy.join_next().await.is_some() {}
    let again = tokio::time::timeout(Duration::from_secs(2), in_flow("a", request("a"))).await;
    assert!(matches!(again, Ok(Ok(()))), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_that_keeps_requeueing_does_not_starve_another() {
    let script = Script::answering::<u16>([]);
    let url = serve(script.clone()).await;
    let config = HttpConfig {
        rate_per_second: 20,
        ..fast()
    };
    let t = Transport::new("test", &url, config, &Endpoints::default()).unwrap();
    // A copy of organization A: 16 workers, each sending its next request as soon as the last
    // one is answered.
    let mut busy = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let t = t.clone();
        let url = url.join("x?flow=a").unwrap();
        busy.spawn(in_flow("a", async move {
            loop {
                let _ = t.send(&Request::new(Method::GET, url.clone())).await;
            }
        }));
    }
    while script.hits() < 12 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = script.seen().len();
    let quiet = in_flow(
        "b",
        futures::future::join_all((0..5).map(|_| {
            let t = t.clone();
            let url = url.join("x?flow=b").unwrap();
            async move { t.send(&Request::new(Method::GET, url)).await.map(|_| ()) }
        })),
    )
    .await;
    busy.abort_all();
    assert!(quiet.iter().all(Result::is_ok));
    assert_takes_turns(&script, "flow=b", before);
}

#[tokio::test]
async fn a_rate_key_names_the_bucket_instead_of_the_origin() {
    let first = Script::answering::<u16>([]);
    let second = Script::answering::<u16>([]);
    let a = serve(first.clone()).await;
    let b = serve(second.clone()).await;
    let endpoints = Endpoints::default();
    let owned = HttpConfig {
        rate_key: Some("test connection/ns/one".into()),
        ..fast()
    };
    // Two origins under one key share one bucket; the same origin without a key has its own.
    let ta = Transport::new("test", &a, owned.clone(), &endpoints).unwrap();
    let tb = Transport::new("test", &b, owned, &endpoints).unwrap();
    let plain = Transport::new("test", &a, fast(), &endpoints).unwrap();
    ta.send(&Request::new(Method::GET, a.clone()))
        .await
        .unwrap();
    tb.send(&Request::new(Method::GET, b.clone()))
        .await
        .unwrap();
    plain
        .send(&Request::new(Method::GET, a.clone()))
        .await
        .unwrap();
    assert_eq!(ta.stats().total(), 2, "one bucket for both origins");
    assert_eq!(plain.stats().total(), 1);
    let mut snapshot: Vec<(String, u64)> = endpoints
        .snapshot()
        .into_iter()
        .map(|(key, counts)| (key, counts.values().sum()))
        .collect();
    snapshot.sort();
    assert_eq!(
        snapshot,
        vec![
            ("test connection/ns/one".to_string(), 2),
            (format!("test {}", origin(&a)), 1),
        ]
    );
    // The key picks the bucket; each transport still talks only to its own origin.
    let err = ta
        .send(&Request::new(Method::GET, b.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::OffOrigin { .. }), "{err}");
    assert_eq!(second.hits(), 1);
    assert_eq!(first.hits(), 2);
}

// ---- Per-vendor pieces --------------------------------------------------------------------

#[tokio::test]
async fn a_text_body_goes_as_text_plain_without_json_quotes() {
    let vendor = Script::answering::<u16>([]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    t.send(&Request::new(Method::PUT, url.clone()).text("Acme \"Ops\" – Zürich"))
        .await
        .unwrap();
    let seen = &vendor.seen()[0];
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.body, "Acme \"Ops\" – Zürich", "raw, not JSON-quoted");
    assert_eq!(
        seen.headers["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
}

#[tokio::test]
async fn an_apikey_header_carries_the_credential_and_never_leaves_the_origin() {
    let other = Script::answering::<u16>([]);
    let elsewhere = serve(other.clone()).await;
    let vendor = Script::answering([
        Answer::ok(json!({"data": {"ok": true}})),
        Answer::redirect(302, elsewhere.join("graphql").unwrap().to_string()),
        // A vendor echoing the key in its error must not put it in our messages.
        Answer {
            status: 401,
            headers: Vec::new(),
            body: json!({"message": "unknown key apikey-secret-0123456789"}),
        },
    ]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default())
        .unwrap()
        .with_error_format(ErrorFormat::Dataloop);
    let key = || {
        (
            reqwest::header::HeaderName::from_static("apikey"),
            SecretString::from("apikey-secret-0123456789"),
        )
    };
    let with_key = |method: Method| {
        let (name, value) = key();
        Request::new(method, url.clone()).credential_header(name, value)
    };
    t.send(&with_key(Method::POST).repeat(Repeat::Safe))
        .await
        .unwrap();
    let first = &vendor.seen()[0];
    assert_eq!(
        first.headers["apikey"].to_str().unwrap(),
        "apikey-secret-0123456789"
    );
    assert!(first.authorization.is_none(), "no Authorization besides it");

    let err = t.send(&with_key(Method::GET)).await.unwrap_err();
    assert!(matches!(err, HttpError::OffOrigin { .. }), "{err}");
    assert_eq!(other.hits(), 0, "the key never reached another origin");

    let err = t.send(&with_key(Method::GET)).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let text = format!("{err} {err:?}");
    assert!(text.contains("unknown key [redacted]"), "{text}");
    assert!(!text.contains("0123456789"), "{text}");
}

#[tokio::test]
async fn each_transport_reads_error_bodies_in_its_vendors_format() {
    let ol_body = json!({"errors": [{"error": {"type": "illegalArgument", "code": 400},
        "message": "Unable to create securable principal for organization. This means the organization probably already exists."}]});
    let answer = || Answer {
        status: 400,
        headers: Vec::new(),
        body: ol_body.clone(),
    };
    let vendor = Script::answering([answer(), answer()]);
    let url = serve(vendor.clone()).await;
    let endpoints = Endpoints::default();
    let ol = Transport::new("openlattice", &url, fast(), &endpoints)
        .unwrap()
        .with_error_format(ErrorFormat::OpenLattice);
    let err = ol
        .send(&Request::new(Method::POST, url.clone()))
        .await
        .unwrap_err();
    let HttpError::Status { status, detail, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*status, 400);
    assert_eq!(
        detail,
        "illegalArgument: Unable to create securable principal for organization. This means the organization probably already exists."
    );
    // The same body read the DRF way is a dump of the JSON, not the message.
    let drf = Transport::new("rossum", &url, fast(), &endpoints).unwrap();
    let err = drf
        .send(&Request::new(Method::POST, url.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("errors: "), "{err}");
}

#[tokio::test]
async fn graphql_errors_in_a_200_answer_are_errors_and_data_comes_back_otherwise() {
    let vendor = Script::answering([
        Answer::ok(json!({"data": {"getOrganizations": [{"organizationId": "o1"}]}})),
        Answer::ok(json!({"data": {"createWorkspace": null},
            "errors": [{"message": "The Workspaces limit has been reached by this organization", "path": ["createWorkspace"]}]})),
        Answer::ok(json!({"nothing": true})),
    ]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("renderedai", &url, fast(), &Endpoints::default())
        .unwrap()
        .with_error_format(ErrorFormat::GraphQl);
    let query = || Request::new(Method::POST, url.clone()).json(json!({"query": "{ x }"}));
    let data = t
        .send(&query().repeat(Repeat::Safe))
        .await
        .unwrap()
        .graphql_data()
        .unwrap();
    assert_eq!(data["getOrganizations"][0]["organizationId"], "o1");
    let err = t.send(&query()).await.unwrap().graphql_data().unwrap_err();
    let HttpError::GraphQl { detail, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        detail,
        "The Workspaces limit has been reached by this organization"
    );
    assert!(!err.is_transient());
    let err = t.send(&query()).await.unwrap().graphql_data().unwrap_err();
    assert!(matches!(err, HttpError::Decode { .. }), "{err}");
}

/// A raw HTTP/1.1 server that reads each request and closes the first `drops` connections
/// without answering (a lost response), then answers `200 {}`; counts the requests it read.
async fn dropping_server(drops: u32) -> (Url, Arc<AtomicU32>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut read = 0;
                // Up to the end of the headers and the (small) body the tests send.
                loop {
                    let n = sock.read(&mut buf[read..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buf[..read]);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if read >= end + 4 + len {
                            break;
                        }
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < drops {
                    return; // closed without a response
                }
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            });
        }
    });
    (Url::parse(&format!("http://{addr}/graphql")).unwrap(), seen)
}

#[tokio::test]
async fn a_post_marked_safe_is_retried_like_a_get_and_an_unsafe_one_is_not() {
    // A 5xx.
    let vendor = Script::answering([503, 502]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let query = Request::new(Method::POST, url.clone())
        .json(json!({"query": "query { getOrganizations { organizationId } }"}))
        .repeat(Repeat::Safe);
    let resp = t.send(&query).await.unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(vendor.hits(), 3);
    assert!(
        vendor
            .seen()
            .iter()
            .all(|s| s.body.contains("getOrganizations"))
    );

    // A lost response.
    let (url, seen) = dropping_server(2).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let query = Request::new(Method::POST, url.clone())
        .json(json!({"query": "{ x }"}))
        .repeat(Repeat::Safe);
    t.send(&query).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    let (url, seen) = dropping_server(1).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let create = Request::new(Method::POST, url.clone()).json(json!({"query": "mutation { y }"}));
    let err = t.send(&create).await.unwrap_err();
    assert!(matches!(err, HttpError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

fn does_not_exist() -> Answer {
    Answer {
        status: 500,
        headers: Vec::new(),
        body: json!({"errors": [{"error": {"type": "illegalState", "code": 500},
            "message": "Organization [8d1e1c8e-0000-4000-8000-000000000001] does not exist."}]}),
    }
}

#[tokio::test]
async fn an_accepted_status_reaches_the_caller_at_once_with_its_message() {
    let config = HttpConfig {
        max_retries: 3,
        ..fast()
    };
    let vendor = Script::answering((0..10).map(|_| does_not_exist()));
    let url = serve(vendor.clone()).await;
    let t = Transport::new("openlattice", &url, config, &Endpoints::default())
        .unwrap()
        .with_error_format(ErrorFormat::OpenLattice);

    let err = t
        .send(&Request::new(Method::GET, url.clone()).accept_status(500))
        .await
        .unwrap_err();
    let HttpError::Status { status, detail, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*status, 500);
    assert!(detail.ends_with("does not exist."), "{detail}");
    assert_eq!(vendor.hits(), 1, "not retried");

    // A POST with the status accepted gets the answer too, not an unknown outcome.
    let err = t
        .send(&Request::new(Method::POST, url.clone()).accept_status(500))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert_eq!(vendor.hits(), 2);

    // Without it, the same 500 is retried max_retries times.
    let err = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(vendor.hits(), 2 + 4);
}

#[tokio::test]
async fn an_accept_predicate_reads_one_meaning_of_a_status_and_retries_the_others() {
    fn unknown_org(status: u16, detail: &str) -> bool {
        status == 500 && detail.ends_with("does not exist.")
    }
    let vendor = Script::answering([does_not_exist(), Answer::from(500), Answer::from(500)]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("openlattice", &url, fast(), &Endpoints::default())
        .unwrap()
        .with_error_format(ErrorFormat::OpenLattice);
    let get = || Request::new(Method::GET, url.clone()).accept_when(unknown_org);
    let err = t.send(&get()).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(vendor.hits(), 1);
    // A 500 with another message is a server failure: retried, here until it succeeds.
    t.send(&get()).await.unwrap();
    assert_eq!(vendor.hits(), 4);
}

/// A vendor whose tokens live `lifetime`: `POST /login` issues one, `GET /me` answers 401 to an
/// expired or unknown one. Returns the base URL, the number of logins and of 401s.
async fn expiring_token_vendor(
    lifetime: Duration,
) -> (
    Url,
    Arc<AtomicU32>,
    Arc<AtomicU32>,
    Arc<Mutex<Vec<(String, Instant)>>>,
) {
    let logins = Arc::new(AtomicU32::new(0));
    let rejected = Arc::new(AtomicU32::new(0));
    let issued: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let (l, i) = (logins.clone(), issued.clone());
    let (r, i2) = (rejected.clone(), issued.clone());
    let app = Router::new()
        .route(
            "/login",
            any(move || {
                let (l, i) = (l.clone(), i.clone());
                async move {
                    let n = l.fetch_add(1, Ordering::SeqCst);
                    let token = format!("token-{n}-abcdef");
                    i.lock()
                        .unwrap()
                        .push((token.clone(), Instant::now() + lifetime));
                    axum::Json(
                        json!({"token": token, "expires_in_ms": lifetime.as_millis() as u64}),
                    )
                }
            }),
        )
        .route(
            "/me",
            any(move |headers: HeaderMap| {
                let (r, i) = (r.clone(), i2.clone());
                async move {
                    let token = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or_default()
                        .to_string();
                    let valid = i
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|(t, until)| *t == token && Instant::now() < *until);
                    if valid {
                        (StatusCode::OK, axum::Json(json!({"me": true})))
                    } else {
                        r.fetch_add(1, Ordering::SeqCst);
                        (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({"message": "token expired"})),
                        )
                    }
                }
            }),
        );
    (bind(app).await, logins, rejected, issued)
}

#[tokio::test]
async fn an_expiring_token_is_renewed_before_it_fails_and_a_revoked_one_after_its_401() {
    let (base, logins, rejected, issued) = expiring_token_vendor(Duration::from_secs(2)).await;
    let t = Transport::new("test", &base, fast(), &Endpoints::default()).unwrap();
    let cache: TokenCache<()> = TokenCache::with_margin(Duration::from_millis(500));
    let login = || async {
        let resp = t
            .send(&Request::new(Method::POST, base.join("login").unwrap()).repeat(Repeat::Safe))
            .await?
            .json()?;
        Ok::<_, HttpError>(Token::with_lifetime(
            SecretString::from(resp["token"].as_str().unwrap().to_string()),
            Duration::from_millis(resp["expires_in_ms"].as_u64().unwrap()),
        ))
    };
    // One call the way a client makes it: the token, the request, and on 401 one re-login.
    let me = || async {
        let token = cache.get_token(&(), login).await?;
        let req = |token: &SecretString| {
            Request::new(Method::GET, base.join("me").unwrap()).authorization(SecretString::from(
                format!("Bearer {}", secrecy::ExposeSecret::expose_secret(token)),
            ))
        };
        match t.send(&req(&token)).await {
            Err(HttpError::Status { status: 401, .. }) => {
                cache.invalidate(&(), &token).await;
                let fresh = cache.get_token(&(), login).await?;
                t.send(&req(&fresh)).await
            }
            other => other,
        }
    };
    me().await.unwrap();
    me().await.unwrap();
    assert_eq!(logins.load(Ordering::SeqCst), 1);
    // Past the token's expiry: renewed before the request, so the vendor sees no expired token.
    tokio::time::sleep(Duration::from_millis(2050)).await;
    me().await.unwrap();
    assert_eq!(logins.load(Ordering::SeqCst), 2);
    assert_eq!(
        rejected.load(Ordering::SeqCst),
        0,
        "no request failed first"
    );

    // The vendor revokes every token: one 401, a re-login, and the call succeeds.
    issued.lock().unwrap().clear();
    me().await.unwrap();
    assert_eq!(rejected.load(Ordering::SeqCst), 1);
    assert_eq!(logins.load(Ordering::SeqCst), 3);
}

fn offset_page(items: Value, has_next: bool) -> Answer {
    Answer::ok(
        json!({"totalItemsCount": 99, "totalPagesCount": 9, "items": items, "hasNextPage": has_next}),
    )
}

#[tokio::test]
async fn offset_pages_are_walked_until_has_next_page_is_false_or_a_page_is_empty() {
    let vendor = Script::answering([
        offset_page(json!([1, 2]), true),
        offset_page(json!([3]), false),
        offset_page(json!([4]), true),
        offset_page(json!([]), true),
    ]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("dataloop", &url, fast(), &Endpoints::default()).unwrap();
    let list = url.join("ontologies?projects=p1").unwrap();
    let items = t
        .get_all_offset_pages(
            |n| Request::new(Method::GET, page_offset_url(&list, n, 2)).authorization(bearer()),
            |r| r.items_and_has_next_page(),
        )
        .await
        .unwrap();
    assert_eq!(items, vec![json!(1), json!(2), json!(3)]);
    let uris: Vec<_> = vendor.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris,
        [
            "/api/v1/ontologies?projects=p1&pageOffset=0&pageSize=2",
            "/api/v1/ontologies?projects=p1&pageOffset=1&pageSize=2",
        ]
    );
    // A page that says more follow but is empty ends the walk (dtlpy does the same).
    let items = t
        .get_all_offset_pages(
            |n| {
                Request::new(Method::POST, url.join("datasets/query").unwrap())
                    .json(
                        json!({"filter": {}, "page": n, "pageSize": 1000, "resource": "datasets"}),
                    )
                    .repeat(Repeat::Safe)
            },
            |r| r.items_and_has_next_page(),
        )
        .await
        .unwrap();
    assert_eq!(items, vec![json!(4)]);
    let bodies: Vec<_> = vendor.seen().into_iter().skip(2).map(|s| s.body).collect();
    assert!(
        bodies[0].contains(r#""page":0"#) && bodies[1].contains(r#""page":1"#),
        "{bodies:?}"
    );

    // A page without hasNextPage is a decode error, not the end of the list.
    let vendor = Script::answering([Answer::ok(json!({"items": [1]}))]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("dataloop", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .get_all_offset_pages(
            |n| Request::new(Method::GET, page_offset_url(&url, n, 10)),
            |r| r.items_and_has_next_page(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Decode { .. }), "{err}");
}

#[tokio::test]
async fn an_offset_page_request_to_another_origin_is_refused() {
    let other = Script::answering::<u16>([]);
    let elsewhere = serve(other.clone()).await;
    let vendor = Script::answering([offset_page(json!([1]), true)]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("dataloop", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .get_all_offset_pages(
            |n| {
                let base = if n == 0 { &url } else { &elsewhere };
                Request::new(Method::GET, page_offset_url(base, n, 1)).authorization(bearer())
            },
            |r| r.items_and_has_next_page(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::OffOrigin { .. }), "{err}");
    assert_eq!(other.hits(), 0);
}

/// A GraphQL `getMembers` query for the page after `cursor`, safe to repeat.
fn members_query(url: Url) -> impl Fn(Option<&str>) -> Request {
    move |cursor| {
        Request::new(Method::POST, url.clone())
            .json(json!({"operationName": "getMembers",
                "variables": {"organizationId": "o1", "limit": 2, "cursor": cursor}, "query": "…"}))
            .repeat(Repeat::Safe)
    }
}

/// Rendered.ai's way: a page shorter than the limit is the last; the cursor is the last id.
fn by_last_id(
    limit: usize,
) -> impl Fn(&orgops::vendors::http::Response) -> Result<(Vec<Value>, Option<String>), HttpError> {
    move |r| {
        let data = r.graphql_data()?;
        let items = data["getMembers"]
            .as_array()
            .cloned()
            .ok_or_else(|| r.decode_error("no list"))?;
        let next = (items.len() == limit)
            .then(|| {
                items
                    .last()
                    .and_then(|i| i["userId"].as_str())
                    .map(str::to_string)
            })
            .flatten();
        Ok((items, next))
    }
}

#[tokio::test]
async fn cursor_pages_are_walked_by_the_last_id_and_a_looping_cursor_is_an_error() {
    let members = |ids: &[&str]| {
        Answer::ok(
            json!({"data": {"getMembers": ids.iter().map(|id| json!({"userId": id})).collect::<Vec<_>>()}}),
        )
    };
    let vendor = Script::answering([members(&["a", "b"]), members(&["c", "d"]), members(&["e"])]);
    let url = serve(vendor.clone()).await;
    let t = Transport::new("renderedai", &url, fast(), &Endpoints::default())
        .unwrap()
        .with_error_format(ErrorFormat::GraphQl);
    let items = t
        .get_all_cursor_pages(members_query(url.clone()), by_last_id(2))
        .await
        .unwrap();
    let ids: Vec<_> = items
        .iter()
        .map(|i| i["userId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    let cursors: Vec<Value> = vendor
        .seen()
        .iter()
        .map(|s| serde_json::from_str::<Value>(&s.body).unwrap()["variables"]["cursor"].clone())
        .collect();
    assert_eq!(cursors, [Value::Null, json!("b"), json!("d")]);

    // A vendor that hands out the same cursor again would loop forever.
    let vendor = Script::answering([
        members(&["a", "b"]),
        members(&["c", "b"]),
        members(&["x", "y"]),
    ]);
    let url2 = serve(vendor.clone()).await;
    let t = Transport::new("renderedai", &url2, fast(), &Endpoints::default()).unwrap();
    let err = t
        .get_all_cursor_pages(members_query(url2), by_last_id(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Decode { cause, .. } if cause.contains("second time")),
        "{err}"
    );
    assert_eq!(vendor.hits(), 2);
}
