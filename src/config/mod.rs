//! Configuration: TOML files (with includes) → serde mirror ([`raw`]) →
//! validated runtime types ([`model`]). Every error names file:line:column
//! and the key path.
//!
//! The embedded default configuration is `conf/default.toml`, compiled in so
//! `shoal run` with no file does something useful on a fresh machine.

mod autoscale;
pub(crate) mod cache;
pub(crate) mod cluster;
mod compression;
mod events;
mod http2;
pub mod model;
pub mod raw;
mod rtsp;
mod rules;
mod shaping;
mod udp;
mod validate;

pub use model::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// The file compiled in as the default configuration.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../conf/default.toml");

/// A configuration error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the error has no position (e.g. a missing file).
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `virtual_servers.demo.pool`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        f.write_str(&self.message)?;
        if let Some(k) = &self.key {
            write!(f, " (key `{k}`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One parsed file, kept so later errors can point into it.
pub(crate) struct SourceFile {
    pub name: String,
    pub text: String,
    pub raw: raw::RawConfig,
    /// The directory relative paths in this file resolve against: its
    /// own, or for a cluster's object (named `etcd:KEY`) the member's
    /// main file's.
    pub base: PathBuf,
}

impl SourceFile {
    pub(crate) fn error_at(&self, span: std::ops::Range<usize>, key: Option<String>, message: String) -> ConfigError {
        let (line, column) = line_col(&self.text, span.start);
        let key = key.or_else(|| key_path_at(&self.text, span.start));
        ConfigError { file: self.name.clone(), line, column, key, message }
    }

    /// An error at the first of virtual server `vname`'s `keys` that is
    /// present (`Some` span): it does not apply to a `protocol` virtual
    /// server. A key that cannot work is refused, never ignored.
    pub(crate) fn refuse_keys(
        &self,
        vname: &str,
        protocol: &str,
        keys: &[(&str, Option<std::ops::Range<usize>>)],
    ) -> Result<(), ConfigError> {
        match keys.iter().find(|(_, s)| s.is_some()) {
            Some((k, Some(span))) => Err(self.error_at(
                span.clone(),
                Some(format!("virtual_servers.{vname}.{k}")),
                format!("`{k}` does not apply to {protocol} virtual servers"),
            )),
            _ => Ok(()),
        }
    }
}

/// Load a configuration file and everything it includes.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_file_with(path, &Overrides::new())
}

/// New texts for some files, by canonical path, to validate before they
/// are written (REST API edits).
pub type Overrides = std::collections::HashMap<PathBuf, String>;

/// Load a configuration file as [`load_file`] does, but read the files in
/// `overrides` from there instead of from disk.
pub fn load_file_with(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let mut files = Vec::new();
    let mut seen = Vec::new();
    read_tree(path, &mut files, &mut seen, 0, overrides)?;
    let mut cfg = validate::validate(&files)?;
    cfg.source = path.display().to_string();
    cfg.files = seen;
    Ok(cfg)
}

/// One configuration object a cluster shares (docs/cluster.md): its
/// "type/name" and its TOML text, which holds that object only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedObject {
    pub id: String,
    pub text: String,
}

/// A cluster member's configuration: its own file tree (as
/// [`load_file_with`] reads it) for its settings, less the configuration
/// objects in it, plus the cluster's `shared` objects. Errors in a shared
/// object name it as `etcd:type/name`.
pub fn load_member(path: &Path, overrides: &Overrides, shared: &[SharedObject]) -> Result<Config, ConfigError> {
    let mut files = Vec::new();
    let mut seen = Vec::new();
    read_tree(path, &mut files, &mut seen, 0, overrides)?;
    for f in &mut files {
        f.raw.clear_shared_objects();
    }
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    for o in shared {
        let name = format!("etcd:{}", o.id);
        cluster::check_object_text(&name, &o.id, &o.text)?;
        let mut f = parse(&name, o.text.clone())?;
        f.base = base.clone();
        files.push(f);
    }
    let mut cfg = validate::validate(&files)?;
    cfg.source = path.display().to_string();
    cfg.files = seen;
    Ok(cfg)
}

/// Load a configuration from text (no includes allowed: there is no
/// directory to resolve them against).
pub fn load_str(text: &str, name: &str) -> Result<Config, ConfigError> {
    let file = parse(name, text.to_owned())?;
    if let Some(inc) = file.raw.include.first() {
        return Err(file.error_at(
            inc.span(),
            Some("include".into()),
            "include is only allowed in configuration files".into(),
        ));
    }
    let mut cfg = validate::validate(&[file])?;
    cfg.source = name.to_owned();
    Ok(cfg)
}

/// The embedded default configuration.
pub fn embedded_default() -> Config {
    load_str(EMBEDDED_DEFAULT, "<embedded default>").expect("the embedded default configuration is valid (tested)")
}

fn parse(name: &str, text: String) -> Result<SourceFile, ConfigError> {
    match toml::from_str::<raw::RawConfig>(&text) {
        Ok(raw) => {
            let base = Path::new(name).parent().unwrap_or(Path::new(".")).to_path_buf();
            Ok(SourceFile { name: name.to_owned(), text, raw, base })
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(&text, span.start);
            Err(ConfigError {
                file: name.to_owned(),
                line,
                column,
                key: key_path_at(&text, span.start),
                message: e.message().trim().to_owned(),
            })
        }
    }
}

const MAX_INCLUDE_DEPTH: usize = 8;

