//! Template listings shared by every organization that copies the same template through the
//! same connection. A fleet of N organizations made from one template reads it once per
//! interval, not N times: each listing is kept for `ttl`, and concurrent reconciles that miss
//! wait for one read instead of each sending their own. Each listing has a fingerprint, so
//! a re-read tells whether the template changed ([`TemplateCache::refresh`]), which is what
//! lets the operator re-sync every copy at once.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::vendors::{CopyFields, KindSpec, VendorClient, VendorError};

/// One template kind as one connection sees it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    scope: String,
    template_org: String,
    kind: &'static str,
}

#[derive(Clone)]
struct Listing {
    read_at: Instant,
    objects: Arc<Vec<Value>>,
    fingerprint: u64,
    /// A reconcile's own read saw a change that no [`TemplateCache::refresh`] reported yet:
    /// the next refresh reports it, so the other organizations are not left waiting.
    unreported: bool,
}

type Slot = Arc<tokio::sync::Mutex<Option<Listing>>>;

/// Listings of template objects by connection scope, template organization and kind.
pub struct TemplateCache {
    ttl: Duration,
    slots: Mutex<HashMap<Key, Slot>>,
}

impl std::fmt::Debug for TemplateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("TemplateCache")
            .field("ttl", &self.ttl)
            .field("listings", &n)
            .finish()
    }
}

/// Where an organization's template listings come from: the shared cache, under the scope
/// of its connection (two connections may see one template differently).
#[derive(Clone, Debug)]
pub struct TemplateSource {
    /// The cache.
    pub cache: Arc<TemplateCache>,
    /// The connection, e.g. `VendorConnection tenants/rossum`.
    pub scope: String,
}

impl TemplateCache {
    /// A cache whose listings are read again after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: Key) -> Slot {
        match self.slots.lock() {
            Ok(mut slots) => slots.entry(key).or_default().clone(),
            // A poisoned map only loses sharing: this read goes to the vendor alone.
            Err(_) => Slot::default(),
        }
    }

    /// The template's objects of `kind`: from the cache when read less than `ttl` ago, else
    /// read now (once, however many reconciles ask at the same time). Failures are not kept.
    pub async fn list(
        &self,
        scope: &str,
        vendor: &dyn VendorClient,
        template_org: &str,
        kind: &'static KindSpec,
    ) -> Result<Arc<Vec<Value>>, VendorError> {
        let slot = self.slot(Key {
            scope: scope.to_string(),
            template_org: template_org.to_string(),
            kind: kind.name,
        });
        let mut listing = slot.lock().await;
        if let Some(l) = listing.as_ref()
            && l.read_at.elapsed() < self.ttl
        {
            return Ok(l.objects.clone());
        }
        let objects = Arc::new(vendor.list_objects(template_org, kind).await?);
        let print = fingerprint(vendor, kind, &objects);
        let unreported = listing
            .as_ref()
            .is_some_and(|l| l.unreported || l.fingerprint != print);
        *listing = Some(Listing {
            read_at: Instant::now(),
            fingerprint: print,
            objects: objects.clone(),
            unreported,
        });
        Ok(objects)
    }

    /// Reads every kind of `template_org` this cache holds for `scope` again, now, and says
    /// whether any of them changed since the last refresh (including changes a reconcile's own
    /// read saw in between). Kinds no reconcile asked for are not read: their organizations
    /// list them on their own schedule. A kind that cannot be read does not stop the others;
    /// the first error is returned only when no change was seen.
    pub async fn refresh(
        &self,
        scope: &str,
        vendor: &dyn VendorClient,
        template_org: &str,
    ) -> Result<bool, VendorError> {
        let held: Vec<(&'static str, Slot)> = match self.slots.lock() {
            Ok(slots) => slots
                .iter()
                .filter(|(k, _)| k.scope == scope && k.template_org == template_org)
                .map(|(k, s)| (k.kind, s.clone()))
                .collect(),
            Err(_) => return Ok(false),
        };
        let kinds = vendor.capabilities().kinds;
        let mut changed = false;
        let mut first_error = None;
        for (name, slot) in held {
            let Some(kind) = kinds.iter().find(|k| k.name == name) else {
                continue;
            };
            let mut listing = slot.lock().await;
            let objects = match vendor.list_objects(template_org, kind).await {
                Ok(o) => Arc::new(o),
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let print = fingerprint(vendor, kind, &objects);
            changed |= listing
                .as_ref()
                .is_some_and(|l| l.unreported || l.fingerprint != print);
            *listing = Some(Listing {
                read_at: Instant::now(),
                fingerprint: print,
                objects,
                unreported: false,
            });
        }
        match first_error {
            Some(e) if !changed => Err(e),
            _ => Ok(changed),
        }
    }

    /// Drops every listing of `template_org` for `scope` (no organization copies it any more).
    pub fn forget(&self, scope: &str, template_org: &str) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|k, _| !(k.scope == scope && k.template_org == template_org));
        }
    }
}

/// A fingerprint of what a listing gives its copies: only the fields that copy (a queue's
/// document counts change all day and must not look like a template change), independent of
/// the order the vendor lists in.
fn fingerprint(vendor: &dyn VendorClient, kind: &KindSpec, objects: &[Value]) -> u64 {
    let mut each: Vec<(String, u64)> = objects
        .iter()
        .map(|o| {
            let mut h = DefaultHasher::new();
            if let Value::Object(fields) = o {
                for (k, v) in fields {
                    let copies = match kind.fields {
                        CopyFields::Only(keep) => keep.contains(&k.as_str()),
                        CopyFields::AllExcept(drop) => !drop.contains(&k.as_str()),
                    };
                    if copies {
                        k.hash(&mut h);
                        v.to_string().hash(&mut h);
                    }
                }
            }
            (vendor.object_id(o).unwrap_or_default(), h.finish())
        })
        .collect();
    each.sort();
    let mut h = DefaultHasher::new();
    each.hash(&mut h);
    h.finish()
}
