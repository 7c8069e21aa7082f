//! Adding and removing one finalizer with JSON patches that fail rather than overwrite: adding
//! is conditional on the resourceVersion read, removing on the finalizer still being at the
//! index read, so other controllers' finalizers are never lost.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::Error;

/// Adds `finalizer` to `obj` (a 409/422 if it changed since it was read).
pub async fn add<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = match &obj.meta().finalizers {
        Some(f) if !f.is_empty() => json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": obj.resource_version()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
        ]),
        _ => json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": obj.resource_version()},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
        ]),
    };
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| Error::Setup(e.to_string()))?;
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await?;
    Ok(())
}

/// Removes `finalizer` from `obj`; an object already gone counts as done.
pub async fn remove<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(i) = obj.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let patch = json!([
        {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
        {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
    ]);
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| Error::Setup(e.to_string()))?;
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
