//! Volume files (design doc `vendors/renderedai.md` §2.6 "Volume data"): `getVolumeData`
//! listing them with presigned-style download URLs, the multipart upload
//! (`uploadVolumeData` → one `PUT /upload/<uploadId>/<part>` per part, each answered with an
//! `ETag` → `uploadVolumeDataFinalizer`), and `deleteVolumeData`.
//!
//! - **Hash**: a file's `hash` is the MD5 hex digest of its whole content, which is what
//!   anatools 6.1.2 compares it with (`helpers.generate_etag`, and `download_volume_data`'s
//!   sync), whatever the part size. A part's `ETag` is the quoted MD5 hex of that part, as S3
//!   answers it.
//! - **URLs**: a download URL is `<base>/files/<token>`, the token signed (HMAC-SHA256 under a
//!   per-simulator random key) over the volume, the key and an expiry ([`URL_LIFETIME`]); it
//!   grants that one file only, and carries no credential of the caller. An upload URL is
//!   `<base>/upload/<uploadId>/<part>`, the upload id random and unguessable, valid until the
//!   upload is finalized or [`UPLOAD_LIFETIME`] passes.
//! - **Bounds**: files of at most [`MAX_FILE_BYTES`], at most [`MAX_PENDING_UPLOADS`] uploads
//!   in progress and [`MAX_PENDING_BYTES`] of parts held, at most [`MAX_STORED_BYTES`] of
//!   files in all; keys of at most [`MAX_KEY`] bytes, relative, without `..` or control
//!   characters.
//!
//! Files are the store kind [`VOLUME_DATA`] (id `<volumeId>/<key>`, value `{volumeId, key,
//! size, hash, updatedAt}`, owned by the volume's organization), their bytes kept beside it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use super::{
    Answer, Caller, GqlError, State, VOLUMES, err, list, now_iso, page_limit, required, s,
};

/// Files in volumes.
pub const VOLUME_DATA: &str = "volume_data";
/// Largest file the simulator stores.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Default part size of an upload (small, so that tests see several parts).
pub const DEFAULT_PART_SIZE: u64 = 64 << 10;
/// Uploads in progress at once.
pub const MAX_PENDING_UPLOADS: usize = 32;
/// Bytes of parts held for uploads in progress.
pub const MAX_PENDING_BYTES: usize = 16 << 20;
/// Bytes of files stored in all.
pub const MAX_STORED_BYTES: usize = 64 << 20;
/// Longest key.
pub const MAX_KEY: usize = 1024;
/// How long a download URL is valid.
pub const URL_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long an upload may stay unfinished.
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(3600);
/// Path prefix of download URLs.
pub const FILES_PATH: &str = "/files/";
/// Path prefix of upload part URLs.
pub const UPLOAD_PATH: &str = "/upload/";

/// The MD5 hex digest of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One upload in progress.
#[derive(Debug)]
struct Upload {
    volume_id: String,
    key: String,
    size: u64,
    part_size: u64,
    parts: BTreeMap<u32, Bytes>,
    started: Instant,
}

impl Upload {
    fn part_count(&self) -> u32 {
        u32::try_from(self.size.div_ceil(self.part_size).max(1)).unwrap_or(u32::MAX)
    }
}

/// What a part `PUT` or a download `GET` answers, in HTTP terms.
#[derive(Debug, PartialEq, Eq)]
pub enum FileAnswer {
    /// 200 with the bytes (a download) or an empty body (a part), and an `ETag`.
    Ok {
        /// The body.
        body: Bytes,
        /// The `ETag` header value (quoted).
        etag: String,
    },
    /// An error status with an S3-like code.
    Err(u16, &'static str),
}

/// Volume files beside the store: their bytes, the uploads in progress, the URL signing key.
#[derive(Debug)]
pub struct VolumeFiles {
    /// `http://127.0.0.1:P`: where URLs point.
    pub base_url: String,
    /// Part size of new uploads.
    pub part_size: u64,
    /// `uploadVolumeData` calls accepted (tests: nothing uploaded twice).
    pub uploads_started: u64,
    /// Downloads served.
    pub downloads: u64,
    blobs: HashMap<String, Bytes>,
    uploads: HashMap<String, Upload>,
    sign_key: aws_lc_rs::hmac::Key,
}

impl VolumeFiles {
    /// Empty, with a signing key drawn from `rng`.
    pub(super) fn new(rng: &mut fastrand::Rng) -> Self {
        let secret: Vec<u8> = (0..32).map(|_| rng.u8(..)).collect();
        Self {
            base_url: "http://127.0.0.1".into(),
            part_size: DEFAULT_PART_SIZE,
            uploads_started: 0,
            downloads: 0,
            blobs: HashMap::new(),
            uploads: HashMap::new(),
            sign_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        }
    }

