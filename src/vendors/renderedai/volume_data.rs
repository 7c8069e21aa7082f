//! Volume files: the opt-in copy kind `volume_data` (design/vendors/renderedai.md §2.6
//! "Volume data", §4 step 3). One object per file, `{id: "<volumeId>:/<key>", volumeId, key,
//! size, hash}`, recognised by its natural key (copied volume, key).
//!
//! - **Listing**: `getVolumeData(volumeId, recursive: true)` per volume the organization owns,
//!   cursor = the last key, at most [`MAX_FILES`] files per organization (more is an error,
//!   not a silent cut). Directory entries (no size) are not files.
//! - **Where a copy's bytes come from**: the target volume's marker tag
//!   (`orgops:<template>:volumes:<source volume>`, written when the volume was copied) names
//!   the template volume; its `getVolumeData(keys: [key])` hands out a fresh download URL. So
//!   nothing but the vendor's own objects is needed after a crash.
//! - **Transfer**: `uploadVolumeData(volumeId, key, size)` → `{uploadId, key, partSize, urls}`;
//!   the source is streamed from its download URL and each `partSize` bytes `PUT` to the next
//!   part URL as they arrive (memory: one part, at most [`MAX_PART_BYTES`]); each part's
//!   `ETag` is collected; the whole is checked against the listed size and hash (MD5 hex, what
//!   anatools compares); then `uploadVolumeDataFinalizer(uploadId, key, parts)`. A mismatch
//!   finalizes nothing (the server drops unfinished uploads).
//! - **Idempotence**: a file already in the target volume with the same size and hash is not
//!   uploaded again (the plan finds it in sync; a create or update looks once more before
//!   uploading). A finalizer whose answer was lost is recognised by listing the file: with the
//!   expected size and hash it is done; otherwise the outcome stays unknown and the engine
//!   observes again. Uploading a key again replaces the file, so nothing is ever duplicated.
//! - **URL policy** ([`transfer_url`]): download and part URLs come from the server, so a
//!   hostile server could aim them at internal addresses. Only `http`/`https` without user
//!   info; plain `http` only to the API's own host; no loopback, private, link-local, shared,
//!   unspecified, multicast, benchmarking or reserved IP literal (nor an IPv6 one that embeds
//!   IPv4: NAT64, 6to4, IPv4-compatible) and no `localhost`/`.internal`/`.local`/`.svc` name
//!   elsewhere. Transfers carry no credential (a bare client, [`Transport::raw_client`]), follow
//!   no redirect, respect the write fence, and are bounded ([`MAX_FILE_BYTES`]).
//!
//! [`Transport::raw_client`]: crate::vendors::http::Transport::raw_client

use std::net::IpAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::client::RenderedAiApi;
use super::models::{Op, PAGE_LIMIT, clip};
use crate::vendors::VendorError;
use crate::vendors::http::{HttpError, MAX_PAGES};

/// Most files listed per organization.
pub const MAX_FILES: usize = 10_000;
/// Most entries (files and directories) listed per volume: directory entries do not count as
/// files, so without this a server answering endless pages of directories would never stop.
pub const MAX_ENTRIES: usize = 2 * MAX_FILES;
/// Largest file copied.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest part size accepted from the server (a part is held in memory).
pub const MAX_PART_BYTES: u64 = 64 << 20;
/// Most parts accepted for one upload.
pub const MAX_PARTS: usize = 10_000;
/// Longest `ETag` accepted from a part upload.
const MAX_ETAG: usize = 200;
/// Attempts of one part `PUT` (a part may be sent again: it replaces itself).
const PART_ATTEMPTS: u32 = 3;

