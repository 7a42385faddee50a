//! The disk tier (G7): stored objects written to files under
//! `[cache] disk_dir`, so that objects pushed out of memory are still
//! served, and everything on disk is served after a restart.
//!
//! One file per object: a header (magic, the primary key, the selecting
//! request values, the freshness facts and the stored response head as
//! HTTP/1 text) and then the body. A complete object is written through
//! the ring into a temporary file, synced and renamed into place, so a
//! crash leaves whole objects or none ([`write`]). At start each shard
//! reads the headers and takes the objects whose key it owns ([`scan`]).
//! A body is read back in pieces through the ring ([`DiskReader`]), never
//! whole.

use super::object::Object;
use super::policy::Freshness;
use crate::http::response::ResponseHead;
use crate::proxy::own::BodySource;
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

const MAGIC: &[u8; 8] = b"SHOALC1\n";
/// Largest header read back (a head is at most 64 KiB of edits over what
/// came in; keys and vary data are bounded too).
const MAX_HEADER: usize = 1 << 20;
/// Bytes read from disk at a time for a client.
const READ_PIECE: usize = 256 * 1024;

/// Where an object's copy on disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRef {
    pub path: PathBuf,
    /// Where the body starts in the file, and its length.
    pub body_offset: u64,
    pub len: u64,
}

impl DiskRef {
    /// Bytes the file takes.
    pub fn size(&self) -> u64 {
        self.body_offset + self.len
    }
}

/// The file name of an object: its key's hash and its variant's.
pub fn file_name(key: &[u8], obj: &Object) -> String {
    let h = ahash::RandomState::with_seeds(11, 12, 13, 14);
    let variant = h.hash_one((&obj.rule_key, &obj.vary));
    format!("{:016x}-{:016x}.obj", h.hash_one(key), variant)
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The file's header for `obj` under `key`.
pub fn encode_header(key: &[u8], obj: &Object) -> Vec<u8> {
    encode_parts(key, &obj.head, &obj.fresh, &obj.vary, &obj.rule_key)
}

/// The file's header for an object of these parts under `key`.
pub fn encode_parts(
    key: &[u8],
    head: &ResponseHead,
    fresh: &Freshness,
    vary: &[(String, Option<Vec<u8>>)],
    rule_key: &Option<Vec<u8>>,
) -> Vec<u8> {
    let mut h = Vec::new();
    put(&mut h, key);
    match rule_key {
        Some(k) => {
            h.push(1);
            put(&mut h, k);
        }
        None => h.push(0),
    }
    h.extend_from_slice(&(vary.len() as u32).to_le_bytes());
    for (name, value) in vary {
        put(&mut h, name.as_bytes());
        match value {
            Some(v) => {
                h.push(1);
                put(&mut h, v);
            }
            None => h.push(0),
        }
    }
    let f = fresh;
    for n in [f.response_time, f.initial_age, f.lifetime, f.stale_while_revalidate, f.stale_if_error] {
        h.extend_from_slice(&n.to_le_bytes());
    }
    h.push(u8::from(f.no_stale) | u8::from(f.always_revalidate) << 1);
    let mut text = format!("HTTP/1.1 {} ", head.status).into_bytes();
    text.extend_from_slice(head.reason());
    text.extend_from_slice(b"\r\n");
    head.fields.write_h1(&mut text, |_| false);
    text.extend_from_slice(b"\r\n");
    put(&mut h, &text);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&h);
    out
}