    fn stored_bytes(&self) -> usize {
        self.blobs.values().map(Bytes::len).sum()
    }

    fn pending_bytes(&self) -> usize {
        self.uploads
            .values()
            .flat_map(|u| u.parts.values())
            .map(Bytes::len)
            .sum()
    }

    fn sign(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&self.sign_key, payload.as_bytes()))
    }

    /// The download URL of `key` in `volume`, valid for [`URL_LIFETIME`] from now.
    fn download_url(&self, volume: &str, key: &str) -> String {
        let expires = jiff::Timestamp::now().as_second() + URL_LIFETIME.as_secs() as i64;
        let payload = format!("{volume}\n{key}\n{expires}");
        format!(
            "{}{FILES_PATH}{}.{}",
            self.base_url,
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            self.sign(&payload)
        )
    }

    /// `(volume, key)` of a valid, unexpired download token.
    fn open_token(&self, token: &str) -> Option<(String, String)> {
        let (payload, sig) = token.split_once('.')?;
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        aws_lc_rs::hmac::verify(&self.sign_key, payload.as_bytes(), &sig).ok()?;
        let mut it = payload.splitn(3, '\n');
        let (volume, key, expires) = (it.next()?, it.next()?, it.next()?);
        if expires.parse::<i64>().ok()? < jiff::Timestamp::now().as_second() {
            return None;
        }
        Some((volume.to_string(), key.to_string()))
    }

    fn purge_expired(&mut self) {
        self.uploads
            .retain(|_, u| u.started.elapsed() < UPLOAD_LIFETIME);
    }
}

fn file_id(volume: &str, key: &str) -> String {
    format!("{volume}/{key}")
}

/// Why `key` is not a usable file key, if it is not.
fn bad_key(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Some("The key must have 1 to 1024 characters.");
    }
    if key.starts_with('/') || key.ends_with('/') || key.chars().any(char::is_control) {
        return Some("The key must be a relative file path.");
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some("The key must be a relative file path.");
    }
    None
}

impl State {
    /// The volume's organization, when the caller is a member of it.
    fn volume_org(&self, c: &Caller, volume: &str) -> Result<String, GqlError> {
        let org = self
            .store
            .get(VOLUMES, volume)
            .map(|r| r.org.clone())
            .ok_or_else(|| err("Volume not found."))?;
        self.need_org(c, &org, false)
            .map_err(|_| err("Volume not found."))?;
        Ok(org)
    }

    /// Stores `bytes` as `key` in `volume` without counting a write (seeding, or a change made
    /// by hand in a test). Returns the hash.
    pub fn put_volume_file(
        &mut self,
        volume: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        if let Some(why) = bad_key(key) {
            return Err(why.into());
        }
        let org = self
            .store
            .get(VOLUMES, volume)
            .map(|r| r.org.clone())
            .ok_or_else(|| format!("no volume {volume}"))?;
        let id = file_id(volume, key);
        let hash = md5_hex(bytes);
        let value = json!({
            "volumeId": volume, "key": key, "size": bytes.len(), "hash": hash, "updatedAt": now_iso(),
        });
        if self.store.contains(VOLUME_DATA, &id) {
            self.store
                .update_uncounted(VOLUME_DATA, &id, |v| *v = value)
                .map_err(|e| e.to_string())?;
        } else {
            self.store
                .create_uncounted(VOLUME_DATA, Some(id.clone()), &org, value)
                .map_err(|e| e.to_string())?;
        }
        self.files.blobs.insert(id, Bytes::copy_from_slice(bytes));
        Ok(hash)
    }

    /// The bytes of `key` in `volume` (tests).
    pub fn volume_file(&self, volume: &str, key: &str) -> Option<Bytes> {
        let id = file_id(volume, key);
        self.store.get(VOLUME_DATA, &id)?;
        self.files.blobs.get(&id).cloned()
    }

    /// Drops the files of a deleted volume (the platform deletes its storage with it).
    pub(super) fn drop_volume_files(&mut self, volume: &str) {
        let prefix = format!("{volume}/");
        self.store
            .delete_where_uncounted(VOLUME_DATA, |id, _| id.starts_with(&prefix));
        self.files.blobs.retain(|id, _| !id.starts_with(&prefix));
    }

