//! Controller errors; `category()` is the bounded reason for metrics, events and conditions.

/// What can stop a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A vendor failure that retrying may fix (the reason is the engine's).
    #[error("{reason}: {message}")]
    Transient {
        /// CamelCase reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// The resource has no namespace (cluster-scoped use is not supported).
    #[error("the resource has no namespace")]
    NoNamespace,
    /// The CRDs are not installed.
    #[error("CRD {0} is not installed; apply crds/ (kubectl apply -f crds/) and start again")]
    MissingCrd(String),
    /// Setting up the process failed.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    /// Bounded reason for metric labels.
    pub fn category(&self) -> &str {
        match self {
            Error::Kube(_) => "KubernetesApi",
            Error::Transient { reason, .. } => reason,
            Error::NoNamespace => "NoNamespace",
            Error::MissingCrd(_) => "MissingCrd",
            Error::Setup(_) => "Setup",
        }
    }
}