/// What a header holds: the key, and the object's parts but its body.
pub struct Header {
    pub key: Vec<u8>,
    pub head: ResponseHead,
    pub fresh: Freshness,
    pub vary: Vec<(String, Option<Vec<u8>>)>,
    pub rule_key: Option<Vec<u8>>,
    pub body_offset: u64,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn opt(&mut self) -> Option<Option<&'a [u8]>> {
        match self.take(1)?[0] {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
}

/// Read a header from the start of a file's bytes; `None` when it is not
/// one (another file, or a damaged one).
pub fn decode_header(b: &[u8]) -> Option<Header> {
    let mut c = Cursor(b);
    if c.take(8)? != MAGIC {
        return None;
    }
    let len = c.u32()? as usize;
    let mut c = Cursor(c.take(len)?);
    let key = c.bytes()?.to_vec();
    let rule_key = c.opt()?.map(<[u8]>::to_vec);
    let n = c.u32()? as usize;
    let mut vary = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let name = String::from_utf8(c.bytes()?.to_vec()).ok()?;
        vary.push((name, c.opt()?.map(<[u8]>::to_vec)));
    }
    let (response_time, initial_age, lifetime, swr, sie) = (c.u64()?, c.u64()?, c.u64()?, c.u64()?, c.u64()?);
    let flags = c.take(1)?[0];
    let fresh = Freshness {
        response_time,
        initial_age,
        lifetime,
        no_stale: flags & 1 != 0,
        always_revalidate: flags & 2 != 0,
        stale_while_revalidate: swr,
        stale_if_error: sie,
    };
    let text = c.bytes()?;
    let mut head = ResponseHead::default();
    crate::http::response::parse(text, text.len(), true, &mut head).ok()??;
    Some(Header { key, head, fresh, vary, rule_key, body_offset: (12 + len) as u64 })
}

/// Write complete object `obj` of `key` into `dir` (temporary file, sync,
/// rename), through the ring. Returns where it went.
pub async fn write(dir: &Path, key: &[u8], obj: &Object, tmp: &str) -> io::Result<DiskRef> {
    let header = encode_header(key, obj);
    let body_offset = header.len() as u64;
    let tmp_path = dir.join(tmp);
    let file = monoio::fs::File::create(&tmp_path).await?;
    let result = async {
        let (r, _) = file.write_all_at(header, 0).await;
        r?;
        let mut at = body_offset;
        let mut reader = obj.body.memory_reader(0, None);
        while let Some(piece) = std::future::poll_fn(|cx| reader.poll_chunk(cx)).await {
            let piece = piece?;
            let n = piece.len() as u64;
            let (r, _) = file.write_all_at(piece, at).await;
            r?;
            at += n;
        }
        file.sync_data().await?;
        Ok::<u64, io::Error>(at - body_offset)
    }
    .await;
    let _ = file.close().await;
    let len = match result {
        Ok(len) => len,
        Err(e) => {
            let _ = monoio::fs::remove_file(&tmp_path).await;
            return Err(e);
        }
    };
    let path = dir.join(file_name(key, obj));
    monoio::fs::rename(&tmp_path, &path).await?;
    Ok(DiskRef { path, body_offset, len })
}

/// Finish an object written straight to disk: sync its file (through
/// the ring) and rename it from `tmp` to its name in `dir`.
pub async fn finish(dir: &Path, key: &[u8], obj: &Object, file: &std::fs::File, tmp: &Path) -> io::Result<PathBuf> {
    let f = monoio::fs::File::from_std(file.try_clone()?)?;
    f.sync_data().await?;
    let _ = f.close().await;
    let path = dir.join(file_name(key, obj));
    monoio::fs::rename(tmp, &path).await?;
    Ok(path)
}

/// A new temporary file in `dir` for an object written straight to disk,
/// with `header` at its start. Blocking (a create and a small write).
pub fn create_direct(dir: &Path, tmp: &str, header: &[u8]) -> io::Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::FileExt;
    let path = dir.join(tmp);
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    file.write_all_at(header, 0)?;
    Ok((file, path))
}

