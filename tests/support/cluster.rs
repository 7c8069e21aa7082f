//! A Kubernetes API for end-to-end tests: the in-repo test API server, or the real cluster in
//! `ORGOPS_E2E_KUBECONFIG`. Every test works in its own namespace, so it can run on a shared
//! cluster and run again.

use std::path::{Path, PathBuf};
use std::process::Output;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use secrecy::SecretString;
use test_apiserver::TestApiServer;

/// An API server plus a kube-rs client and a kubeconfig file for kubectl.
pub struct Cluster {
    /// A kube-rs client.
    pub client: Client,
    /// A kubeconfig file.
    pub kubeconfig: PathBuf,
    /// The in-repo server, when not running against a real cluster.
    pub server: Option<TestApiServer>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the test API server (or connects to `ORGOPS_E2E_KUBECONFIG`).
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (server, kubeconfig) = match std::env::var_os("ORGOPS_E2E_KUBECONFIG") {
            Some(path) => (None, PathBuf::from(path)),
            None => {
                let server = TestApiServer::start().await.unwrap();
                let path = dir.path().join("kubeconfig");
                server.write_kubeconfig(&path).unwrap();
                (Some(server), path)
            }
        };
        let config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig).unwrap(),
            &KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = Client::try_from(config).unwrap();
        Self {
            client,
            kubeconfig,
            server,
            _dir: dir,
        }
    }

    /// A kube-rs client for this cluster that authenticates with bearer `token` instead of the
    /// kubeconfig's credentials.
    pub async fn client_with_token(&self, token: &str) -> Client {
        let mut config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&self.kubeconfig).unwrap(),
            &KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        config.auth_info = AuthInfo {
            token: Some(SecretString::from(token)),
            ..AuthInfo::default()
        };
        Client::try_from(config).unwrap()
    }

    /// True against the in-repo server (some checks need to reach inside it).
    pub fn is_test_server(&self) -> bool {
        self.server.is_some()
    }

    /// Creates a fresh namespace and returns its name.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{:06x}", fastrand::u32(..0xFF_FFFF));
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        name
    }

    /// Applies the orgops CRDs from `crds/` with kubectl and waits until they are established.
    pub async fn install_crds(&self) {
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        let out = self.kubectl(&["apply", "-f", crds.to_str().unwrap()]).await;
        assert!(
            out.status.success(),
            "kubectl apply crds: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self
            .kubectl(&[
                "wait",
                "--for=condition=Established",
                "crd/organizations.orgops.io",
                "crd/orgmemberships.orgops.io",
                "--timeout=60s",
            ])
            .await;
        assert!(
            out.status.success(),
            "CRDs not established: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs kubectl with this cluster's kubeconfig.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(kubectl_path())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self._dir.path())
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run kubectl ({}): {e}; run scripts/install-kubectl",
                    kubectl_path().display()
                )
            })
    }
}

/// kubectl: `$KUBECTL`, else `target/tools/kubectl` (scripts/install-kubectl), else the PATH.
pub fn kubectl_path() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return PathBuf::from(k);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/kubectl");
    if local.exists() {
        return local;
    }
    PathBuf::from("kubectl")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