fn read_tree(
    path: &Path,
    files: &mut Vec<SourceFile>,
    seen: &mut Vec<PathBuf>,
    depth: usize,
    overrides: &Overrides,
) -> Result<(), ConfigError> {
    let name = path.display().to_string();
    let io_err = |e: std::io::Error| ConfigError {
        file: name.clone(),
        line: 0,
        column: 0,
        key: None,
        message: format!("cannot read: {e}"),
    };
    let canon = path.canonicalize().map_err(io_err)?;
    if seen.contains(&canon) {
        return Err(ConfigError {
            file: name.clone(),
            line: 0,
            column: 0,
            key: None,
            message: "included more than once (include cycle?)".into(),
        });
    }
    let text = match overrides.get(&canon) {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(path).map_err(io_err)?,
    };
    seen.push(canon);
    let file = parse(&name, text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut children = Vec::new();
    for inc in &file.raw.include {
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(file.error_at(
                inc.span(),
                Some("include".into()),
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            ));
        }
        let p = base.join(inc.get_ref());
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| {
                    file.error_at(
                        inc.span(),
                        Some("include".into()),
                        format!("cannot read directory {}: {e}", p.display()),
                    )
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            entries.sort();
            children.extend(entries);
        } else if p.exists() {
            children.push(p);
        } else {
            return Err(file.error_at(
                inc.span(),
                Some("include".into()),
                format!("included path {} does not exist", p.display()),
            ));
        }
    }
    files.push(file);
    for c in children {
        read_tree(&c, files, seen, depth + 1, overrides)?;
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Best-effort dotted key path of the key whose line holds `offset`: the
/// nearest `[table]` header above it plus the key on that line.
pub fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let mut table = None;
    for l in text[..line_start].lines().rev() {
        let t = l.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            table = t.trim_start_matches('[').split(']').next().map(|s| s.trim().to_owned());
            break;
        }
    }
    let header = line.trim();
    if header.starts_with('[') {
        return Some(header.trim_start_matches('[').split(']').next()?.trim().to_owned());
    }
    let key = line.split('=').next().map(str::trim).filter(|k| !k.is_empty() && line.contains('='));
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k.to_owned()),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = embedded_default();
        assert!(!c.virtual_servers.is_empty());
        assert!(!c.pools.is_empty());
    }

    #[test]
    fn positions() {
        let t = "a = 1\n[pools.x]\nnodes = 5\n";
        assert_eq!(line_col(t, 0), (1, 1));
        let off = t.find("5").unwrap();
        assert_eq!(line_col(t, off), (3, 9));
        assert_eq!(key_path_at(t, off).as_deref(), Some("pools.x.nodes"));
    }

    fn err(t: &str) -> ConfigError {
        load_str(t, "t.toml").unwrap_err()
    }

    const OK: &str = "[virtual_servers.v]\nlisten = \"127.0.0.1:1\"\nprotocol = \"client_first\"\npool = \"p\"\n\n[pools.p]\nnodes = [\"127.0.0.1:2\", { address = \"127.0.0.1:3\", weight = 3 }]\n";

    #[test]
    fn valid_minimal() {
        let c = load_str(OK, "t.toml").unwrap();
        assert_eq!(c.pools[0].nodes[1].weight, 3);
        assert_eq!(c.virtual_servers[0].pool, 0);
    }

    #[test]
    fn unknown_key() {
        let e = err(&OK.replace("pool = \"p\"", "pool = \"p\"\ntimeout = 3"));
        assert_eq!((e.line, e.column), (5, 1), "{e}");
        assert!(e.message.contains("unknown field `timeout`"), "{e}");
        assert_eq!(e.key.as_deref(), Some("virtual_servers.v.timeout"));
    }

    #[test]
    fn bad_value() {
        let e = err(&OK.replace("client_first", "carrier_pigeon"));
        assert_eq!((e.line, e.column), (3, 12), "{e}");
        assert!(e.message.contains("carrier_pigeon"), "{e}");
    }

    #[test]
    fn dangling_pool() {
        let e = err(&OK.replace("pool = \"p\"", "pool = \"q\""));
        assert_eq!((e.line, e.column), (4, 8), "{e}");
        assert!(e.message.contains("no pool named \"q\""), "{e}");
        assert_eq!(e.key.as_deref(), Some("virtual_servers.v.pool"));
    }

    #[test]
    fn bad_address_and_weight() {
        let e = err(&OK.replace("127.0.0.1:2\"", "127.0.0.1\""));
        assert!(e.message.contains("127.0.0.1"), "{e}");
        assert_eq!(e.line, 7);
        let e = err(&OK.replace("weight = 3", "weight = 0"));
        assert!(e.message.contains("weight"), "{e}");
    }

    #[test]
    fn api_section_is_checked() {
        let hash = crate::api::auth::hash_password("secret");
        let api = |extra: &str| format!("{OK}\n[api]\n{extra}\n");
        let c = load_str(&api(&format!("users = {{ admin = \"{hash}\" }}")), "t.toml").unwrap();
        let a = c.api.unwrap();
        assert_eq!(a.listen, "127.0.0.1:9070".parse().unwrap());
        assert_eq!(a.users, vec![("admin".to_string(), hash.clone())]);
        let e = err(&api(&format!("listen = \"0.0.0.0:9070\"\nusers = {{ admin = \"{hash}\" }}")));
        assert!(e.message.contains("not a loopback address") && e.message.contains("[api.tls]"), "{e}");
        assert_eq!(e.key.as_deref(), Some("api.listen"));
        let e = err(&api("users = { admin = \"secret\" }"));
        assert!(e.message.contains("not a password hash"), "{e}");
        assert_eq!((e.line, e.key.as_deref()), (10, Some("api.users.admin")), "{e}");
        let e = err(&api("users = {}"));
        assert!(e.message.contains("at least one user"), "{e}");
        let e = err(&api("users = {}\nport = 1"));
        assert!(e.message.contains("unknown field `port`"), "{e}");
    }
}