/// The objects in `dir` whose keys `mine` accepts, with their files.
/// Files that are not objects are left alone; damaged ones and leftover
/// temporary files are removed. Blocking: for a shard's start.
pub fn scan(dir: &Path, mine: impl Fn(&[u8]) -> bool) -> Vec<(Header, DiskRef)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            // A write that never finished (the process stopped).
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".obj") {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let mut buf = vec![0u8; (meta.len() as usize).min(MAX_HEADER)];
        // The file holds at least `buf.len()` bytes: its length, capped.
        let read = std::fs::File::open(&path).and_then(|mut f| {
            use std::io::Read;
            f.read_exact(&mut buf)
        });
        if read.is_err() {
            continue;
        }
        match decode_header(&buf) {
            Some(h) if h.body_offset <= meta.len() => {
                if mine(&h.key) {
                    let len = meta.len() - h.body_offset;
                    let body_offset = h.body_offset;
                    out.push((h, DiskRef { path, body_offset, len }));
                }
            }
            _ => {
                log::warn!("cache: {} is not a cache object; removed", path.display());
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    out
}

type Read = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>)>>>;

/// Reads bytes `pos..end` of a body on disk, a piece at a time, through
/// the ring (shard-local: each reader opens the file on its own shard).
pub struct DiskReader {
    disk: DiskRef,
    file: Option<Rc<monoio::fs::File>>,
    pos: u64,
    end: u64,
    pending: Option<Read>,
    /// Bytes read from disk, for the statistics.
    counted: Option<std::sync::Arc<AtomicU64>>,
}

impl DiskReader {
    pub fn new(disk: DiskRef, start: u64, end: Option<u64>, counted: Option<std::sync::Arc<AtomicU64>>) -> DiskReader {
        let end = end.unwrap_or(disk.len).min(disk.len);
        DiskReader { disk, file: None, pos: start, end, pending: None, counted }
    }
}

impl BodySource for DiskReader {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.pending.is_none() {
            if self.pos >= self.end {
                return Poll::Ready(None);
            }
            if self.file.is_none() {
                let f = std::fs::File::open(&self.disk.path).and_then(monoio::fs::File::from_std);
                match f {
                    Ok(f) => self.file = Some(Rc::new(f)),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            let file = self.file.clone().expect("opened above");
            let want = ((self.end - self.pos) as usize).min(READ_PIECE);
            let at = self.disk.body_offset + self.pos;
            self.pending = Some(Box::pin(async move { file.read_at(Vec::with_capacity(want), at).await }));
        }
        let fut = self.pending.as_mut().expect("set above");
        let (res, mut buf) = match fut.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        self.pending = None;
        match res {
            Ok(0) => Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the cached file is short")))),
            Ok(n) => {
                buf.truncate(n);
                self.pos += n as u64;
                if let Some(c) = &self.counted {
                    c.fetch_add(n as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(Bytes::from(buf))))
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::object::Body;
    use std::sync::Arc;

    #[test]
    fn header_round_trip() {
        let mut head = ResponseHead::default();
        head.new_status(200);
        head.fields.add("Content-Type", b"video/mp4").unwrap();
        head.fields.add("ETag", b"\"x\"").unwrap();
        let fresh = Freshness {
            response_time: 1_700_000_000,
            initial_age: 3,
            lifetime: 600,
            no_stale: true,
            always_revalidate: false,
            stale_while_revalidate: 30,
            stale_if_error: 60,
        };
        let obj = Object {
            head,
            fresh,
            vary: vec![("accept-language".into(), Some(b"en".to_vec())), ("cookie".into(), None)],
            rule_key: Some(b"internal".to_vec()),
            body: Body::complete(Bytes::from_static(b"body"), Arc::new(AtomicU64::new(0))),
            to_disk: false,
        };
        let mut file = encode_header(b"site /a?b", &obj);
        let offset = file.len() as u64;
        file.extend_from_slice(b"body");
        let h = decode_header(&file).unwrap();
        assert_eq!((h.key.as_slice(), h.body_offset), (&b"site /a?b"[..], offset));
        assert_eq!((h.fresh, h.vary, h.rule_key), (obj.fresh, obj.vary.clone(), obj.rule_key.clone()));
        assert_eq!((h.head.status, h.head.fields.get("content-type")), (200, Some(&b"video/mp4"[..])));
        assert_eq!(h.head.fields.get("etag"), Some(&b"\"x\""[..]));
        for cut in [0, 5, 8, 12, file.len() - 5] {
            assert!(decode_header(&file[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode_header(b"GIF89a....").is_none());
    }
}