/// `getVolumeData` (anatools 6.1.2 `api/volumes.py`), selecting what the copy compares.
pub const GET_VOLUME_DATA: Op = Op {
    name: "getVolumeData",
    query: "query getVolumeData($volumeId: String!, $keys: [String], $dir: String, $recursive: Boolean, $limit: Int, $cursor: String, $filters: VolumeDataFilter) { getVolumeData(volumeId: $volumeId, keys: $keys, dir: $dir, recursive: $recursive, limit: $limit, cursor: $cursor, filters: $filters) { key size hash url } }",
};
/// `uploadVolumeData`.
pub const UPLOAD_VOLUME_DATA: Op = Op {
    name: "uploadVolumeData",
    query: "mutation uploadVolumeData($volumeId: String!, $key: String!, $size: Float!) { uploadVolumeData(volumeId: $volumeId, key: $key, size: $size) { uploadId key partSize urls } }",
};
/// `uploadVolumeDataFinalizer`.
pub const UPLOAD_VOLUME_DATA_FINALIZER: Op = Op {
    name: "uploadVolumeDataFinalizer",
    query: "mutation uploadVolumeDataFinalizer($uploadId: String!, $key: String!, $parts: [MultipartInput!]) { uploadVolumeDataFinalizer(uploadId: $uploadId, key: $key, parts: $parts) }",
};
/// `deleteVolumeData`.
pub const DELETE_VOLUME_DATA: Op = Op {
    name: "deleteVolumeData",
    query: "mutation deleteVolumeData($volumeId: String!, $keys: [String]!) { deleteVolumeData(volumeId: $volumeId, keys: $keys) }",
};
/// One volume's owner and tags (where a copy's marker names its source).
pub const GET_VOLUME: Op = Op {
    name: "getVolumes",
    query: "query getVolumes($volumeId: String, $limit: Int) { getVolumes(volumeId: $volumeId, limit: $limit) { volumeId organizationId tags } }",
};

/// A file as `getVolumeData` lists it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct VolumeFile {
    /// Key (path in the volume).
    #[serde(default)]
    pub key: String,
    /// Size in bytes; `None` for a directory entry.
    #[serde(default)]
    pub size: Option<f64>,
    /// Content hash (MD5 hex).
    #[serde(default)]
    pub hash: Option<String>,
    /// Download URL (presigned, expiring).
    #[serde(default)]
    pub url: Option<String>,
}

impl VolumeFile {
    /// The size as a whole number of bytes, for a file (not a directory entry).
    pub fn bytes(&self) -> Option<u64> {
        let n = self.size?;
        (n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64).then_some(n as u64)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadTicket {
    #[serde(default)]
    upload_id: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    part_size: Option<f64>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeTags {
    #[serde(default)]
    volume_id: String,
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    tags: Option<Vec<Option<String>>>,
}

/// The object id of file `key` in `volume`.
pub fn file_id(volume: &str, key: &str) -> String {
    format!("{volume}:/{key}")
}

/// `(volume, key)` of an object id made by [`file_id`].
pub fn split_file_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(":/")
        .filter(|(v, k)| !v.is_empty() && !k.is_empty())
}

/// A file in the copy shape.
pub fn file_object(volume: &str, f: &VolumeFile) -> Option<Value> {
    let size = f.bytes()?;
    if f.key.is_empty() || f.key.ends_with('/') || f.key.len() > 1024 {
        return None;
    }
    Some(json!({
        "id": file_id(volume, &f.key),
        "volumeId": volume,
        "key": f.key,
        "size": size,
        "hash": f.hash.as_deref().map(clip),
    }))
}

/// Whether an address is one a vendor's download or upload URL must never reach.
fn internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT (cloud metadata lives nearby on some clouds).
                || (a == 100 && (64..128).contains(&b))
                // 198.18.0.0/15, benchmarking (used inside some networks).
                || (a == 198 && (b & 0xfe) == 18)
                // 240.0.0.0/4, reserved.
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_ip(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let first = seg[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                // ::a.b.c.d (IPv4-compatible, deprecated) and every address under ::/96.
                || seg[..6].iter().all(|s| *s == 0)
                // 64:ff9b::/96 NAT64 and 64:ff9b:1::/48 local NAT64: they reach IPv4
                // addresses, internal ones included.
                || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || seg[..3] == [0x64, 0xff9b, 1]
                // 2002::/16 6to4: an IPv4 address in the next 32 bits.
                || first == 0x2002
        }
    }
}

/// A transfer URL the server handed out, if orgops may use it (see the module docs): `api` is
/// the GraphQL endpoint the server answered on.
pub fn transfer_url(raw: &str, api: &Url) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|_| "not a URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {} is not http or https",
            clip(url.scheme())
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL carries user info".into());
    }
    let Some(host) = url.host() else {
        return Err("the URL has no host".into());
    };
    // The API's own host (any port): the server could reach it anyway.
    if url.scheme() == api.scheme() && url.host_str() == api.host_str() {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err("plain http is accepted only to the API's own host".into());
    }
    let internal = match host {
        url::Host::Ipv4(ip) => internal_ip(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => internal_ip(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost"
                || [
                    ".localhost",
                    ".internal",
                    ".local",
                    ".localdomain",
                    ".svc",
                    ".cluster.local",
                ]
                .iter()
                .any(|s| name.ends_with(s))
                || !name.contains('.')
        }
    };
    if internal {
        return Err(format!(
            "host {} is an internal address",
            clip(url.host_str().unwrap_or_default())
        ));
    }
    Ok(url)
}

