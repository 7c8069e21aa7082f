//! The CLI's durable memory of create intents. In the cluster the intent is an annotation on
//! the resource; without a cluster it is this file, written (atomically) before the vendor is
//! asked to create anything, so a killed `orgops apply` does not create a second organization.
//! One `orgops apply` at a time per state file: concurrent runs may overwrite each other's
//! entries (use `--state-file` to separate them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::engine::PendingCreate;

/// Create intents by organization key (`vendor endpoint namespace/name`).
#[derive(Debug)]
pub struct StateFile {
    path: Option<PathBuf>,
    pending: Mutex<BTreeMap<String, PendingCreate>>,
}

impl StateFile {
    /// No file: intents live as long as the process (used with `--simulate`).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// The intents stored at `path` (none when the file does not exist yet).
    pub fn open(path: &Path) -> Result<Self, String> {
        let pending = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: not an orgops state file: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            pending: Mutex::new(pending),
        })
    }

    /// The default location: `$XDG_STATE_HOME/orgops/apply-state.json`, else
    /// `~/.local/state/orgops/apply-state.json`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
        Some(base.join("orgops").join("apply-state.json"))
    }

    /// The intent recorded for `key`.
    pub fn pending(&self, key: &str) -> Option<PendingCreate> {
        self.pending.lock().ok()?.get(key).cloned()
    }

    /// Records (or clears) the intent for `key` and writes the file before returning.
    pub fn set_pending(&self, key: &str, pending: Option<&PendingCreate>) -> Result<(), String> {
        let snapshot = {
            let mut map = self
                .pending
                .lock()
                .map_err(|_| "state lock poisoned".to_string())?;
            match pending {
                Some(p) => map.insert(key.to_string(), p.clone()),
                None => map.remove(key),
            };
            map.clone()
        };
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&snapshot).map_err(|e| e.to_string())?;
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
}