    /// `getVolumeData`: the files under `dir` (all below it when `recursive`, else its direct
    /// files and one `<name>/` entry of size 0 per subdirectory), keys relative to `dir`,
    /// narrowed to `keys` when given; paged by key.
    pub(super) fn get_volume_data(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let volume = required(args, "volumeId")?;
        self.volume_org(c, &volume)?;
        let mut dir = s(args, "dir").unwrap_or_default();
        if !dir.is_empty() && !dir.ends_with('/') {
            dir.push('/');
        }
        let recursive = args.get("recursive").and_then(Value::as_bool) == Some(true);
        let keys: BTreeSet<String> = list(args, "keys").unwrap_or_default().into_iter().collect();
        let name = args
            .get("filters")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let mut entries: BTreeMap<String, Value> = BTreeMap::new();
        for (_, r) in self.store.list(VOLUME_DATA) {
            let Some(key) = r.value["key"].as_str() else {
                continue;
            };
            if r.value["volumeId"] != volume.as_str() {
                continue;
            }
            let Some(rel) = key.strip_prefix(dir.as_str()) else {
                continue;
            };
            // anatools sends the keys it wants whole, or relative to `dir`.
            if !keys.is_empty() && !keys.contains(key) && !keys.contains(rel) {
                continue;
            }
            if name
                .as_ref()
                .is_some_and(|n| !rel.to_lowercase().contains(n))
            {
                continue;
            }
            match rel.split_once('/') {
                Some((sub, _)) if !recursive => {
                    let sub = format!("{sub}/");
                    entries.entry(sub.clone()).or_insert_with(|| {
                        // Size 0, as anatools expects of a directory: its download and sync
                        // skip entries whose size is 0 (and would fail on a null one).
                        json!({"key": sub, "size": 0, "hash": null, "url": null, "updatedAt": null})
                    });
                }
                _ => {
                    let mut v = r.value.clone();
                    v["key"] = json!(rel);
                    v["url"] = json!(self.files.download_url(&volume, key));
                    if let Some(o) = v.as_object_mut() {
                        o.remove("volumeId");
                    }
                    entries.insert(rel.to_string(), v);
                }
            }
        }
        let cursor = s(args, "cursor");
        let page: Vec<Value> = entries
            .into_iter()
            .filter(|(k, _)| cursor.as_deref().is_none_or(|c| k.as_str() > c))
            .take(page_limit(args))
            .map(|(_, v)| v)
            .collect();
        Ok(Value::Array(page))
    }

    /// `uploadVolumeData`: starts a multipart upload of `size` bytes as `key`.
    pub(super) fn upload_volume_data(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let volume = required(args, "volumeId")?;
        self.volume_org(c, &volume)?;
        let key = required(args, "key")?;
        if let Some(why) = bad_key(&key) {
            return Err(err(why));
        }
        let size = args
            .get("size")
            .and_then(Value::as_f64)
            .filter(|n| n.fract() == 0.0 && *n >= 0.0)
            .ok_or_else(|| err("The size must be a whole number of bytes."))?;
        if size > MAX_FILE_BYTES as f64 {
            return Err(err(format!(
                "The file is larger than {MAX_FILE_BYTES} bytes, the largest this server stores."
            )));
        }
        self.files.purge_expired();
        if self.files.uploads.len() >= MAX_PENDING_UPLOADS {
            return Err(err("Too many uploads in progress; finish or wait for one."));
        }
        let upload_id = self.random_chars(32, b"0123456789abcdef");
        let upload = Upload {
            volume_id: volume,
            key: key.clone(),
            size: size as u64,
            part_size: self.files.part_size.max(1),
            parts: BTreeMap::new(),
            started: Instant::now(),
        };
        let urls: Vec<String> = (1..=upload.part_count())
            .map(|n| format!("{}{UPLOAD_PATH}{upload_id}/{n}", self.files.base_url))
            .collect();
        let part_size = upload.part_size;
        self.files.uploads.insert(upload_id.clone(), upload);
        self.files.uploads_started += 1;
        Ok(json!({"uploadId": upload_id, "key": key, "partSize": part_size, "urls": urls}))
    }