/// What a URL is called in messages: its host only (a presigned URL's path and query may hold
/// a signature).
fn where_(url: &Url) -> String {
    clip(url.host_str().unwrap_or("?"))
}

fn transfer_error(method: Method, url: &Url, cause: impl Into<String>) -> VendorError {
    VendorError::Http(HttpError::Transport {
        method,
        path: where_(url),
        cause: clip(&cause.into()),
    })
}

fn transfer_status(method: Method, url: &Url, status: reqwest::StatusCode) -> VendorError {
    VendorError::Http(HttpError::Status {
        method,
        path: where_(url),
        status: status.as_u16(),
        detail: "the storage URL refused the transfer".into(),
    })
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest's Display names the URL (with its query, a signature); the kind is enough.
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_redirect() || e.status().is_some_and(|s| s.is_redirection()) {
        "redirected (not followed)".into()
    } else if e.is_body() || e.is_decode() {
        "the body was cut short".into()
    } else {
        "the transfer failed".into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `hash` looks like an MD5 hex digest (else it is not checked against the bytes).
fn md5_shaped(hash: &str) -> bool {
    hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

impl RenderedAiApi {
    /// Every file of `volume` (directories excluded), at most `room` of them.
    pub async fn volume_files(
        &self,
        volume: &str,
        room: usize,
    ) -> Result<Vec<VolumeFile>, VendorError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = 0usize;
        for _ in 0..MAX_PAGES {
            let v = self
                .query(
                    &GET_VOLUME_DATA,
                    json!({
                        "volumeId": volume, "keys": [], "dir": "", "recursive": true,
                        "limit": PAGE_LIMIT, "cursor": cursor, "filters": {},
                    }),
                )
                .await?;
            let items = match v {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                _ => {
                    return Err(VendorError::Rejected(
                        "getVolumeData answered something other than a list".into(),
                    ));
                }
            };
            let full = items.len() >= PAGE_LIMIT;
            // Every entry counts, directories and rows of the wrong shape too.
            seen = seen.saturating_add(items.len());
            if seen > MAX_ENTRIES {
                return Err(VendorError::Rejected(format!(
                    "volume {} lists more than {MAX_ENTRIES} entries; copying its data stops there",
                    clip(volume)
                )));
            }
            let page: Vec<VolumeFile> = items
                .into_iter()
                .filter_map(|i| serde_json::from_value(i).ok())
                .collect();
            let last = page.last().map(|f| f.key.clone());
            // Directory entries (a key ending in `/`, size 0 or none) are not files.
            out.extend(
                page.into_iter()
                    .filter(|f| f.bytes().is_some() && !f.key.ends_with('/')),
            );
            if out.len() > room {
                return Err(VendorError::Rejected(format!(
                    "more than {MAX_FILES} volume files in the organization; copying volume data stops there"
                )));
            }
            if !full {
                return Ok(out);
            }
            // Keys come in order: a cursor that does not move on is a loop.
            match last {
                Some(k) if cursor.as_deref().is_none_or(|c| k.as_str() > c) => cursor = Some(k),
                _ => {
                    return Err(VendorError::Rejected(
                        "getVolumeData pages do not advance".into(),
                    ));
                }
            }
        }
        Err(VendorError::Rejected(format!(
            "volume {} lists more than {MAX_PAGES} pages; copying its data stops there",
            clip(volume)
        )))
    }

    /// File `key` of `volume`, as listed now (with a fresh download URL).
    pub async fn volume_file(
        &self,
        volume: &str,
        key: &str,
    ) -> Result<Option<VolumeFile>, VendorError> {
        let v = self
            .query(
                &GET_VOLUME_DATA,
                json!({
                    "volumeId": volume, "keys": [key], "dir": "", "recursive": true,
                    "limit": PAGE_LIMIT, "cursor": null, "filters": {},
                }),
            )
            .await?;
        Ok(match v {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|i| serde_json::from_value::<VolumeFile>(i).ok())
                .find(|f| f.key == key && !f.key.ends_with('/') && f.bytes().is_some()),
            _ => None,
        })
    }

    /// The volume's organization and tags.
    async fn volume_tags(&self, volume: &str) -> Result<Option<VolumeTags>, VendorError> {
        let v = self
            .query(&GET_VOLUME, json!({ "volumeId": volume, "limit": 1 }))
            .await?;
        Ok(match v {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|i| serde_json::from_value::<VolumeTags>(i).ok())
                .find(|t| t.volume_id == volume),
            _ => None,
        })
    }

    /// Deletes files (a key ending in `/` deletes a directory).
    pub async fn delete_volume_data(&self, volume: &str, keys: &[&str]) -> Result<(), VendorError> {
        let v = self
            .mutate(
                &DELETE_VOLUME_DATA,
                json!({ "volumeId": volume, "keys": keys }),
            )
            .await?;
        match v {
            Value::Bool(false) | Value::Null => Err(VendorError::Rejected(
                "deleteVolumeData answered false: nothing was deleted".into(),
            )),
            _ => Ok(()),
        }
    }

    /// PUTs one part, again after a transport failure or a 5xx (a part replaces itself).
    async fn put_part(&self, url: &Url, part: bytes::Bytes) -> Result<String, VendorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.transport()
                .check_write(&format!("PUT {}", where_(url)))?;
            let sent = self
                .transport()
                .raw_client()
                .put(url.clone())
                .body(part.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(resp) if resp.status().is_success() => {
                    let etag = resp
                        .headers()
                        .get(reqwest::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                        .filter(|e| !e.is_empty() && e.len() <= MAX_ETAG);
                    return etag.ok_or_else(|| {
                        VendorError::Rejected(format!(
                            "the part upload to {} answered without a usable ETag",
                            where_(url)
                        ))
                    });
                }
                Ok(resp) if resp.status().is_server_error() => {
                    transfer_status(Method::PUT, url, resp.status())
                }
                Ok(resp) => return Err(transfer_status(Method::PUT, url, resp.status())),
                Err(e) => transfer_error(Method::PUT, url, describe(&e)),
            };
            if attempt >= PART_ATTEMPTS {
                return Err(failure);
            }
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
    }

    /// Copies `source` (a file listed with its download URL) to `key` in `volume`: upload
    /// opened, source streamed part by part, checked, finalized.
    async fn transfer(
        &self,
        source: &VolumeFile,
        volume: &str,
        key: &str,
    ) -> Result<(), VendorError> {
        let api = self.endpoint().clone();
        let size = source
            .bytes()
            .ok_or_else(|| VendorError::Rejected(format!("template file {key} has no size")))?;
        if size > MAX_FILE_BYTES {
            return Err(VendorError::Rejected(format!(
                "template file {} has {size} bytes, more than the {MAX_FILE_BYTES} orgops copies",
                clip(key)
            )));
        }
        let from = source
            .url
            .as_deref()
            .ok_or_else(|| {
                VendorError::Rejected(format!("template file {} has no download URL", clip(key)))
            })
            .and_then(|u| {
                transfer_url(u, &api).map_err(|why| {
                    VendorError::Rejected(format!(
                        "refused the download URL of template file {}: {why}",
                        clip(key)
                    ))
                })
            })?;
        let ticket = self
            .mutate(
                &UPLOAD_VOLUME_DATA,
                json!({ "volumeId": volume, "key": key, "size": size as f64 }),
            )
            .await?;
        let ticket: UploadTicket = serde_json::from_value(ticket).unwrap_or_default();
        let part_size = ticket
            .part_size
            .filter(|p| p.is_finite() && *p >= 1.0 && *p <= MAX_PART_BYTES as f64)
            .map(|p| p as u64)
            .ok_or_else(|| {
                VendorError::Rejected(format!(
                    "uploadVolumeData answered no part size between 1 and {MAX_PART_BYTES} bytes"
                ))
            })?;
        let parts = usize::try_from(size.div_ceil(part_size).max(1)).unwrap_or(usize::MAX);
        if ticket.upload_id.is_empty() || ticket.urls.len() != parts || parts > MAX_PARTS {
            return Err(VendorError::Rejected(format!(
                "uploadVolumeData answered {} part URLs for {parts} parts (or no upload id)",
                ticket.urls.len()
            )));
        }
        let urls = ticket
            .urls
            .iter()
            .map(|u| transfer_url(u, &api))
            .collect::<Result<Vec<Url>, String>>()
            .map_err(|why| VendorError::Rejected(format!("refused a part upload URL: {why}")))?;
        let upload_key = ticket
            .key
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| key.to_string());

        // Stream the source into parts: one part in memory at a time.
        let mut resp = self
            .transport()
            .raw_client()
            .get(from.clone())
            .send()
            .await
            .map_err(|e| transfer_error(Method::GET, &from, describe(&e)))?;
        if !resp.status().is_success() {
            return Err(transfer_status(Method::GET, &from, resp.status()));
        }
        if resp.content_length().is_some_and(|n| n != size) {
            return Err(transfer_error(
                Method::GET,
                &from,
                "the download's length differs from the listed size",
            ));
        }
        let mut md5 = Md5::new();
        let mut total: u64 = 0;
        let mut buf = bytes::BytesMut::new();
        let mut etags: Vec<String> = Vec::with_capacity(parts);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transfer_error(Method::GET, &from, describe(&e)))?
        {
            total = total.saturating_add(chunk.len() as u64);
            if total > size {
                return Err(transfer_error(
                    Method::GET,
                    &from,
                    "the download is longer than the listed size",
                ));
            }
            md5.update(&chunk);
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let take = rest.len().min((part_size as usize) - buf.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buf.len() as u64 == part_size {
                    let n = etags.len();
                    let url = urls.get(n).ok_or_else(|| {
                        transfer_error(Method::PUT, &from, "more parts than part URLs")
                    })?;
                    etags.push(self.put_part(url, buf.split().freeze()).await?);
                }
            }
        }
        if total != size {
            return Err(transfer_error(
                Method::GET,
                &from,
                "the download is shorter than the listed size",
            ));
        }
        if !buf.is_empty() || etags.is_empty() {
            let url = urls
                .get(etags.len())
                .ok_or_else(|| transfer_error(Method::PUT, &from, "more parts than part URLs"))?;
            etags.push(self.put_part(url, buf.split().freeze()).await?);
        }
        let got = hex(&md5.finalize());
        if let Some(want) = source.hash.as_deref().filter(|h| md5_shaped(h))
            && !want.eq_ignore_ascii_case(&got)
        {
            return Err(VendorError::Rejected(format!(
                "template file {} changed while it was copied (its hash differs); copied again next time",
                clip(key)
            )));
        }
        let parts: Vec<Value> = etags
            .iter()
            .enumerate()
            .map(|(i, e)| json!({ "partNumber": i + 1, "eTag": e }))
            .collect();
        let answer = self
            .mutate(
                &UPLOAD_VOLUME_DATA_FINALIZER,
                json!({ "uploadId": ticket.upload_id, "key": upload_key, "parts": parts }),
            )
            .await;
        match answer {
            Ok(Value::Bool(false) | Value::Null) => Err(VendorError::Rejected(
                "uploadVolumeDataFinalizer answered false: the file was not stored".into(),
            )),
            Ok(_) => Ok(()),
            // Answer lost: the file is there with this content, or the outcome stays unknown.
            Err(e) if e.is_outcome_unknown() => match self.volume_file(volume, key).await {
                Ok(Some(f))
                    if f.bytes() == Some(size) && f.hash.as_deref() == Some(got.as_str()) =>
                {
                    Ok(())
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Makes file `key` of the copied volume `volume` what the template holds: finds the
    /// template volume from the copy's marker tag, and uploads the template's file unless the
    /// copy already has its size and hash. Returns the file as listed afterwards.
    ///
    /// The tag is in the tenant's hands, so it is not trusted alone (a confused deputy would
    /// copy another organization's file): the volume must carry one marker only, the volume
    /// it names must belong to the organization the marker names, and the file found there
    /// must have the `size` and `hash` of `want` (the body or patch planned from the template's
    /// own listing). Otherwise nothing is read or written and the file is refused.
    pub async fn copy_volume_file(
        &self,
        org: &str,
        volume: &str,
        key: &str,
        want: &Value,
    ) -> Result<Value, VendorError> {
        let tags = self
            .volume_tags(volume)
            .await?
            .filter(|t| t.organization_id.as_deref().is_none_or(|o| o == org))
            .ok_or_else(|| VendorError::NotFound(format!("volume {} vanished", clip(volume))))?;
        let tags: Vec<String> = tags
            .tags
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect();
        let (template, source_volume) =
            volume_marker(&tags).map_err(|why| refused(volume, key, &why))?;
        let owner = self
            .volume_tags(&source_volume)
            .await?
            .and_then(|t| t.organization_id);
        if owner.as_deref() != Some(template.as_str()) {
            return Err(refused(
                volume,
                key,
                &format!(
                    "its marker names volume {} of organization {}, which does not hold it",
                    clip(&source_volume),
                    clip(&template)
                ),
            ));
        }
        let source = self
            .volume_file(&source_volume, key)
            .await?
            .ok_or_else(|| {
                VendorError::NotFound(format!(
                    "template file {} vanished from volume {}",
                    clip(key),
                    clip(&source_volume)
                ))
            })?;
        if let Err(why) = matches_want(&source, want) {
            return Err(refused(
                volume,
                key,
                &format!(
                    "volume {} named by its marker holds {why} than the template lists",
                    clip(&source_volume)
                ),
            ));
        }
        let have = self.volume_file(volume, key).await?;
        let same = have.as_ref().is_some_and(|h| {
            h.bytes() == source.bytes() && h.hash.is_some() && h.hash == source.hash
        });
        if !same {
            self.transfer(&source, volume, key).await?;
        }
        self.volume_file(volume, key)
            .await?
            .and_then(|f| file_object(volume, &f))
            .ok_or_else(|| {
                VendorError::Http(HttpError::OutcomeUnknown {
                    method: Method::POST,
                    path: UPLOAD_VOLUME_DATA_FINALIZER.name.into(),
                    cause: format!("file {} is not listed after its upload", clip(key)),
                })
            })
    }
}

/// The (template org, template volume) of a copied volume's marker tags
/// (`orgops:<template>:volumes:<source>`): exactly one, or why not.
fn volume_marker(tags: &[String]) -> Result<(String, String), String> {
    let mut found: Vec<(String, String)> = tags
        .iter()
        .filter_map(|t| {
            let rest = t.strip_prefix("orgops:")?;
            let (template, source) = rest.split_once(":volumes:")?;
            (!template.is_empty() && !source.is_empty())
                .then(|| (template.to_string(), source.to_string()))
        })
        .collect();
    found.sort();
    found.dedup();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("it is not a copy of a template volume (no orgops marker tag)".into()),
        _ => Err("it carries more than one orgops volume marker tag".into()),
    }
}

/// Whether `file` has the `size` and `hash` that `want` (a planned body or patch) gives.
fn matches_want(file: &VolumeFile, want: &Value) -> Result<(), &'static str> {
    if let Some(size) = want.get("size").and_then(Value::as_u64)
        && file.bytes() != Some(size)
    {
        return Err("another size");
    }
    if let Some(hash) = want.get("hash").and_then(Value::as_str)
        && file.hash.as_deref().map(clip).as_deref() != Some(hash)
    {
        return Err("other content");
    }
    Ok(())
}

