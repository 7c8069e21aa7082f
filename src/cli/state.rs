//! The CLI's durable memory of create intents. In the cluster the intent is an annotation on
//! the resource and the id is `status.externalId`; without a cluster both live in this file. The
//! intent is written (atomically) before the vendor is asked to create anything, the created
//! organization's id joins it as soon as it is known, and the entry leaves only once the vendor
//! holds the ownership marker — so a killed `orgops apply`, or one whose marker PATCH failed,
//! is resumed by the next run instead of creating a second organization.
//! One `orgops apply` at a time per state file: concurrent runs may overwrite each other's
//! entries (use `--state-file` to separate them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engine::PendingCreate;

/// One organization's unfinished create: the intent, and the id once the vendor answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The intent, recorded before the create request.
    #[serde(flatten)]
    pub pending: PendingCreate,
    /// The organization the vendor created (or that was found for the intent), kept until the
    /// vendor holds the ownership marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Unfinished creates by organization key (`vendor endpoint namespace/name`).
#[derive(Debug)]
pub struct StateFile {
    path: Option<PathBuf>,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl StateFile {
    /// No file: intents live as long as the process (used with `--simulate`).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// The intents stored at `path` (none when the file does not exist yet).
    pub fn open(path: &Path) -> Result<Self, String> {
        let entries = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: not an orgops state file: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            entries: Mutex::new(entries),
        })
    }

    /// The intents stored at `path`, kept in memory only: what this process records is never
    /// written back (`orgops plan`).
    pub fn read_only(path: &Path) -> Result<Self, String> {
        let mut state = Self::open(path)?;
        state.path = None;
        Ok(state)
    }

    /// The default location: `$XDG_STATE_HOME/orgops/apply-state.json`, else
    /// `~/.local/state/orgops/apply-state.json`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
        Some(base.join("orgops").join("apply-state.json"))
    }

    /// The file, unless the intents live in memory only.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The entry recorded for `key`.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// The intent recorded for `key`.
    pub fn pending(&self, key: &str) -> Option<PendingCreate> {
        self.entry(key).map(|e| e.pending)
    }

    /// Records (or clears) the intent for `key` and writes the file before returning. Clearing
    /// an intent whose organization id is known keeps the entry: it leaves only through
    /// [`StateFile::resolve`], once the vendor holds the ownership marker.
    pub fn set_pending(&self, key: &str, pending: Option<&PendingCreate>) -> Result<(), String> {
        self.update(key, |entry| match (pending, entry.take()) {
            (Some(p), _) => {
                *entry = Some(Entry {
                    pending: p.clone(),
                    external_id: None,
                });
            }
            (None, Some(e)) if e.external_id.is_some() => *entry = Some(e),
            (None, _) => {}
        })
    }

    /// Adds the organization's id to the intent for `key` (nothing without an intent: then the
    /// id comes from the manifests or the vendor's marker) and writes the file before returning.
    pub fn set_external_id(&self, key: &str, id: &str) -> Result<(), String> {
        self.update(key, |entry| {
            if let Some(e) = entry {
                e.external_id = Some(id.to_string());
            }
        })
    }

    /// Forgets `key`: the vendor holds the ownership marker, which finds the organization from
    /// now on.
    pub fn resolve(&self, key: &str) -> Result<(), String> {
        self.update(key, |entry| *entry = None)
    }

    /// Applies `change` to the entry for `key`; writes the file when it changed.
    fn update(&self, key: &str, change: impl FnOnce(&mut Option<Entry>)) -> Result<(), String> {
        let snapshot = {
            let mut map = self
                .entries
                .lock()
                .map_err(|_| "state lock poisoned".to_string())?;
            let before = map.get(key).cloned();
            let mut entry = before.clone();
            change(&mut entry);
            if entry == before {
                return Ok(());
            }
            match entry {
                Some(e) => map.insert(key.to_string(), e),
                None => map.remove(key),
            };
            map.clone()
        };
        self.write(&snapshot)
    }

    fn write(&self, snapshot: &BTreeMap<String, Entry>) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(snapshot).map_err(|e| e.to_string())?;
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        {
            use std::io::Write;
            let mut f =
                std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            f.write_all(text.as_bytes())
                .map_err(|e| format!("{}: {e}", tmp.display()))?;
            f.sync_all()
                .map_err(|e| format!("{}: {e}", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_survive_a_restart_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s/state.json");
        let p = PendingCreate {
            name: "DE".into(),
            started_at: jiff::Timestamp::from_second(5).unwrap(),
        };
        StateFile::open(&path)
            .unwrap()
            .set_pending("k", Some(&p))
            .unwrap();
        let again = StateFile::open(&path).unwrap();
        assert_eq!(again.pending("k"), Some(p));
        again.set_pending("k", None).unwrap();
        assert_eq!(StateFile::open(&path).unwrap().pending("k"), None);
        std::fs::write(&path, "garbage").unwrap();
        assert!(StateFile::open(&path).unwrap_err().contains("state.json"));
    }

    #[test]
    fn a_created_id_stays_on_disk_until_the_marker_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let p = PendingCreate {
            name: "DE".into(),
            started_at: jiff::Timestamp::from_second(5).unwrap(),
        };
        let state = StateFile::open(&path).unwrap();
        // An id without an intent is not recorded: the marker or the spec finds that org.
        state.set_external_id("k", "7").unwrap();
        assert!(!path.exists());
        state.set_pending("k", Some(&p)).unwrap();
        state.set_external_id("k", "7").unwrap();
        // The engine clears the intent once the id is known; the entry must survive a restart.
        state.set_pending("k", None).unwrap();
        let again = StateFile::open(&path).unwrap();
        assert_eq!(
            again.entry("k"),
            Some(Entry {
                pending: p.clone(),
                external_id: Some("7".into())
            })
        );
        again.resolve("k").unwrap();
        assert_eq!(StateFile::open(&path).unwrap().entry("k"), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), "{}");
    }

    #[test]
    fn files_written_before_ids_were_kept_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"k": {"name": "DE", "startedAt": "1970-01-01T00:00:05Z"}}"#,
        )
        .unwrap();
        let entry = StateFile::open(&path).unwrap().entry("k").unwrap();
        assert_eq!(entry.pending.name, "DE");
        assert_eq!(entry.external_id, None);
    }
}