    /// `PUT /upload/<uploadId>/<part>`: one part of an upload.
    pub fn put_part(&mut self, upload_id: &str, part: &str, body: Bytes) -> FileAnswer {
        self.files.purge_expired();
        let pending = self.files.pending_bytes();
        let Some(upload) = self.files.uploads.get_mut(upload_id) else {
            return FileAnswer::Err(404, "NoSuchUpload");
        };
        let Some(n) = part
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=upload.part_count()).contains(n))
        else {
            return FileAnswer::Err(400, "InvalidPart");
        };
        if body.len() as u64 > upload.part_size {
            return FileAnswer::Err(400, "EntityTooLarge");
        }
        let replaced = upload.parts.get(&n).map_or(0, Bytes::len);
        if pending - replaced + body.len() > MAX_PENDING_BYTES {
            return FileAnswer::Err(503, "SlowDown");
        }
        let etag = format!("\"{}\"", md5_hex(&body));
        upload.parts.insert(n, body);
        FileAnswer::Ok {
            body: Bytes::new(),
            etag,
        }
    }

    /// `GET /files/<token>`: a file, when the token is valid.
    pub fn download(&mut self, token: &str) -> FileAnswer {
        let Some((volume, key)) = self.files.open_token(token) else {
            return FileAnswer::Err(403, "AccessDenied");
        };
        let id = file_id(&volume, &key);
        let (Some(rec), Some(bytes)) =
            (self.store.get(VOLUME_DATA, &id), self.files.blobs.get(&id))
        else {
            return FileAnswer::Err(404, "NoSuchKey");
        };
        let etag = format!("\"{}\"", rec.value["hash"].as_str().unwrap_or_default());
        let body = bytes.clone();
        self.files.downloads += 1;
        FileAnswer::Ok { body, etag }
    }

    /// `uploadVolumeDataFinalizer`: assembles the parts in order, checking every `eTag`, and
    /// stores the file (replacing one with the same key).
    pub(super) fn finalize_volume_data(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let upload_id = required(args, "uploadId")?;
        let key = required(args, "key")?;
        self.files.purge_expired();
        let upload = self
            .files
            .uploads
            .get(&upload_id)
            .ok_or_else(|| err("Upload not found."))?;
        if upload.key != key {
            return Err(err("The key does not match the upload."));
        }
        let volume = upload.volume_id.clone();
        let org = self.volume_org(c, &volume)?;
        let upload = &self.files.uploads[&upload_id];
        let mut named: BTreeMap<u32, String> = BTreeMap::new();
        for p in args
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = p["partNumber"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| err("Every part needs a partNumber."))?;
            let etag = p["eTag"].as_str().unwrap_or_default().trim_matches('"');
            if named.insert(n, etag.to_string()).is_some() {
                return Err(err(format!("Part {n} is listed twice.")));
            }
        }
        let want: Vec<u32> = (1..=upload.part_count()).collect();
        if named.keys().copied().collect::<Vec<_>>() != want {
            return Err(err("The parts do not cover the upload."));
        }
        let mut whole = Vec::with_capacity(usize::try_from(upload.size).unwrap_or(0));
        for (n, etag) in &named {
            let part = upload
                .parts
                .get(n)
                .ok_or_else(|| err(format!("Part {n} was not uploaded.")))?;
            if md5_hex(part) != *etag {
                return Err(err(format!("The eTag of part {n} does not match.")));
            }
            whole.extend_from_slice(part);
        }
        if whole.len() as u64 != upload.size {
            return Err(err("The uploaded size does not match the declared size."));
        }
        let id = file_id(&volume, &key);
        let replaced = self.files.blobs.get(&id).map_or(0, Bytes::len);
        if self.files.stored_bytes() - replaced + whole.len() > MAX_STORED_BYTES {
            return Err(err(
                "The Volume Storage limit has been reached by this organization",
            ));
        }
        let value = json!({
            "volumeId": volume, "key": key, "size": whole.len(), "hash": md5_hex(&whole),
            "updatedAt": now_iso(),
        });
        if self.store.contains(VOLUME_DATA, &id) {
            self.store
                .update(VOLUME_DATA, &id, |v| *v = value)
                .map_err(|_| err("The file could not be stored."))?;
        } else {
            self.store
                .create(VOLUME_DATA, Some(id.clone()), &org, value)
                .map_err(|_| err("The file could not be stored."))?;
        }
        self.files.blobs.insert(id, Bytes::from(whole));
        self.files.uploads.remove(&upload_id);
        Ok(json!(true))
    }

    /// `deleteVolumeData`: deletes the keys (a key ending in `/` deletes everything under
    /// it); keys that do not exist are no error.
    pub(super) fn delete_volume_data(&mut self, c: &Caller, args: &Map<String, Value>) -> Answer {
        let volume = required(args, "volumeId")?;
        self.volume_org(c, &volume)?;
        let keys = list(args, "keys").ok_or_else(|| err("The argument keys is required."))?;
        let prefix = format!("{volume}/");
        let doomed: Vec<String> = self
            .store
            .list(VOLUME_DATA)
            .into_iter()
            .filter_map(|(id, _)| {
                let key = id.strip_prefix(&prefix)?;
                keys.iter()
                    .any(|k| k == key || (k.ends_with('/') && key.starts_with(k.as_str())))
                    .then(|| id.to_string())
            })
            .collect();
        for id in doomed {
            self.store.delete(VOLUME_DATA, &id);
            self.files.blobs.remove(&id);
        }
        Ok(json!(true))
    }
}
