//! The shared vendor HTTP layer against a scripted loopback server: what is retried, what is
//! not, `Retry-After`, the shared rate limit, and re-login on 401.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use orgops::vendors::http::{HttpConfig, HttpError, Request, Transport};
use orgops::vendors::{Endpoints, VendorError};
use reqwest::Method;
use url::Url;

#[derive(Default)]
struct Script {
    /// Status codes to answer, in order; then 200.
    answers: Mutex<Vec<u16>>,
    hits: AtomicU32,
}

async fn serve(script: Arc<Script>) -> Url {
    let app = Router::new().route(
        "/{*path}",
        any(move |headers: HeaderMap| {
            let script = script.clone();
            async move {
                script.hits.fetch_add(1, Ordering::SeqCst);
                let next = {
                    let mut a = script.answers.lock().unwrap();
                    if a.is_empty() { 200 } else { a.remove(0) }
                };
                let mut resp = (
                    StatusCode::from_u16(next).unwrap(),
                    axum::Json(serde_json::json!({"detail": format!("scripted {next}")})),
                )
                    .into_response();
                if next == 429 {
                    resp.headers_mut()
                        .insert("retry-after", "1".parse().unwrap());
                }
                let _ = headers;
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Url::parse(&format!("http://{addr}/api/v1/x")).unwrap()
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
    let script = Arc::new(Script::default());
    *script.answers.lock().unwrap() = vec![503, 502, 500];
    let url = serve(script.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let resp = t
        .send(&Request::new(Method::GET, url.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(script.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_post_is_never_blindly_resent_after_a_5xx() {
    let script = Arc::new(Script::default());
    *script.answers.lock().unwrap() = vec![503];
    let url = serve(script.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::POST, url.clone()).json(serde_json::json!({"a": 1})))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(script.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_post_is_resent_after_429_because_it_was_not_processed_and_retry_after_is_honoured() {
    let script = Arc::new(Script::default());
    *script.answers.lock().unwrap() = vec![429];
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
    assert_eq!(script.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_carry_the_vendor_message() {
    let script = Arc::new(Script::default());
    *script.answers.lock().unwrap() = vec![400];
    let url = serve(script.clone()).await;
    let t = Transport::new("test", &url, fast(), &Endpoints::default()).unwrap();
    let err = t
        .send(&Request::new(Method::PATCH, url.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("scripted 400"));
    assert_eq!(script.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn one_rate_limit_is_shared_by_every_client_of_an_endpoint() {
    let script = Arc::new(Script::default());
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