/// A volume file orgops will not copy, and why.
fn refused(volume: &str, key: &str, why: &str) -> VendorError {
    VendorError::Rejected(format!(
        "file {} of volume {} is not copied: {why}",
        clip(key),
        clip(volume)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_names_its_template_volume_with_one_marker_and_the_template_content() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            volume_marker(&tags(&["x", "orgops:T:volumes:v1"])),
            Ok(("T".into(), "v1".into()))
        );
        assert!(volume_marker(&tags(&["x"])).is_err());
        // A second marker the tenant added is refused, whichever comes first.
        let two = volume_marker(&tags(&["orgops:V:volumes:victim", "orgops:T:volumes:v1"]));
        assert!(two.unwrap_err().contains("more than one"));
        let file = |size: f64, hash: &str| VolumeFile {
            key: "a".into(),
            size: Some(size),
            hash: Some(hash.into()),
            url: None,
        };
        let want = json!({"size": 3, "hash": "abc"});
        assert_eq!(matches_want(&file(3.0, "abc"), &want), Ok(()));
        assert!(matches_want(&file(4.0, "abc"), &want).is_err());
        assert!(matches_want(&file(3.0, "abd"), &want).is_err());
        assert_eq!(
            matches_want(&file(4.0, "x"), &json!({"hash": null})),
            Ok(())
        );
    }

    #[test]
    fn transfer_urls_never_reach_internal_addresses() {
        let api = Url::parse("https://api.rendered.ai/graphql").unwrap();
        let ok = |u: &str| transfer_url(u, &api).is_ok();
        assert!(ok(
            "https://bucket.s3.amazonaws.com/a/b.png?X-Amz-Signature=abc"
        ));
        assert!(ok("https://api.rendered.ai:8443/files/x"));
        assert!(ok("https://198.20.0.1/x"));
        assert!(ok("https://[2600:1f18::1]/x"));
        for bad in [
            "ftp://bucket.s3.amazonaws.com/x",
            "file:///etc/passwd",
            "http://bucket.s3.amazonaws.com/x",
            "https://user:pw@bucket.s3.amazonaws.com/x",
            "https://127.0.0.1/x",
            "https://10.0.0.8/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.100.100.200/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://localhost/x",
            "https://metadata.google.internal/x",
            "https://kubernetes/x",
            "https://0.0.0.0/x",
            "https://198.18.0.1/x",
            "https://198.19.255.254/x",
            "https://240.0.0.1/x",
            "https://255.255.255.255/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[64:ff9b:1::a00:1]/x",
            "https://[2002:a9fe:a9fe::1]/x",
            "https://[::169.254.169.254]/x",
            "https://[::10.0.0.1]/x",
            "https://minio.storage.svc/x",
            "https://minio.storage.svc.cluster.local/x",
            "https://minio.storage.svc.cluster.local./x",
            "not a url",
        ] {
            assert!(!ok(bad), "{bad} accepted");
        }
        // Plain http only to the API's own host (a simulator on loopback).
        let local = Url::parse("http://127.0.0.1:4000/graphql").unwrap();
        assert!(transfer_url("http://127.0.0.1:4001/files/t", &local).is_ok());
        assert!(transfer_url("http://10.0.0.1/files/t", &local).is_err());
    }

    #[test]
    fn ids_and_objects() {
        assert_eq!(file_id("v-1", "a/b.png"), "v-1:/a/b.png");
        assert_eq!(split_file_id("v-1:/a/b.png"), Some(("v-1", "a/b.png")));
        assert_eq!(split_file_id("v-1:/"), None);
        let f = VolumeFile {
            key: "a/b".into(),
            size: Some(3.0),
            hash: Some("h".into()),
            url: Some("u".into()),
        };
        assert_eq!(
            file_object("v", &f),
            Some(json!({"id": "v:/a/b", "volumeId": "v", "key": "a/b", "size": 3, "hash": "h"}))
        );
        let dir = VolumeFile {
            key: "a/".into(),
            ..VolumeFile::default()
        };
        assert_eq!(file_object("v", &dir), None);
        let odd = VolumeFile {
            size: Some(-1.0),
            ..f.clone()
        };
        assert_eq!(file_object("v", &odd), None);
    }
}
