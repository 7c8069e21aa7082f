//! Template fan-out. Every Organization made from one template shares one read of it per
//! interval ([`TemplateCache`]); this task re-reads each template in use once per interval and,
//! when what copies from it changed, re-syncs every Organization that copies it at once,
//! instead of each waiting for its own `syncInterval`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::context::Context;
use crate::api::Organization;
use crate::engine::copy::{TemplateCache, TemplateSource};
use crate::vendors::VendorClient;

/// An Organization that copies a template, until it stops saying so.
struct User {
    org: ObjectRef<Organization>,
    /// Registered again by every reconcile; gone when not renewed in time (deleted, or its
    /// template changed).
    expires: Instant,
}

/// The Organizations copying one template through one connection.
struct Users {
    client: Arc<dyn VendorClient>,
    by_uid: HashMap<String, User>,
}

type Triggers = Vec<(
    Option<String>,
    mpsc::UnboundedSender<ObjectRef<Organization>>,
)>;

/// Shared template listings, who uses them, and the channels that wake Organizations.
pub struct TemplateFanOut {
    /// The listings every reconcile reads through.
    pub cache: Arc<TemplateCache>,
    interval: Duration,
    users: Mutex<HashMap<(String, String), Users>>,
    triggers: Mutex<Triggers>,
}

impl TemplateFanOut {
    /// Templates are read at most once per `interval` (a zero interval turns sharing off).
    pub fn new(interval: Duration) -> Self {
        Self {
            // Kept a little longer than a round, so the fan-out's own read is the only one.
            cache: Arc::new(TemplateCache::new(interval + interval / 2)),
            interval,
            users: Mutex::new(HashMap::new()),
            triggers: Mutex::new(Vec::new()),
        }
    }

    /// Where the reconcile of an Organization on connection `scope` reads its template, or
    /// `None` when sharing is off.
    pub fn source(&self, scope: &str) -> Option<TemplateSource> {
        (!self.interval.is_zero()).then(|| TemplateSource {
            cache: self.cache.clone(),
            scope: scope.to_string(),
        })
    }

    /// Records that `org` copies `template_org` through connection `scope` and re-checks
    /// its drift every `sync_interval`.
    pub fn register(
        &self,
        scope: &str,
        template_org: &str,
        client: Arc<dyn VendorClient>,
        org: &Organization,
        sync_interval: Duration,
    ) {
        let Some(uid) = org.uid() else { return };
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        // Another template (or connection) before: no longer a user of that one.
        for ((s, t), u) in users.iter_mut() {
            if (s.as_str(), t.as_str()) != (scope, template_org) {
                u.by_uid.remove(&uid);
            }
        }
        let entry = users
            .entry((scope.to_string(), template_org.to_string()))
            .or_insert_with(|| Users {
                client: client.clone(),
                by_uid: HashMap::new(),
            });
        entry.client = client;
        entry.by_uid.insert(
            uid,
            User {
                org: ObjectRef::from_obj(org),
                // Two missed syncs, and a little more than one fan-out round.
                expires: Instant::now() + 2 * sync_interval + 2 * self.interval,
            },
        );
    }

    /// Forgets `org` (deleted).
    pub fn unregister(&self, org: &Organization) {
        let Some(uid) = org.uid() else { return };
        if let Ok(mut users) = self.users.lock() {
            for u in users.values_mut() {
                u.by_uid.remove(&uid);
            }
        }
    }

    /// The Organizations of namespace `scope` (`None`: every namespace) to reconcile because
    /// their template changed, for one Organization controller.
    pub fn triggers(
        &self,
        scope: Option<String>,
    ) -> impl futures::Stream<Item = ObjectRef<Organization>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut t) = self.triggers.lock() {
            t.push((scope, tx));
        }
        rx
    }

    /// Templates in use, without the ones no Organization renewed (their listings dropped).
    fn in_use(&self) -> Vec<(String, String, Arc<dyn VendorClient>)> {
        let now = Instant::now();
        let Ok(mut users) = self.users.lock() else {
            return Vec::new();
        };
        for u in users.values_mut() {
            u.by_uid.retain(|_, user| user.expires > now);
        }
        let unused: Vec<(String, String)> = users
            .iter()
            .filter(|(_, u)| u.by_uid.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for (scope, template) in unused {
            users.remove(&(scope.clone(), template.clone()));
            self.cache.forget(&scope, &template);
        }
        users
            .iter()
            .map(|((s, t), u)| (s.clone(), t.clone(), u.client.clone()))
            .collect()
    }

    /// Wakes every Organization that copies `template_org` through `scope`; returns how many.
    fn fan_out(&self, ctx: &Context, scope: &str, template_org: &str) -> usize {
        let orgs: Vec<(String, ObjectRef<Organization>)> = match self.users.lock() {
            Ok(users) => users
                .get(&(scope.to_string(), template_org.to_string()))
                .map(|u| {
                    u.by_uid
                        .iter()
                        .map(|(uid, user)| (uid.clone(), user.org.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => return 0,
        };
        let Ok(mut triggers) = self.triggers.lock() else {
            return 0;
        };
        triggers.retain(|(_, tx)| !tx.is_closed());
        for (uid, org) in &orgs {
            // Not an echo of our own status write: the skip check must let it through.
            ctx.remember(uid, None);
            for (ns, tx) in triggers.iter() {
                if ns.is_none() || ns.as_deref() == org.namespace.as_deref() {
                    let _ = tx.unbounded_send(org.clone());
                }
            }
        }
        orgs.len()
    }

    /// Re-reads every template in use once per interval and fans out its changes, until the
    /// task is aborted (when the controllers stop).
    pub async fn run(self: Arc<Self>, ctx: Arc<Context>) {
        if self.interval.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.round(&ctx).await;
        }
    }

    /// One round: every template in use read once; changes fanned out.
    async fn round(&self, ctx: &Context) {
        for (scope, template, client) in self.in_use() {
            match self.cache.refresh(&scope, client.as_ref(), &template).await {
                Ok(false) => {}
                Ok(true) => {
                    let n = self.fan_out(ctx, &scope, &template);
                    ctx.metrics.template_changes.inc();
                    tracing::info!(%template, organizations = n, "template changed; re-syncing every organization made from it");
                }
                Err(e) => {
                    tracing::debug!(%template, error = %e, "template not re-read; its organizations re-sync on their own schedule");
                }
            }
        }
    }
}
