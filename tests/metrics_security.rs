//! Authenticated metrics over HTTPS, as `metrics.secure` in the chart runs them: a real
//! `orgops run --metrics-auth=true` serving certificate files made with the `openssl` CLI.
//! Scrapers are checked with a TokenReview and a SubjectAccessReview against the test API
//! server, and a rotated certificate is served on the next connection without a restart.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use support::cluster::{Cluster, stderr};
use support::operator::start_https;

/// A self-signed serving certificate for 127.0.0.1, made by `openssl req`: `(cert, key)` PEM
/// files `<name>.crt`, `<name>.key` in `dir`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let config = dir.join(format!("{name}.cnf"));
    std::fs::write(
        &config,
        format!(
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
             [dn]\nCN = orgops-metrics-{name}\n\
             [ext]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1\n"
        ),
    )
    .unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .arg("-config")
        .arg(&config)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): install the openssl CLI (.ci/run does)")
        });
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

/// An HTTPS client that trusts only `cert`, opens a new connection for every request and
/// records the certificate the server presented.
fn trusting(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The certificate the server presented for `response`.
fn presented(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("a TLS peer certificate")
        .to_vec()
}

/// Requests the operator made to the API server at `route` (`POST group/plural`).
fn served(c: &Cluster, route: &str) -> u64 {
    let server = c.server.as_ref().unwrap();
    server.requests().get(route).copied().unwrap_or(0)
}

const TOKEN_REVIEWS: &str = "POST authentication.k8s.io/tokenreviews";
const ACCESS_REVIEWS: &str = "POST authorization.k8s.io/subjectaccessreviews";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authorized_scrapers_read_metrics_over_https_with_a_rotating_certificate() {
    let c = Cluster::start().await;
    let Some(server) = &c.server else {
        eprintln!("skipped on a real cluster: it registers ServiceAccount tokens in the server");
        return;
    };
    c.install_crds().await;
    let ns = c.namespace("metrics").await;
    let dir = tempfile::tempdir().unwrap();
    let (first_cert, first_key) = self_signed(dir.path(), "first");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&first_cert, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();

    // The operator reviews tokens with the admin's rights (the chart grants its ServiceAccount
    // create on both reviews; tests/helm.rs runs it that way).
    let client = trusting(&cert);
    let op = start_https(
        &c,
        &[&ns],
        &ns,
        "metrics-0",
        &[
            "--metrics-auth=true",
            "--metrics-tls-cert-file",
            cert.to_str().unwrap(),
            "--metrics-tls-key-file",
            key.to_str().unwrap(),
        ],
        &client,
    )
    .await;
    let base = op.metrics.trim_end_matches("/metrics").to_string();
    let port = base.rsplit(':').next().unwrap();

    // Plain HTTP gets nothing.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // Probes need no token; the certificate is the one in the files.
    for path in ["/healthz", "/readyz"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(presented(&r), der(&first_cert), "{path}");
    }

    // No token, or one the API server does not know: 401, asking for a bearer token.
    let anonymous = client.get(&op.metrics).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let reviews_before = served(&c, TOKEN_REVIEWS);
    let garbage = client
        .get(&op.metrics)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    assert_eq!(served(&c, TOKEN_REVIEWS), reviews_before + 1);

    // A ServiceAccount without the grant: 403.
    server.add_service_account_token("denied-token", &ns, "denied");
    let denied = client
        .get(&op.metrics)
        .bearer_auth("denied-token")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert!(served(&c, ACCESS_REVIEWS) >= 1);

    // A ServiceAccount bound to a role with get on /metrics (another one: decisions are cached
    // for a minute per token): 200 with the operator's metrics.
    server.add_service_account_token("scraper-token", &ns, "scraper");
    let rbac = dir.path().join("reader.yaml");
    std::fs::write(
        &rbac,
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: reader-{ns}}}\n\
             rules: [{{nonResourceURLs: [/metrics], verbs: [get]}}]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: reader-{ns}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader-{ns}}}\n\
             subjects: [{{kind: ServiceAccount, name: scraper, namespace: {ns}}}]\n"
        ),
    )
    .unwrap();
    let out = c.kubectl(&["apply", "-f", rbac.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let scrape = client
        .get(&op.metrics)
        .bearer_auth("scraper-token")
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("orgops_leader ")),
        "{text}"
    );
    // The decision is cached: scraping again asks the API server nothing.
    let (token_reviews, access_reviews) = (served(&c, TOKEN_REVIEWS), served(&c, ACCESS_REVIEWS));
    let again = client
        .get(&op.metrics)
        .bearer_auth("scraper-token")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        (served(&c, TOKEN_REVIEWS), served(&c, ACCESS_REVIEWS)),
        (token_reviews, access_reviews)
    );

    // Rotation: new files (renamed into place, as a Secret volume update does); the next full
    // handshake presents the new certificate, and a client trusting only the old one fails.
    let (second_cert, second_key) = self_signed(dir.path(), "second");
    assert_ne!(der(&second_cert), der(&first_cert));
    std::fs::rename(&second_key, &key).unwrap();
    std::fs::rename(&second_cert, &cert).unwrap();
    let rotated = trusting(&cert);
    let r = rotated.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(presented(&r), der(&cert));
    // A fresh client, so that it cannot resume a TLS session made before the rotation.
    let stale = trusting(&first_cert)
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(
        stale.is_err(),
        "a client trusting only the old certificate connected: {stale:?}"
    );
    let scrape = rotated
        .get(&op.metrics)
        .bearer_auth("scraper-token")
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
}
