//! Content negotiation of response bodies, as the apiserver does it from `Accept`: the object
//! itself, a `Table` (kubectl), or `PartialObjectMetadata[List]` (metadata-only clients such as
//! kube-runtime's `metadata_watcher`).

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::table;

/// What the client asked to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object (or list) itself.
    Object,
    /// `meta.k8s.io/<version> Table`.
    Table(&'static str),
    /// `meta.k8s.io/<version> PartialObjectMetadata`.
    Metadata(&'static str),
    /// `meta.k8s.io/<version> PartialObjectMetadataList`.
    MetadataList(&'static str),
}

impl Output {
    /// The first media type in `Accept` this server can produce, in the client's order
    /// (kubectl sends `application/json;as=Table;v=v1;g=meta.k8s.io,application/json`).
    /// Anything it cannot produce (protobuf, unknown `as=`) is skipped; with nothing left, the
    /// object itself.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let accept = headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        accept
            .split(',')
            .find_map(Self::parse_one)
            .unwrap_or(Self::Object)
    }

    fn parse_one(media: &str) -> Option<Self> {
        let mut parts = media.split(';').map(str::trim);
        let essence = parts.next()?.to_ascii_lowercase();
        if !matches!(
            essence.as_str(),
            "application/json" | "application/*" | "*/*"
        ) {
            return None;
        }
        let (mut as_, mut group, mut version) = (None, None, None);
        for p in parts {
            match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("as", v)) => as_ = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                _ => {}
            }
        }
        let Some(as_) = as_ else {
            return Some(Self::Object);
        };
        if group != Some("meta.k8s.io") {
            return None;
        }
        let version = match version {
            Some("v1") => "v1",
            Some("v1beta1") => "v1beta1",
            _ => return None,
        };
        match as_ {
            "Table" => Some(Self::Table(version)),
            "PartialObjectMetadata" => Some(Self::Metadata(version)),
            "PartialObjectMetadataList" => Some(Self::MetadataList(version)),
            _ => None,
        }
    }

    /// The `as=` of this form (`""` for the object itself).
    pub fn as_kind(self) -> &'static str {
        match self {
            Self::Object => "",
            Self::Table(_) => "Table",
            Self::Metadata(_) => "PartialObjectMetadata",
            Self::MetadataList(_) => "PartialObjectMetadataList",
        }
    }

    /// Renders one object (a GET, a write's answer, a watch event's object). `Status` objects
    /// pass unchanged.
    pub fn one(self, rt: &ResourceType, object: Value) -> Result<Value, ApiError> {
        if object.get("kind").and_then(Value::as_str) == Some("Status") {
            return Ok(object);
        }
        match self {
            Self::Object => Ok(object),
            Self::Table(version) => {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let mut t = table::table(rt, std::slice::from_ref(&object), &rv);
                t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
                Ok(t)
            }
            Self::Metadata(version) => Ok(partial(&object, version)),
            Self::MetadataList(_) => Err(not_acceptable(
                "you requested PartialObjectMetadataList, but the requested object is not a list (*unstructured.Unstructured)",
            )),
        }
    }

    /// Renders a list whose `metadata` (resourceVersion, continue, …) is `meta`.
    pub fn list(self, rt: &ResourceType, items: &[Value], meta: Value) -> Result<Value, ApiError> {
        match self {
            Self::Object => Ok(json!({
                "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                "metadata": meta, "items": items,
            })),
            Self::Table(version) => {
                let mut t = table::table(rt, items, "");
                t["metadata"] = meta;
                t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
                Ok(t)
            }
            Self::MetadataList(version) => {
                let items: Vec<Value> = items.iter().map(|o| partial(o, version)).collect();
                Ok(json!({
                    "kind": "PartialObjectMetadataList", "apiVersion": format!("meta.k8s.io/{version}"),
                    "metadata": meta, "items": items,
                }))
            }
            Self::Metadata(_) => Err(not_acceptable(
                "you requested PartialObjectMetadata, but the requested object is a list (*unstructured.UnstructuredList)",
            )),
        }
    }

    /// Checks a watch can be served in this form (its events carry single objects).
    pub fn check_watch(self) -> Result<Self, ApiError> {
        match self {
            Self::MetadataList(_) => Err(not_acceptable(
                "you requested PartialObjectMetadataList, but the requested object is not a list (*unstructured.Unstructured)",
            )),
            other => Ok(other),
        }
    }
}

/// `PartialObjectMetadata`: the object's metadata only (no `spec`, `data`, `status`).
fn partial(object: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn not_acceptable(message: &str) -> ApiError {
    ApiError {
        code: 406,
        reason: "NotAcceptable",
        message: message.into(),
        details: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(a: &str) -> Output {
        let mut h = HeaderMap::new();
        h.insert("accept", a.parse().unwrap());
        Output::negotiate(&h)
    }

    #[test]
    fn the_first_producible_media_type_wins() {
        assert_eq!(Output::negotiate(&HeaderMap::new()), Output::Object);
        assert_eq!(accept("application/json"), Output::Object);
        assert_eq!(
            accept(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Output::Table("v1")
        );
        assert_eq!(
            accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Output::MetadataList("v1")
        );
        assert_eq!(
            accept("application/json; as=PartialObjectMetadata; g=meta.k8s.io; v=v1beta1"),
            Output::Metadata("v1beta1")
        );
        // Protobuf and unknown transforms are skipped in favour of what follows.
        assert_eq!(
            accept(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Foo;g=meta.k8s.io;v=v1,application/json"
            ),
            Output::Object
        );
        assert_eq!(
            accept("application/json;as=Table;g=example.com;v=v1,*/*"),
            Output::Object
        );
    }

    #[test]
    fn metadata_forms_drop_everything_but_metadata_and_reject_the_wrong_shape() {
        let rt = crate::registry::builtins()
            .into_iter()
            .find(|r| r.plural == "secrets")
            .unwrap();
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "7"}, "data": {"k": "dg=="}});
        let one = Output::Metadata("v1").one(&rt, secret.clone()).unwrap();
        assert_eq!(
            one,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": "s", "resourceVersion": "7"}})
        );
        let list = Output::MetadataList("v1")
            .list(
                &rt,
                std::slice::from_ref(&secret),
                json!({"resourceVersion": "9"}),
            )
            .unwrap();
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["metadata"]["resourceVersion"], "9");
        assert_eq!(list["items"][0], one);
        let e = Output::Metadata("v1")
            .list(&rt, &[], json!({}))
            .unwrap_err();
        assert_eq!((e.code, e.reason), (406, "NotAcceptable"));
        let e = Output::MetadataList("v1").one(&rt, secret).unwrap_err();
        assert_eq!(e.code, 406);
        let status = json!({"kind": "Status", "code": 410});
        assert_eq!(
            Output::Metadata("v1").one(&rt, status.clone()).unwrap(),
            status
        );
    }
}
