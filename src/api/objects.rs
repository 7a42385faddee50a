//! Configuration objects as the REST API sees them: listing, reading and
//! editing `[virtual_servers.NAME]`, `[pools.NAME]`, `[persistence.NAME]`,
//! `[monitors.NAME]` and `[responders.NAME]` in the configuration's TOML
//! text, in the JSON shape of Brocade vTM's API, plus the reference checks
//! that guard deletions and the node state changes of drain/disable.
//!
//! An object reads as `{"properties": {"basic": {...}, "<section>": {...}}}`:
//! its keys holding tables (`[pools.x.tls]`, or inline ones) are sections,
//! all others are in "basic". A PUT merges into that shape like vTM's API:
//! named keys are set, `null` removes a key (or, as a section's value, the
//! whole section), and everything not named is left as it was.
//!
//! Everything here works on text and returns text: edits go through
//! `toml_edit` so that operators' comments and layout survive, and nothing
//! is validated semantically — shoal's own loader checks the result before
//! it is written or applied. `write_atomic` is the one function that
//! touches the filesystem.

use serde_json::{Map, Value as Json};
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// The object types, as they are named in TOML and in the API's URLs.
pub const TYPES: &[&str] = &[
    "virtual_servers",
    "pools",
    "persistence",
    "monitors",
    "responders",
    "rules",
    "rate_classes",
    "bandwidth_classes",
    "service_levels",
    "event_handlers",
    "traffic_ip_groups",
];

/// The node states `set_node_state` accepts.
const NODE_STATES: &[&str] = &["active", "draining", "disabled"];

/// One configuration file: its path and current text. The main file first,
/// then includes in load order.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// No such type or object.
    NotFound(String),
    /// The request body is not what the API accepts; the message says
    /// precisely why.
    BadRequest(String),
    /// Deleting something still referenced; the referrers as "type/name".
    Conflict { referrers: Vec<String> },
    /// A file could not be parsed as TOML (should not happen for a running
    /// config), with its path.
    Invalid(String),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::NotFound(what) => write!(f, "not found: {what}"),
            EditError::BadRequest(why) => write!(f, "bad request: {why}"),
            EditError::Conflict { referrers } => write!(f, "still referenced by {}", referrers.join(", ")),
            EditError::Invalid(why) => write!(f, "invalid configuration: {why}"),
        }
    }
}

impl std::error::Error for EditError {}

/// The new texts of the files an edit changes (path, new full text), and
/// whether it created the object. Files whose text would not change are
/// left out, so an edit that changes nothing has no files.
#[derive(Debug)]
pub struct Edit {
    pub changed: Vec<(PathBuf, String)>,
    pub created: bool,
}

/// The names of all objects of `kind`, across all files, sorted.
pub fn list(files: &[SourceText], kind: &str) -> Result<Vec<String>, EditError> {
    check_kind(kind)?;
    let docs = parse_all(files)?;
    let names: BTreeSet<String> = docs.iter().flat_map(|doc| objects(doc, kind)).map(|(name, _)| name).collect();
    Ok(names.into_iter().collect())
}

/// One object as `{"properties": {"basic": {...}, "<section>": {...}}}`.
pub fn get(files: &[SourceText], kind: &str, name: &str) -> Result<Json, EditError> {
    check_kind(kind)?;
    let docs = parse_all(files)?;
    let object = docs.iter().find_map(|doc| object(doc, kind, name)).ok_or_else(|| not_found(kind, name))?;
    let mut properties = Map::new();
    let mut basic = Map::new();
    for (key, item) in object.iter() {
        if item.is_table_like() {
            properties.insert(key.to_owned(), item_to_json(item));
        } else {
            basic.insert(key.to_owned(), item_to_json(item));
        }
    }
    // Inserted last so that a (schema-invalid) sub-table called "basic"
    // cannot hide the object's own keys.
    properties.insert("basic".to_owned(), Json::Object(basic));
    let mut top = Map::new();
    top.insert("properties".to_owned(), Json::Object(properties));
    Ok(Json::Object(top))
}

/// Creates or partially updates an object (see the module's comment). A new
/// object goes at the end of the main file. The result is not checked
/// against shoal's schema; the loader does that.
pub fn put(files: &[SourceText], kind: &str, name: &str, body: &Json) -> Result<Edit, EditError> {
    check_kind(kind)?;
    check_name(name)?;
    let (basic, sections) = parse_body(body)?;
    let mut docs = parse_all(files)?;
    let found = docs.iter().position(|doc| object(doc, kind, name).is_some());
    let (index, created) = match found {
        Some(index) => (index, false),
        None if files.is_empty() => return Err(EditError::Invalid("there is no configuration file".into())),
        None => (0, true),
    };
    let path = &files[index].path;
    let doc = &mut docs[index];
    if created {
        create_object(doc, kind, name, path)?;
    }
    let kind_table = doc.get_mut(kind).and_then(Item::as_table_like_mut);
    let item = kind_table.and_then(|t| t.get_mut(name)).ok_or_else(|| not_found(kind, name))?;
    let mut object = TableMut::of(item).ok_or_else(|| not_found(kind, name))?;

    if let Some(basic) = basic {
        merge_section(&mut object, basic, "properties.basic")?;
    }
    for (section, value) in sections {
        let at = format!("properties.{section}");
        let existing = object.get_mut(section);
        if existing.as_ref().is_some_and(|item| !item.is_table_like()) {
            return Err(EditError::BadRequest(format!(
                "{at}: {kind}/{name} has a value \"{section}\" that is not a section; set it in \"basic\""
            )));
        }
        match (existing.and_then(TableMut::of), value) {
            (Some(_), None) => object.remove(section),
            (None, None) => {}
            (Some(mut table), Some(keys)) => {
                merge_section(&mut table, keys, &at)?;
                table.surface();
            }
            // A section whose keys are all removals is not created: an
            // empty `[pools.x.tls]` would switch TLS on.
            (None, Some(keys)) if !keys.is_empty() && keys.values().all(Json::is_null) => {}
            (None, Some(keys)) => match &mut object {
                TableMut::Std(parent) => {
                    let mut table = Table::new();
                    merge_section(&mut TableMut::Std(&mut table), keys, &at)?;
                    parent.insert(section, Item::Table(table));
                }
                TableMut::Inline(parent) => {
                    let mut table = InlineTable::new();
                    merge_section(&mut TableMut::Inline(&mut table), keys, &at)?;
                    inline_insert(parent, section, Value::InlineTable(table));
                }
            },
        }
    }
    object.surface();

    let changed = changed_files(files, &docs, &[index])?;
    Ok(Edit { changed, created })
}

/// Removes an object and its sub-tables from the file defining it, unless
/// something still refers to it.
pub fn delete(files: &[SourceText], kind: &str, name: &str) -> Result<Edit, EditError> {
    check_kind(kind)?;
    let mut docs = parse_all(files)?;
    let index = docs.iter().position(|doc| object(doc, kind, name).is_some()).ok_or_else(|| not_found(kind, name))?;
    let referrers = referrers_in(&docs, kind, name);
    if !referrers.is_empty() {
        return Err(EditError::Conflict { referrers });
    }
    remove_object(&mut docs[index], kind, name);
    let changed = changed_files(files, &docs, &[index])?;
    Ok(Edit { changed, created: false })
}

/// The objects that refer to `kind/name`, as sorted "type/name" strings.
/// Files that do not parse are skipped: this answers "who uses it", and a
/// broken file is reported by the operation that needs it.
pub fn referrers(files: &[SourceText], kind: &str, name: &str) -> Vec<String> {
    let docs: Vec<DocumentMut> = files.iter().filter_map(|f| f.text.parse().ok()).collect();
    referrers_in(&docs, kind, name)
}

/// The objects holding a string (anywhere in them) that names `file`,
/// resolved relative to the directory of the file the object is defined in.
/// Paths are compared after lexical normalisation only, so `file` should be
/// spelled the way the configuration's paths are (both absolute, or both
/// relative to the same directory).
pub fn file_referrers(files: &[SourceText], file: &Path) -> Vec<String> {
    let target = normalize(file);
    let mut found = BTreeSet::new();
    for source in files {
        let Ok(doc) = source.text.parse::<DocumentMut>() else { continue };
        let dir = source.path.parent().unwrap_or(Path::new(""));
        for kind in TYPES {
            for (name, object) in objects(&doc, kind) {
                let mut hit = false;
                for (_, item) in object.iter() {
                    visit_strings(item, &mut |s| {
                        let path = Path::new(s);
                        let resolved = if path.is_absolute() { path.to_path_buf() } else { dir.join(path) };
                        hit |= normalize(&resolved) == target;
                    });
                }
                if hit {
                    found.insert(format!("{kind}/{name}"));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Sets the state of the node `node` (its address as written) in every pool
/// that has it, or only in `pools`. Returns the edit and the pools that have
/// the node, sorted.
pub fn set_node_state(
    files: &[SourceText],
    node: &str,
    state: &str,
    pools: Option<&[String]>,
) -> Result<(Edit, Vec<String>), EditError> {
    if !NODE_STATES.contains(&state) {
        return Err(EditError::BadRequest(format!("state: expected one of {}, got {state:?}", NODE_STATES.join(", "))));
    }
    let mut docs = parse_all(files)?;
    if let Some(wanted) = pools {
        for pool in wanted {
            if !docs.iter().any(|doc| object(doc, "pools", pool).is_some()) {
                return Err(not_found("pools", pool));
            }
        }
    }
    let mut having = BTreeSet::new();
    let mut touched = Vec::new();
    for (index, doc) in docs.iter_mut().enumerate() {
        let Some(table) = doc.get_mut("pools").and_then(Item::as_table_like_mut) else { continue };
        for (key, item) in table.iter_mut() {
            let pool = key.get().to_owned();
            if pools.is_some_and(|wanted| !wanted.contains(&pool)) {
                continue;
            }
            let Some(nodes) = item.as_table_like_mut().and_then(|t| t.get_mut("nodes")) else { continue };
            if set_state_in_nodes(nodes, node, state) {
                having.insert(pool);
                touched.push(index);
            }
        }
    }
    if having.is_empty() {
        let scope = if pools.is_some() { "the given pools" } else { "any pool" };
        return Err(EditError::NotFound(format!("node {node} is not in {scope}")));
    }
    touched.dedup();
    let changed = changed_files(files, &docs, &touched)?;
    Ok((Edit { changed, created: false }, having.into_iter().collect()))
}

/// Replaces `path`'s contents so that readers see the old file or the new
/// one, never a mixture, and the new one survives a crash once this returns.
pub fn write_atomic(path: &Path, text: &[u8]) -> io::Result<()> {
    // Two writers in one process must not share a temporary file.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display())))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp.{}.{sequence}", std::process::id()));
    let temp = dir.join(temp_name);

    let result = write_then_rename(path, &temp, dir, text);
    if result.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_then_rename(path: &Path, temp: &Path, dir: &Path, text: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(text)?;
    match fs::metadata(path) {
        Ok(meta) => file.set_permissions(meta.permissions())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)?;
    // The rename is only durable once the directory entry is.
    fs::File::open(dir)?.sync_all()
}

fn check_kind(kind: &str) -> Result<(), EditError> {
    if TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(EditError::NotFound(format!("no object type {kind:?}")))
    }
}

fn check_name(name: &str) -> Result<(), EditError> {
    if name.is_empty() {
        return Err(EditError::BadRequest("the object's name is empty".into()));
    }
    match name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))) {
        Some(c) => Err(EditError::BadRequest(format!(
            "name {name:?}: {c:?} is not allowed (only letters, digits, '_', '.', ':' and '-')"
        ))),
        None => Ok(()),
    }
}

fn not_found(kind: &str, name: &str) -> EditError {
    EditError::NotFound(format!("{kind}/{name}"))
}

fn parse_all(files: &[SourceText]) -> Result<Vec<DocumentMut>, EditError> {
    files
        .iter()
        .map(|f| f.text.parse::<DocumentMut>().map_err(|e| EditError::Invalid(format!("{}: {e}", f.path.display()))))
        .collect()
}

/// The new texts of the files at `indexes` that differ from their old
/// texts. Each is parsed back, so a bug here cannot write a file that
/// shoal would not read again.
fn changed_files(
    files: &[SourceText],
    docs: &[DocumentMut],
    indexes: &[usize],
) -> Result<Vec<(PathBuf, String)>, EditError> {
    let mut changed = Vec::new();
    for &index in indexes {
        let (Some(file), Some(doc)) = (files.get(index), docs.get(index)) else { continue };
        let text = doc.to_string();
        if text == file.text {
            continue;
        }
        if let Err(e) = text.parse::<DocumentMut>() {
            return Err(EditError::Invalid(format!("{}: the edit would make invalid TOML: {e}", file.path.display())));
        }
        changed.push((file.path.clone(), text));
    }
    Ok(changed)
}

/// The objects of `kind` in one file, in file order.
fn objects<'a>(doc: &'a DocumentMut, kind: &str) -> Vec<(String, &'a dyn TableLike)> {
    let Some(table) = doc.get(kind).and_then(Item::as_table_like) else { return Vec::new() };
    table.iter().filter_map(|(name, item)| Some((name.to_owned(), item.as_table_like()?))).collect()
}

fn object<'a>(doc: &'a DocumentMut, kind: &str, name: &str) -> Option<&'a dyn TableLike> {
    doc.get(kind)?.as_table_like()?.get(name)?.as_table_like()
}

fn referrers_in(docs: &[DocumentMut], kind: &str, name: &str) -> Vec<String> {
    // (referring type, the keys that hold a name or a list of names)
    let (from, keys): (&str, &[&str]) = match kind {
        "persistence" => ("pools", &["persistence"]),
        "monitors" => ("pools", &["monitors"]),
        "pools" => ("virtual_servers", &["pool"]),
        "rules" => ("virtual_servers", &["request_rules", "response_rules"]),
        "rate_classes" => ("virtual_servers", &["rate_class"]),
        "bandwidth_classes" => ("virtual_servers", &["bandwidth_class"]),
        "service_levels" => ("virtual_servers", &["service_level"]),
        _ => return Vec::new(),
    };
    let mut found = BTreeSet::new();
    for doc in docs {
        for (referrer, object) in objects(doc, from) {
            let mut names: Vec<&str> = Vec::new();
            for item in keys.iter().filter_map(|k| object.get(k)) {
                names.extend(item.as_str());
                names.extend(item.as_array().into_iter().flat_map(|a| a.iter()).filter_map(Value::as_str));
            }
            if kind == "pools" {
                if let Some(sni) = object.get("sni_pools").and_then(Item::as_table_like) {
                    names.extend(sni.iter().filter_map(|(_, item)| item.as_str()));
                }
            }
            if names.contains(&name) {
                found.insert(format!("{from}/{referrer}"));
            }
        }
    }
    found.into_iter().collect()
}

/// Splits a PUT body into its "basic" keys and its other sections (`None`
/// for a section to remove), checking the shape the API accepts.
#[allow(clippy::type_complexity)]
fn parse_body(body: &Json) -> Result<(Option<&Map<String, Json>>, Vec<(&str, Option<&Map<String, Json>>)>), EditError> {
    const SHAPE: &str = "body must be a JSON object with \"properties\"";
    let top = body.as_object().ok_or_else(|| EditError::BadRequest(format!("{SHAPE}, got {}", describe(body))))?;
    if let Some(key) = top.keys().find(|k| *k != "properties") {
        return Err(EditError::BadRequest(format!("{SHAPE} and nothing else; unexpected key {key:?}")));
    }
    let properties = top.get("properties").ok_or_else(|| EditError::BadRequest(SHAPE.into()))?;
    let properties = properties.as_object().ok_or_else(|| {
        EditError::BadRequest(format!("properties: expected an object of sections, got {}", describe(properties)))
    })?;
    let mut basic = None;
    let mut sections = Vec::new();
    for (section, value) in properties {
        match (section.as_str(), value) {
            ("basic", Json::Object(keys)) => basic = Some(keys),
            ("basic", other) => {
                return Err(EditError::BadRequest(format!(
                    "properties.basic: expected an object, got {}",
                    describe(other)
                )))
            }
            (_, Json::Object(keys)) => sections.push((section.as_str(), Some(keys))),
            (_, Json::Null) => sections.push((section.as_str(), None)),
            (_, other) => {
                return Err(EditError::BadRequest(format!(
                    "properties.{section}: expected an object (or null to remove the section), got {}",
                    describe(other)
                )))
            }
        }
    }
    Ok((basic, sections))
}

fn describe(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Adds `[kind.name]` at the end of the file, after every table it has.
fn create_object(doc: &mut DocumentMut, kind: &str, name: &str, path: &Path) -> Result<(), EditError> {
    let last = max_position(doc.as_table());
    let has_content = !doc.as_table().is_empty();
    let root = doc.as_table_mut();
    if !root.contains_key(kind) {
        let mut table = Table::new();
        table.set_implicit(true);
        root.insert(kind, Item::Table(table));
    }
    let kind_table = root
        .get_mut(kind)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| EditError::Invalid(format!("{}: `{kind}` is not a table", path.display())))?;
    let mut table = Table::new();
    table.set_position(last.map_or(0, |p| p + 1));
    if has_content {
        table.decor_mut().set_prefix("\n");
    }
    kind_table.insert(name, Item::Table(table));
    // Comments at the end of the file stay there rather than end up under
    // the new table: they now precede it.
    let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
    if !trailing.trim().is_empty() {
        doc.set_trailing("");
        let root = doc.as_table_mut();
        if let Some(table) = root.get_mut(kind).and_then(Item::as_table_like_mut).and_then(|t| t.get_mut(name)) {
            if let Some(table) = table.as_table_mut() {
                let trailing = trailing.trim_end_matches(['\n', ' ', '\t']);
                table.decor_mut().set_prefix(format!("{trailing}\n\n"));
            }
        }
    }
    Ok(())
}

/// Removes `kind.name` from `doc`. The comments above its header that a
/// blank line separates from it (a file's opening comment, say) are not
/// about it, so they stay, above whatever comes next.
fn remove_object(doc: &mut DocumentMut, kind: &str, name: &str) {
    let Some(kind_table) = doc.get_mut(kind).and_then(Item::as_table_like_mut) else { return };
    let Some(removed) = kind_table.remove(name) else { return };
    let Item::Table(removed) = removed else { return };
    let Some(first) = min_position(&removed) else { return };
    let Some(prefix) = first_prefix(&removed, first) else { return };
    let lines: Vec<&str> = prefix.split_inclusive('\n').collect();
    let Some(blank) = lines.iter().rposition(|line| line.trim().is_empty() && line.ends_with('\n')) else { return };
    let detached: String = lines[..=blank].concat();
    if detached.trim().is_empty() {
        return;
    }
    let next = next_position(doc.as_table(), first);
    let mut placed = false;
    if let Some(next) = next {
        for_each_table_mut(doc.as_table_mut(), &mut |table| {
            if !placed && table.position() == Some(next) {
                let own = table.decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_owned();
                table.decor_mut().set_prefix(format!("{detached}{}", own.trim_start_matches(['\n', ' ', '\t'])));
                placed = true;
            }
        });
    }
    if !placed {
        let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
        doc.set_trailing(format!("{detached}{trailing}"));
    }
}

/// The decor prefix of the table at `position` in `table`'s subtree.
fn first_prefix(table: &Table, position: usize) -> Option<String> {
    if table.position() == Some(position) {
        return table.decor().prefix().and_then(|p| p.as_str()).map(str::to_owned);
    }
    table.iter().find_map(|(_, item)| match item {
        Item::Table(t) => first_prefix(t, position),
        Item::ArrayOfTables(a) => a.iter().find_map(|t| first_prefix(t, position)),
        _ => None,
    })
}

/// The smallest table position after `after` in `table`'s subtree.
fn next_position(table: &Table, after: usize) -> Option<usize> {
    let own = table.position().filter(|&p| p > after);
    let children = table.iter().filter_map(|(_, item)| match item {
        Item::Table(t) => next_position(t, after),
        Item::ArrayOfTables(a) => a.iter().filter_map(|t| next_position(t, after)).min(),
        _ => None,
    });
    own.into_iter().chain(children).min()
}

fn for_each_table_mut(table: &mut Table, f: &mut dyn FnMut(&mut Table)) {
    f(table);
    for (_, item) in table.iter_mut() {
        match item {
            Item::Table(t) => for_each_table_mut(t, f),
            Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| for_each_table_mut(t, f)),
            _ => {}
        }
    }
}

fn max_position(table: &Table) -> Option<usize> {
    let mut max = table.position();
    for (_, item) in table.iter() {
        let child = match item {
            Item::Table(t) => max_position(t),
            Item::ArrayOfTables(a) => a.iter().filter_map(max_position).max(),
            _ => None,
        };
        max = max.max(child);
    }
    max
}

fn min_position(table: &Table) -> Option<usize> {
    let mut min = table.position();
    for (_, item) in table.iter() {
        let child = match item {
            Item::Table(t) => min_position(t),
            Item::ArrayOfTables(a) => a.iter().filter_map(min_position).min(),
            _ => None,
        };
        min = match (min, child) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    min
}

/// Gives a table that was only implied by its sub-tables' headers (and so
/// had no header or position) a header of its own, placed just before its
/// first sub-table, once it has keys to show.
fn surface(table: &mut Table) {
    if !table.is_implicit() || table.get_values().is_empty() {
        return;
    }
    table.set_implicit(false);
    if table.position().is_none() {
        if let Some(first) = min_position(table) {
            table.set_position(first);
        }
    }
}

/// A table being edited: a `[header]` table (or dotted keys), or an inline
/// one, whose spacing needs care that `TableLike` does not take.
enum TableMut<'a> {
    Std(&'a mut Table),
    Inline(&'a mut InlineTable),
}

impl<'a> TableMut<'a> {
    fn of(item: &'a mut Item) -> Option<TableMut<'a>> {
        match item {
            Item::Table(table) => Some(TableMut::Std(table)),
            Item::Value(Value::InlineTable(table)) => Some(TableMut::Inline(table)),
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Item> {
        match self {
            TableMut::Std(table) => table.get_mut(key),
            TableMut::Inline(table) => TableLike::get_mut(*table, key),
        }
    }

    fn remove(&mut self, key: &str) {
        match self {
            TableMut::Std(table) => {
                table.remove(key);
            }
            TableMut::Inline(table) => inline_remove(table, key),
        }
    }

    fn insert(&mut self, key: &str, value: Value) {
        match self {
            TableMut::Std(table) => {
                table.insert(key, Item::Value(value));
            }
            TableMut::Inline(table) => inline_insert(table, key, value),
        }
    }

    fn surface(&mut self) {
        if let TableMut::Std(table) = self {
            surface(table);
        }
    }
}

/// Adds a key to an inline table so that the space before its `}` stays
/// there rather than ending up before the new key's comma.
fn inline_insert(table: &mut InlineTable, key: &str, mut value: Value) {
    if let Some((_, last)) = table.iter_mut().last() {
        if let Some(suffix) = last.decor().suffix().cloned() {
            last.decor_mut().set_suffix("");
            value.decor_mut().set_suffix(suffix);
        }
    }
    table.insert(key, value);
}

/// Removes a key from an inline table, handing the space before `}` on to
/// the new last key.
fn inline_remove(table: &mut InlineTable, key: &str) {
    let was_last = table.iter().last().is_some_and(|(last, _)| last == key);
    let Some(removed) = table.remove(key) else { return };
    if was_last {
        if let (Some(suffix), Some((_, last))) = (removed.decor().suffix(), table.iter_mut().last()) {
            last.decor_mut().set_suffix(suffix.clone());
        }
    }
}

fn merge_section(table: &mut TableMut<'_>, keys: &Map<String, Json>, at: &str) -> Result<(), EditError> {
    for (key, value) in keys {
        let at = format!("{at}.{key}");
        match (table.get_mut(key), value) {
            (_, Json::Null) => table.remove(key),
            (Some(Item::Value(old)), json) => merge_value(old, json, &at)?,
            (Some(item), json) => *item = Item::Value(json_to_value(json, &at)?),
            (None, json) => table.insert(key, json_to_value(json, &at)?),
        }
    }
    Ok(())
}

/// Sets `old` to `json`, keeping as much of its text as the new value
/// allows: equal values are not touched at all, and arrays and inline
/// tables are updated element by element, so that editing one node of a
/// multi-line `nodes` list leaves the other lines (and trailing comments)
/// as they were.
fn merge_value(old: &mut Value, json: &Json, at: &str) -> Result<(), EditError> {
    if value_to_json(old) == *json {
        return Ok(());
    }
    match (old, json) {
        (Value::Array(array), Json::Array(items)) => {
            let mut merged = Array::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{at}[{i}]");
                match array.get(i) {
                    Some(existing) => {
                        let mut value = existing.clone();
                        merge_value(&mut value, item, &at)?;
                        merged.push_formatted(value);
                    }
                    None => merged.push_formatted(json_to_value(item, &at)?),
                }
            }
            lay_out_appended(&mut merged, array.len());
            merged.set_trailing(array.trailing().clone());
            merged.set_trailing_comma(array.trailing_comma() && !merged.is_empty());
            *merged.decor_mut() = array.decor().clone();
            *array = merged;
        }
        (Value::InlineTable(table), Json::Object(keys)) => {
            let stale: Vec<String> =
                table.iter().map(|(k, _)| k.to_owned()).filter(|k| !keys.contains_key(k.as_str())).collect();
            for key in stale {
                inline_remove(table, &key);
            }
            for (key, item) in keys {
                let at = format!("{at}.{key}");
                match table.get_mut(key) {
                    Some(value) => merge_value(value, item, &at)?,
                    None => inline_insert(table, key, json_to_value(item, &at)?),
                }
            }
        }
        (old, json) => {
            let mut value = json_to_value(json, at)?;
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
    }
    Ok(())
}

/// Lays out the elements after the first `kept` of `array` the way the
/// kept ones are: one per line with the same indentation when they are on
/// lines of their own, else toml_edit's `a, b`. A comment after the last
/// kept element stays after it.
fn lay_out_appended(array: &mut Array, kept: usize) {
    let Some(last) = kept.checked_sub(1).and_then(|i| array.get_mut(i)) else { return };
    let prefix = last.decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_owned();
    let suffix = last.decor().suffix().and_then(|s| s.as_str()).unwrap_or("").to_owned();
    let indent = prefix.rfind('\n').map(|at| prefix[at..].to_owned());
    let comment_after = suffix.contains('\n');
    if comment_after {
        last.decor_mut().set_suffix("");
    } else if indent.is_none() {
        return;
    }
    let indent = indent.unwrap_or_else(|| "\n".to_owned());
    let total = array.len();
    for (i, value) in array.iter_mut().enumerate().skip(kept) {
        let decor = value.decor_mut();
        if i == kept && comment_after {
            decor.set_prefix(format!("{}{}", suffix.trim_end_matches(['\n', ' ', '\t']), indent));
        } else {
            decor.set_prefix(indent.clone());
        }
        if i + 1 == total && comment_after {
            // The closing bracket was on a line of its own.
            decor.set_suffix("\n");
        }
    }
}

fn json_to_value(json: &Json, at: &str) -> Result<Value, EditError> {
    Ok(match json {
        Json::Null => {
            return Err(EditError::BadRequest(format!(
                "{at}: null is only allowed as the whole value of a key or section, to remove it"
            )))
        }
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            (None, None) => return Err(EditError::BadRequest(format!("{at}: {n} is not a number TOML can hold"))),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => {
            let mut array = Array::new();
            for (i, item) in items.iter().enumerate() {
                array.push(json_to_value(item, &format!("{at}[{i}]"))?);
            }
            Value::Array(array)
        }
        Json::Object(keys) => {
            let mut table = InlineTable::new();
            for (key, item) in keys {
                table.insert(key, json_to_value(item, &format!("{at}.{key}"))?);
            }
            Value::InlineTable(table)
        }
    })
}

fn item_to_json(item: &Item) -> Json {
    match item {
        Item::None => Json::Null,
        Item::Value(value) => value_to_json(value),
        Item::Table(table) => table_to_json(table),
        Item::ArrayOfTables(tables) => Json::Array(tables.iter().map(|t| table_to_json(t)).collect()),
    }
}

fn table_to_json(table: &dyn TableLike) -> Json {
    Json::Object(table.iter().map(|(k, item)| (k.to_owned(), item_to_json(item))).collect())
}

fn value_to_json(value: &Value) -> Json {
    match value {
        Value::String(s) => Json::String(s.value().clone()),
        Value::Integer(i) => Json::from(*i.value()),
        // JSON has no NaN or infinities; TOML's own spelling keeps them
        // readable.
        Value::Float(f) => serde_json::Number::from_f64(*f.value()).map_or_else(
            || {
                Json::String(
                    if f.value().is_nan() {
                        "nan"
                    } else if *f.value() > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    }
                    .into(),
                )
            },
            Json::Number,
        ),
        Value::Boolean(b) => Json::Bool(*b.value()),
        Value::Datetime(d) => Json::String(d.value().to_string()),
        Value::Array(array) => Json::Array(array.iter().map(value_to_json).collect()),
        Value::InlineTable(table) => table_to_json(table),
    }
}

fn visit_strings(item: &Item, f: &mut dyn FnMut(&str)) {
    match item {
        Item::None => {}
        Item::Value(value) => visit_value_strings(value, f),
        Item::Table(table) => table.iter().for_each(|(_, item)| visit_strings(item, f)),
        Item::ArrayOfTables(tables) => {
            tables.iter().flat_map(|t| t.iter()).for_each(|(_, item)| visit_strings(item, f));
        }
    }
}

fn visit_value_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s.value()),
        Value::Array(array) => array.iter().for_each(|v| visit_value_strings(v, f)),
        Value::InlineTable(table) => table.iter().for_each(|(_, v)| visit_value_strings(v, f)),
        _ => {}
    }
}

/// `a/./b/../c` → `a/c`, without asking the filesystem (symbolic links are
/// not followed: the configuration's paths are compared as written).
fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(component),
            },
            _ => out.push(component),
        }
    }
    out.iter().collect()
}

/// Sets `state` on the node `node` in a `nodes` value; whether it has it.
fn set_state_in_nodes(nodes: &mut Item, node: &str, state: &str) -> bool {
    let mut found = false;
    match nodes {
        Item::Value(Value::Array(array)) => {
            for element in array.iter_mut() {
                match element {
                    Value::String(address) if address.value() == node => {
                        found = true;
                        if state != "active" {
                            let mut table = InlineTable::new();
                            table.insert("address", Value::from(node));
                            table.insert("state", Value::from(state));
                            let mut value = Value::InlineTable(table);
                            *value.decor_mut() = element.decor().clone();
                            *element = value;
                        }
                    }
                    Value::InlineTable(table) if table.get("address").and_then(Value::as_str) == Some(node) => {
                        found = true;
                        set_state_key(TableMut::Inline(table), state);
                    }
                    _ => {}
                }
            }
        }
        // `[[pools.x.nodes]]` tables.
        Item::ArrayOfTables(tables) => {
            for table in tables.iter_mut() {
                if table.get("address").and_then(Item::as_str) == Some(node) {
                    found = true;
                    set_state_key(TableMut::Std(table), state);
                }
            }
        }
        _ => {}
    }
    found
}

fn set_state_key(mut table: TableMut<'_>, state: &str) {
    if state == "active" {
        table.remove("state");
        return;
    }
    match table.get_mut("state") {
        Some(Item::Value(value)) => {
            let mut new = Value::from(state);
            *new.decor_mut() = value.decor().clone();
            *value = new;
        }
        Some(item) => *item = Item::Value(Value::from(state)),
        None => table.insert("state", Value::from(state)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAIN: &str = r#"# The main file.

include = ["pools.toml"]

[virtual_servers.www]
listen = ["0.0.0.0:8080"]   # all addresses
protocol = "http"
pool = "web"
max_body_size = 52428800        # 50 MiB

# TLS for www.
[virtual_servers.www.tls]
certificates = [{ cert = "certs/www.pem", key = "certs/www.key" }]

[virtual_servers.passthrough]
listen = "0.0.0.0:443"
protocol = "ssl_passthrough"
pool = "fallback"
sni_pools = { "a.example.com" = "web", "b.example.com" = "other" }

[responders.hello]
listen = "127.0.0.1:7000"
greeting = "hi"
"#;

    const POOLS: &str = r#"# Pools live here.
[pools.web]
algorithm = "perceptive"
nodes = [
    "10.0.0.21:80",   # rack 1
    "10.0.0.22:80",
    { address = "10.0.0.23:80", weight = 2 },
]
monitors = ["web-health"]           # docs/monitors.md
persistence = "web-sessions"

[pools.web.tls]
ca = "../ca/internal.pem"

[pools.fallback]
nodes = ["10.0.0.22:80"]

[pools.other]
nodes = ["10.0.0.99:80"]
monitors = ["web-health", "tcp"]

[monitors.web-health]
type = "http"

[monitors.tcp]
type = "tcp"

[persistence.web-sessions]
type = "ip"
"#;

    fn files() -> Vec<SourceText> {
        vec![
            SourceText { path: "/etc/shoal/shoal.toml".into(), text: MAIN.into() },
            SourceText { path: "/etc/shoal/conf.d/pools.toml".into(), text: POOLS.into() },
        ]
    }

    fn one(text: &str) -> Vec<SourceText> {
        vec![SourceText { path: "/etc/shoal/shoal.toml".into(), text: text.into() }]
    }

    /// The files after an edit, for chaining operations.
    fn apply(files: &[SourceText], edit: &Edit) -> Vec<SourceText> {
        files
            .iter()
            .map(|f| {
                let text = edit.changed.iter().find(|(p, _)| *p == f.path).map_or(f.text.clone(), |(_, t)| t.clone());
                SourceText { path: f.path.clone(), text }
            })
            .collect()
    }

    fn only_text(edit: &Edit) -> &str {
        assert_eq!(edit.changed.len(), 1, "{edit:?}");
        &edit.changed[0].1
    }

    fn bad_request(result: Result<Edit, EditError>) -> String {
        match result {
            Err(EditError::BadRequest(message)) => message,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn lists_names_across_files_sorted() {
        let files = files();
        assert_eq!(list(&files, "pools").unwrap(), ["fallback", "other", "web"]);
        assert_eq!(list(&files, "virtual_servers").unwrap(), ["passthrough", "www"]);
        assert_eq!(list(&files, "monitors").unwrap(), ["tcp", "web-health"]);
        assert_eq!(list(&files, "responders").unwrap(), ["hello"]);
        assert_eq!(list(&files, "persistence").unwrap(), ["web-sessions"]);
        assert!(list(&one(""), "pools").unwrap().is_empty());
    }

    #[test]
    fn unknown_kind_is_not_found() {
        let files = files();
        assert!(matches!(list(&files, "global"), Err(EditError::NotFound(_))));
        assert!(matches!(get(&files, "api", "x"), Err(EditError::NotFound(_))));
        assert!(matches!(put(&files, "include", "x", &json!({"properties": {}})), Err(EditError::NotFound(_))));
        assert!(matches!(delete(&files, "nope", "x"), Err(EditError::NotFound(_))));
        assert!(referrers(&files, "nope", "x").is_empty());
    }

    #[test]
    fn unparsable_file_is_invalid() {
        let mut files = files();
        files[1].text = "[pools.web\n".into();
        match list(&files, "pools") {
            Err(EditError::Invalid(message)) => assert!(message.starts_with("/etc/shoal/conf.d/pools.toml: ")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(get(&files, "pools", "web"), Err(EditError::Invalid(_))));
        assert!(matches!(put(&files, "pools", "web", &json!({"properties": {}})), Err(EditError::Invalid(_))));
    }

    #[test]
    fn get_maps_tables_to_sections() {
        let files = files();
        let www = get(&files, "virtual_servers", "www").unwrap();
        assert_eq!(
            www,
            json!({"properties": {
                "basic": {
                    "listen": ["0.0.0.0:8080"],
                    "protocol": "http",
                    "pool": "web",
                    "max_body_size": 52428800
                },
                "tls": {"certificates": [{"cert": "certs/www.pem", "key": "certs/www.key"}]}
            }})
        );
        let web = get(&files, "pools", "web").unwrap();
        assert_eq!(
            web["properties"]["basic"]["nodes"],
            json!(["10.0.0.21:80", "10.0.0.22:80", {"address": "10.0.0.23:80", "weight": 2}])
        );
        assert_eq!(web["properties"]["tls"], json!({"ca": "../ca/internal.pem"}));
        // An inline table is a section too.
        let passthrough = get(&files, "virtual_servers", "passthrough").unwrap();
        assert_eq!(passthrough["properties"]["sni_pools"], json!({"a.example.com": "web", "b.example.com": "other"}));
        assert!(passthrough["properties"]["basic"].get("sni_pools").is_none());
    }

    #[test]
    fn get_converts_every_toml_type() {
        let text = "[monitors.m]\ni = -3\nf = 1.5\nb = true\nd = 1979-05-27T07:32:00Z\nnan = nan\n\
                    a = [[1, 2], { x = { y = 'z' } }]\n[monitors.m.deep.er]\nk = 1\n";
        let m = get(&one(text), "monitors", "m").unwrap();
        assert_eq!(
            m,
            json!({"properties": {
                "basic": {"i": -3, "f": 1.5, "b": true, "d": "1979-05-27T07:32:00Z", "nan": "nan",
                          "a": [[1, 2], {"x": {"y": "z"}}]},
                "deep": {"er": {"k": 1}}
            }})
        );
    }

    #[test]
    fn get_of_object_without_keys_has_empty_basic() {
        let m = get(&one("[pools.p.tls]\nverify = false\n"), "pools", "p").unwrap();
        assert_eq!(m, json!({"properties": {"basic": {}, "tls": {"verify": false}}}));
        let m = get(&one("[pools.p]\n"), "pools", "p").unwrap();
        assert_eq!(m, json!({"properties": {"basic": {}}}));
    }

    #[test]
    fn get_missing_is_not_found() {
        assert_eq!(get(&files(), "pools", "nope"), Err(EditError::NotFound("pools/nope".into())));
        // A non-table value is not an object.
        assert!(matches!(get(&one("[pools]\nx = 1\n"), "pools", "x"), Err(EditError::NotFound(_))));
    }

    #[test]
    fn objects_written_other_ways_are_found() {
        let text = "[pools]\ndotted.nodes = [\"a:1\"]\ninline = { nodes = [\"b:2\"] }\n";
        let files = one(text);
        assert_eq!(list(&files, "pools").unwrap(), ["dotted", "inline"]);
        assert_eq!(get(&files, "pools", "inline").unwrap()["properties"]["basic"]["nodes"], json!(["b:2"]));
        assert_eq!(get(&files, "pools", "dotted").unwrap()["properties"]["basic"]["nodes"], json!(["a:1"]));
    }

    #[test]
    fn put_updates_only_what_it_names() {
        let files = files();
        let body = json!({"properties": {"basic": {"max_body_size": 1024, "add_via": true, "protocol": null}}});
        let edit = put(&files, "virtual_servers", "www", &body).unwrap();
        assert!(!edit.created);
        assert_eq!(edit.changed[0].0, PathBuf::from("/etc/shoal/shoal.toml"));
        let expected = MAIN.replace("protocol = \"http\"\npool = \"web\"\n", "pool = \"web\"\n").replace(
            "max_body_size = 52428800        # 50 MiB\n",
            "max_body_size = 1024        # 50 MiB\nadd_via = true\n",
        );
        assert_eq!(only_text(&edit), expected);
    }

    #[test]
    fn put_of_equal_values_changes_nothing() {
        let files = files();
        let web = get(&files, "pools", "web").unwrap();
        let edit = put(&files, "pools", "web", &web).unwrap();
        assert!(edit.changed.is_empty(), "{edit:?}");
        assert!(!edit.created);
    }

    #[test]
    fn put_merges_sections() {
        let files = files();
        let body = json!({"properties": {"tls": {"alpn": ["h2"], "ca": null, "verify": false}}});
        let edit = put(&files, "pools", "web", &body).unwrap();
        assert_eq!(edit.changed[0].0, PathBuf::from("/etc/shoal/conf.d/pools.toml"));
        let text = only_text(&edit);
        assert!(text.contains("[pools.web.tls]\nalpn = [\"h2\"]\nverify = false\n\n[pools.fallback]"), "{text}");
        // Everything else is as it was.
        assert_eq!(text.replace("alpn = [\"h2\"]\nverify = false\n", "ca = \"../ca/internal.pem\"\n"), POOLS);
    }

    #[test]
    fn put_creates_a_missing_section_as_a_sub_table() {
        let files = files();
        let body = json!({"properties": {"tls": {"verify": false}}});
        let edit = put(&files, "pools", "fallback", &body).unwrap();
        let text = only_text(&edit);
        assert!(
            text.contains(
                "[pools.fallback]\nnodes = [\"10.0.0.22:80\"]\n\n[pools.fallback.tls]\nverify = false\n\n[pools.other]"
            ),
            "{text}"
        );
        let after = apply(&files, &edit);
        assert_eq!(get(&after, "pools", "fallback").unwrap()["properties"]["tls"], json!({"verify": false}));
        // An empty section is created: `tls = {}` means "TLS with defaults".
        let edit = put(&files, "pools", "fallback", &json!({"properties": {"tls": {}}})).unwrap();
        assert!(only_text(&edit).contains("[pools.fallback.tls]\n"));
        // Only removals: nothing to create.
        let edit = put(&files, "pools", "fallback", &json!({"properties": {"tls": {"ca": null}}})).unwrap();
        assert!(edit.changed.is_empty());
    }

    #[test]
    fn put_null_section_removes_the_sub_table() {
        let files = files();
        let edit = put(&files, "pools", "web", &json!({"properties": {"tls": null}})).unwrap();
        let text = only_text(&edit);
        assert!(!text.contains("tls"), "{text}");
        assert_eq!(text, POOLS.replace("[pools.web.tls]\nca = \"../ca/internal.pem\"\n\n", ""));
        // Removing an absent section is nothing to do.
        let edit = put(&files, "pools", "fallback", &json!({"properties": {"tls": null}})).unwrap();
        assert!(edit.changed.is_empty());
        // An inline-table section goes too.
        let edit = put(&files, "virtual_servers", "passthrough", &json!({"properties": {"sni_pools": null}})).unwrap();
        assert!(!only_text(&edit).contains("sni_pools"));
    }

    #[test]
    fn put_merges_into_an_inline_table_section() {
        let files = files();
        let body = json!({"properties": {"sni_pools": {"c.example.com": "fallback", "b.example.com": null}}});
        let edit = put(&files, "virtual_servers", "passthrough", &body).unwrap();
        assert!(
            only_text(&edit).contains(r#"sni_pools = { "a.example.com" = "web", "c.example.com" = "fallback" }"#),
            "{}",
            only_text(&edit)
        );
    }

    #[test]
    fn put_section_over_a_plain_value_is_refused() {
        let message = bad_request(put(&files(), "pools", "web", &json!({"properties": {"nodes": {"a": 1}}})));
        assert!(message.starts_with("properties.nodes: "), "{message}");
        let message = bad_request(put(&files(), "pools", "web", &json!({"properties": {"nodes": null}})));
        assert!(message.starts_with("properties.nodes: "), "{message}");
        // Also within one body for a new object.
        let body = json!({"properties": {"basic": {"tls": 1}, "tls": {"a": 1}}});
        assert!(bad_request(put(&files(), "pools", "new", &body)).starts_with("properties.tls: "));
    }

    #[test]
    fn put_edits_nodes_element_by_element() {
        let files = files();
        let body = json!({"properties": {"basic": {"nodes": [
            "10.0.0.21:80",
            {"address": "10.0.0.22:80", "weight": 3},
            {"address": "10.0.0.23:80", "weight": 2},
            "10.0.0.24:80"
        ]}}});
        let edit = put(&files, "pools", "web", &body).unwrap();
        let text = only_text(&edit);
        assert!(
            text.contains(
                "nodes = [\n    \"10.0.0.21:80\",   # rack 1\n    { address = \"10.0.0.22:80\", weight = 3 },\n    \
                 { address = \"10.0.0.23:80\", weight = 2 },\n    \"10.0.0.24:80\",\n]\n"
            ),
            "{text}"
        );
        assert_eq!(
            get(&apply(&files, &edit), "pools", "web").unwrap()["properties"]["basic"]["nodes"],
            body["properties"]["basic"]["nodes"]
        );

        // Shrinking keeps the first elements' lines.
        let body = json!({"properties": {"basic": {"nodes": ["10.0.0.21:80"]}}});
        let text = only_text(&put(&files, "pools", "web", &body).unwrap()).to_owned();
        // (toml_edit keeps a comment after a comma with the next element.)
        assert!(text.contains("nodes = [\n    \"10.0.0.21:80\",\n]\n"), "{text}");

        // Growing a one-line array.
        let body = json!({"properties": {"basic": {"nodes": ["10.0.0.22:80", "10.0.0.23:80"]}}});
        let text = only_text(&put(&files, "pools", "fallback", &body).unwrap()).to_owned();
        assert!(text.contains("nodes = [\"10.0.0.22:80\", \"10.0.0.23:80\"]\n"), "{text}");
    }

    #[test]
    fn put_converts_json_values() {
        let body = json!({"properties": {"basic": {
            "s": "x\"y", "i": -7, "big": 18446744073709551615u64, "f": 0.25, "b": false,
            "a": ["a:1", {"address": "b:2", "weight": 2}], "empty": [], "o": {"k": [1]}
        }}});
        let edit = put(&one(""), "monitors", "m", &body).unwrap();
        let text = only_text(&edit);
        assert!(text.contains("a = [\"a:1\", { address = \"b:2\", weight = 2 }]\n"), "{text}");
        assert!(text.contains("s = 'x\"y'\n") || text.contains("s = \"x\\\"y\"\n"), "{text}");
        let m = get(&apply(&one(""), &edit), "monitors", "m").unwrap();
        let basic = &m["properties"]["basic"];
        assert_eq!(basic["s"], "x\"y");
        assert_eq!(basic["i"], -7);
        assert_eq!(basic["big"], json!(18446744073709551615.0f64));
        assert_eq!(basic["f"], 0.25);
        assert_eq!(basic["b"], false);
        assert_eq!(basic["a"], json!(["a:1", {"address": "b:2", "weight": 2}]));
        assert_eq!(basic["empty"], json!([]));
        // An object in "basic" is an inline table, so it reads back as a
        // section.
        assert_eq!(m["properties"]["o"], json!({"k": [1]}));
    }

    #[test]
    fn put_rejects_nulls_inside_values() {
        let body = json!({"properties": {"basic": {"nodes": ["a:1", null]}}});
        assert_eq!(
            bad_request(put(&files(), "pools", "web", &body)),
            "properties.basic.nodes[1]: null is only allowed as the whole value of a key or section, to remove it"
        );
        let body = json!({"properties": {"tls": {"certificates": [{"cert": null}]}}});
        assert!(bad_request(put(&files(), "virtual_servers", "www", &body))
            .starts_with("properties.tls.certificates[0].cert: null"));
    }

    #[test]
    fn put_rejects_bodies_of_the_wrong_shape() {
        let files = files();
        for (body, start) in [
            (json!([]), "body must be a JSON object with \"properties\", got an array"),
            (json!({}), "body must be a JSON object with \"properties\""),
            (json!({"properties": {}, "x": 1}), "body must be a JSON object with \"properties\" and nothing else"),
            (json!({"properties": []}), "properties: expected an object of sections, got an array"),
            (json!({"properties": {"basic": null}}), "properties.basic: expected an object, got null"),
            (json!({"properties": {"basic": []}}), "properties.basic: expected an object, got an array"),
            (
                json!({"properties": {"tls": 1}}),
                "properties.tls: expected an object (or null to remove the section), got a number",
            ),
        ] {
            let message = bad_request(put(&files, "pools", "web", &body));
            assert!(message.starts_with(start), "{message} / {start}");
        }
    }

    #[test]
    fn put_checks_names() {
        let body = json!({"properties": {}});
        assert!(bad_request(put(&files(), "pools", "", &body)).contains("empty"));
        for name in ["a b", "a/b", "a\"b", "x]", "é", "a\nb"] {
            let message = bad_request(put(&files(), "pools", name, &body));
            assert!(message.starts_with("name "), "{message}");
        }
    }

    #[test]
    fn put_creates_objects_in_the_main_file() {
        let files = files();
        let body = json!({"properties": {
            "basic": {"algorithm": "round_robin", "nodes": ["10.1.0.1:80"]},
            "tls": {"verify": false}
        }});
        let edit = put(&files, "pools", "new", &body).unwrap();
        assert!(edit.created);
        assert_eq!(edit.changed[0].0, PathBuf::from("/etc/shoal/shoal.toml"));
        let text = only_text(&edit);
        let expected = format!(
            "{MAIN}\n[pools.new]\nalgorithm = \"round_robin\"\nnodes = [\"10.1.0.1:80\"]\n\n[pools.new.tls]\nverify = false\n"
        );
        assert_eq!(text, expected);
        let after = apply(&files, &edit);
        assert_eq!(list(&after, "pools").unwrap(), ["fallback", "new", "other", "web"]);
        assert_eq!(
            get(&after, "pools", "new").unwrap(),
            json!({"properties": {"basic": {"nodes": ["10.1.0.1:80"], "algorithm": "round_robin"}, "tls": {"verify": false}}})
        );
        // A second PUT updates what the first made.
        let edit = put(&after, "pools", "new", &json!({"properties": {"basic": {"max_queue": 5}}})).unwrap();
        assert!(!edit.created);
        assert!(only_text(&edit).contains("nodes = [\"10.1.0.1:80\"]\nmax_queue = 5\n\n[pools.new.tls]"));
    }

    #[test]
    fn put_creates_in_an_empty_or_unterminated_file() {
        let edit = put(&one(""), "monitors", "m", &json!({"properties": {"basic": {"type": "tcp"}}})).unwrap();
        assert_eq!(only_text(&edit), "[monitors.m]\ntype = \"tcp\"\n");
        let edit = put(&one("a = 1"), "monitors", "m", &json!({"properties": {}})).unwrap();
        let text = only_text(&edit);
        assert!(text.parse::<DocumentMut>().is_ok(), "{text}");
        assert_eq!(list(&apply(&one("a = 1"), &edit), "monitors").unwrap(), ["m"]);
        // Trailing comments stay at the end.
        let edit = put(&one("[global]\n# end\n"), "monitors", "m", &json!({"properties": {}})).unwrap();
        assert!(only_text(&edit).parse::<DocumentMut>().is_ok());
    }

    #[test]
    fn put_to_a_kind_that_is_not_a_table_is_invalid() {
        let result = put(&one("pools = 3\n"), "pools", "p", &json!({"properties": {}}));
        assert!(matches!(result, Err(EditError::Invalid(_))), "{result:?}");
    }

    #[test]
    fn names_with_dots_and_colons_round_trip() {
        let files = files();
        for name in ["a.b", "x:y", "A-Z_0.9"] {
            let edit = put(&files, "monitors", name, &json!({"properties": {"basic": {"type": "tcp"}}})).unwrap();
            let text = only_text(&edit);
            assert!(text.contains(&format!("[monitors.\"{name}\"]")) || text.contains(&format!("[monitors.{name}]")));
            let after = apply(&files, &edit);
            assert!(list(&after, "monitors").unwrap().contains(&name.to_owned()));
            assert_eq!(get(&after, "monitors", name).unwrap()["properties"]["basic"]["type"], "tcp");
            let again = put(&after, "monitors", name, &json!({"properties": {"basic": {"type": "http"}}})).unwrap();
            assert!(!again.created);
            let gone = delete(&after, "monitors", name).unwrap();
            assert_eq!(only_text(&gone), MAIN);
        }
        // "a.b" is not the object b inside a.
        let text = "[monitors.a.b]\ntype = \"tcp\"\n";
        assert!(matches!(get(&one(text), "monitors", "a.b"), Err(EditError::NotFound(_))));
    }

    #[test]
    fn put_into_an_inline_or_dotted_object() {
        let text = "[pools]\ndotted.nodes = [\"a:1\"]\ninline = { nodes = [\"b:2\"] }\n";
        let files = one(text);
        let body = json!({"properties": {"basic": {"max_queue": 1}, "tls": {"verify": false}}});
        for name in ["dotted", "inline"] {
            let edit = put(&files, "pools", name, &body).unwrap();
            let after = apply(&files, &edit);
            let object = get(&after, "pools", name).unwrap();
            assert_eq!(object["properties"]["basic"]["max_queue"], 1, "{}", only_text(&edit));
            assert_eq!(object["properties"]["tls"], json!({"verify": false}));
            assert_eq!(list(&after, "pools").unwrap(), ["dotted", "inline"]);
        }
    }

    #[test]
    fn put_creates_beside_inline_and_dotted_objects() {
        let body = json!({"properties": {"basic": {"nodes": ["x:1"]}, "tls": {"verify": false}}});
        for text in ["pools = { a = { nodes = [] } }\n", "pools.a.nodes = []\n", "[pools]\na.nodes = []\n"] {
            let edit = put(&one(text), "pools", "b", &body).unwrap();
            assert!(edit.created);
            let after = apply(&one(text), &edit);
            assert_eq!(list(&after, "pools").unwrap(), ["a", "b"], "{}", only_text(&edit));
            assert_eq!(get(&after, "pools", "b").unwrap(), body, "{}", only_text(&edit));
        }
    }

    #[test]
    fn put_gives_an_implied_object_a_header() {
        let text = "[pools.a]\nnodes = []\n\n[monitors.m]\ntype = \"tcp\"\n\n[pools.p.tls]\nverify = false\n";
        let edit = put(&one(text), "pools", "p", &json!({"properties": {"basic": {"nodes": ["x:1"]}}})).unwrap();
        assert!(!edit.created);
        let out = only_text(&edit);
        assert!(out.contains("[pools.p]\nnodes = [\"x:1\"]\n\n[pools.p.tls]\nverify = false\n"), "{out}");
        assert!(out.starts_with("[pools.a]\nnodes = []\n\n[monitors.m]\ntype = \"tcp\"\n"), "{out}");
    }

    #[test]
    fn delete_removes_the_object_and_its_sub_tables() {
        let files = files();
        let edit = delete(&files, "virtual_servers", "www").unwrap();
        assert!(!edit.created);
        let text = only_text(&edit);
        assert!(!text.contains("www"), "{text}");
        assert!(text.starts_with("# The main file.\n\ninclude = [\"pools.toml\"]\n"), "{text}");
        assert!(text.contains("[virtual_servers.passthrough]\n"));
        assert_eq!(list(&apply(&files, &edit), "virtual_servers").unwrap(), ["passthrough"]);

        let edit = delete(&files, "responders", "hello").unwrap();
        assert!(!only_text(&edit).contains("hello"));
        assert!(only_text(&edit).parse::<DocumentMut>().is_ok());
    }

    #[test]
    fn delete_keeps_comments_a_blank_line_away() {
        let text = "# The file.\n\n# About a.\n[pools.a]\nnodes = []\n\n# About b.\n[pools.b]\nnodes = []\n";
        let edit = delete(&one(text), "pools", "a").unwrap();
        assert_eq!(only_text(&edit), "# The file.\n\n# About b.\n[pools.b]\nnodes = []\n");
        // With nothing after it, the comment goes to the end of the file.
        let text = "[global]\nx = 1\n\n# Note.\n\n# About a.\n[pools.a]\nnodes = []\n";
        let edit = delete(&one(text), "pools", "a").unwrap();
        assert_eq!(only_text(&edit), "[global]\nx = 1\n\n# Note.\n\n");
        // An object implied by its sub-table.
        let text = "# The file.\n\n[pools.a.tls]\nverify = true\n\n[pools.b]\nnodes = []\n";
        let edit = delete(&one(text), "pools", "a").unwrap();
        assert_eq!(only_text(&edit), "# The file.\n\n[pools.b]\nnodes = []\n");
    }

    #[test]
    fn new_objects_go_after_trailing_comments() {
        let body = json!({"properties": {"basic": {"type": "tcp"}}});
        let edit = put(&one("[global]\nx = 1\n# The end.\n"), "monitors", "m", &body).unwrap();
        assert_eq!(only_text(&edit), "[global]\nx = 1\n# The end.\n\n[monitors.m]\ntype = \"tcp\"\n");
    }

    #[test]
    fn appended_elements_follow_the_layout() {
        let text = "[pools.a]\nnodes = [\n  'x:1',  # c\n  'y:1'  # d\n]\n";
        let body = json!({"properties": {"basic": {"nodes": ["x:1", "y:1", "z:1", "w:1"]}}});
        let edit = put(&one(text), "pools", "a", &body).unwrap();
        assert_eq!(only_text(&edit), "[pools.a]\nnodes = [\n  'x:1',  # c\n  'y:1',  # d\n  \"z:1\",\n  \"w:1\"\n]\n");
        let text = "[pools.a]\nnodes = [\n  'x:1',\n]\n";
        let body = json!({"properties": {"basic": {"nodes": ["x:1", "z:1"]}}});
        let edit = put(&one(text), "pools", "a", &body).unwrap();
        assert_eq!(only_text(&edit), "[pools.a]\nnodes = [\n  'x:1',\n  \"z:1\",\n]\n");
        let text = "[pools.a]\nnodes = []\n";
        let edit = put(&one(text), "pools", "a", &body).unwrap();
        assert_eq!(only_text(&edit), "[pools.a]\nnodes = [\"x:1\", \"z:1\"]\n");
    }

    #[test]
    fn delete_checks_existence_and_references() {
        let files = files();
        assert_eq!(delete(&files, "pools", "nope").unwrap_err(), EditError::NotFound("pools/nope".into()));
        assert_eq!(
            delete(&files, "pools", "web").unwrap_err(),
            EditError::Conflict { referrers: vec!["virtual_servers/passthrough".into(), "virtual_servers/www".into()] }
        );
        assert_eq!(
            delete(&files, "monitors", "web-health").unwrap_err(),
            EditError::Conflict { referrers: vec!["pools/other".into(), "pools/web".into()] }
        );
        let after = apply(&files, &delete(&files, "virtual_servers", "passthrough").unwrap());
        let edit = delete(&after, "pools", "other").unwrap();
        assert_eq!(edit.changed[0].0, PathBuf::from("/etc/shoal/conf.d/pools.toml"));
        let after = apply(&after, &edit);
        let edit = delete(&after, "monitors", "tcp").unwrap();
        assert!(!only_text(&edit).contains("tcp"));
    }

    #[test]
    fn delete_inline_and_dotted_objects() {
        let text = "[pools]\ndotted.nodes = [\"a:1\"]\ninline = { nodes = [\"b:2\"] }\n";
        for (name, left) in [("dotted", "inline"), ("inline", "dotted")] {
            let edit = delete(&one(text), "pools", name).unwrap();
            assert_eq!(list(&apply(&one(text), &edit), "pools").unwrap(), [left], "{}", only_text(&edit));
        }
    }

    #[test]
    fn finds_referrers() {
        let files = files();
        assert_eq!(referrers(&files, "pools", "web"), ["virtual_servers/passthrough", "virtual_servers/www"]);
        assert_eq!(referrers(&files, "pools", "other"), ["virtual_servers/passthrough"]);
        assert_eq!(referrers(&files, "pools", "fallback"), ["virtual_servers/passthrough"]);
        assert_eq!(referrers(&files, "monitors", "tcp"), ["pools/other"]);
        assert_eq!(referrers(&files, "persistence", "web-sessions"), ["pools/web"]);
        assert!(referrers(&files, "persistence", "nope").is_empty());
        assert!(referrers(&files, "virtual_servers", "www").is_empty());
        assert!(referrers(&files, "responders", "hello").is_empty());
        // `monitors` in a virtual server is not a reference.
        assert!(referrers(&one("[virtual_servers.v]\nmonitors = [\"m\"]\n"), "monitors", "m").is_empty());
    }

    #[test]
    fn finds_file_referrers() {
        let files = files();
        assert_eq!(file_referrers(&files, Path::new("/etc/shoal/certs/www.pem")), ["virtual_servers/www"]);
        assert_eq!(file_referrers(&files, Path::new("/etc/shoal/./certs/../certs/www.key")), ["virtual_servers/www"]);
        // Relative to the including file's directory, not the main file's.
        assert_eq!(file_referrers(&files, Path::new("/etc/shoal/ca/internal.pem")), ["pools/web"]);
        assert!(file_referrers(&files, Path::new("/etc/shoal/conf.d/certs/www.pem")).is_empty());
        assert!(file_referrers(&files, Path::new("/etc/shoal/certs")).is_empty());
        let abs = one("[monitors.m]\ntype = \"program\"\nargs = [\"--ca\", \"/opt/ca.pem\"]\n");
        assert_eq!(file_referrers(&abs, Path::new("/opt/x/../ca.pem")), ["monitors/m"]);
        // Relative configuration paths compare with relative targets.
        let rel = vec![SourceText { path: "conf/main.toml".into(), text: "[pools.p.tls]\nca = \"ca.pem\"\n".into() }];
        assert_eq!(file_referrers(&rel, Path::new("conf/ca.pem")), ["pools/p"]);
        let bare = vec![SourceText { path: "main.toml".into(), text: "[pools.p.tls]\nca = \"./ca.pem\"\n".into() }];
        assert_eq!(file_referrers(&bare, Path::new("ca.pem")), ["pools/p"]);
    }

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(normalize(Path::new("../a/../../b")), PathBuf::from("../../b"));
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from(""));
        assert_eq!(normalize(Path::new("./a//b/")), PathBuf::from("a/b"));
    }

    #[test]
    fn node_states_are_set_in_every_pool_with_the_node() {
        let files = files();
        let (edit, pools) = set_node_state(&files, "10.0.0.22:80", "draining", None).unwrap();
        assert_eq!(pools, ["fallback", "web"]);
        let text = only_text(&edit);
        let expected = POOLS
            .replace("    \"10.0.0.22:80\",\n", "    { address = \"10.0.0.22:80\", state = \"draining\" },\n")
            .replace("nodes = [\"10.0.0.22:80\"]", "nodes = [{ address = \"10.0.0.22:80\", state = \"draining\" }]");
        assert_eq!(text, expected);

        // Back to active: the key goes, the table stays.
        let after = apply(&files, &edit);
        let (edit, pools) = set_node_state(&after, "10.0.0.22:80", "active", Some(&["web".to_owned()])).unwrap();
        assert_eq!(pools, ["web"]);
        let text = only_text(&edit);
        assert!(text.contains("    { address = \"10.0.0.22:80\" },\n"), "{text}");
        assert!(text.contains("nodes = [{ address = \"10.0.0.22:80\", state = \"draining\" }]"), "{text}");
    }

    #[test]
    fn node_state_in_an_existing_table() {
        let files = files();
        let (edit, pools) = set_node_state(&files, "10.0.0.23:80", "disabled", None).unwrap();
        assert_eq!(pools, ["web"]);
        let text = only_text(&edit);
        assert_eq!(
            text,
            POOLS.replace(
                "{ address = \"10.0.0.23:80\", weight = 2 }",
                "{ address = \"10.0.0.23:80\", weight = 2, state = \"disabled\" }"
            )
        );
        let after = apply(&files, &edit);
        let (edit, _) = set_node_state(&after, "10.0.0.23:80", "draining", None).unwrap();
        assert!(only_text(&edit).contains("{ address = \"10.0.0.23:80\", weight = 2, state = \"draining\" }"));
        let (edit, _) = set_node_state(&after, "10.0.0.23:80", "active", None).unwrap();
        assert_eq!(only_text(&edit), POOLS);
    }

    #[test]
    fn node_state_unchanged_has_no_files() {
        let (edit, pools) = set_node_state(&files(), "10.0.0.21:80", "active", None).unwrap();
        assert_eq!(pools, ["web"]);
        assert!(edit.changed.is_empty());
    }

    #[test]
    fn node_state_errors() {
        let files = files();
        assert!(matches!(set_node_state(&files, "10.0.0.21:80", "up", None), Err(EditError::BadRequest(_))));
        assert!(matches!(set_node_state(&files, "10.9.9.9:80", "draining", None), Err(EditError::NotFound(_))));
        // Exact match only.
        assert!(matches!(set_node_state(&files, "10.0.0.21", "draining", None), Err(EditError::NotFound(_))));
        assert_eq!(
            set_node_state(&files, "10.0.0.21:80", "draining", Some(&["nope".to_owned()])).unwrap_err(),
            EditError::NotFound("pools/nope".into())
        );
        // The node is not in the named pool.
        assert!(matches!(
            set_node_state(&files, "10.0.0.21:80", "draining", Some(&["other".to_owned()])),
            Err(EditError::NotFound(_))
        ));
        assert!(matches!(set_node_state(&files, "10.0.0.21:80", "draining", Some(&[])), Err(EditError::NotFound(_))));
    }

    #[test]
    fn node_state_in_arrays_of_tables() {
        let text = "[pools.p]\n# first\n[[pools.p.nodes]]\naddress = \"a:1\"\nweight = 2\n\n[[pools.p.nodes]]\naddress = \"b:1\"\n";
        let (edit, pools) = set_node_state(&one(text), "b:1", "disabled", None).unwrap();
        assert_eq!(pools, ["p"]);
        assert_eq!(only_text(&edit), format!("{text}state = \"disabled\"\n"));
    }

    #[test]
    fn writes_atomically() {
        let dir = std::env::temp_dir().join(format!("shoal-objects-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shoal.toml");
        write_atomic(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
            write_atomic(&path, b"two").unwrap();
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        }
        write_atomic(&path, b"three").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        // Nothing is left behind.
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("shoal.toml")]);
        // A missing directory is an error, and leaves nothing.
        assert!(write_atomic(&dir.join("missing/x.toml"), b"x").is_err());
        // Renaming over a directory fails; the temporary file is removed.
        fs::create_dir(dir.join("sub")).unwrap();
        assert!(write_atomic(&dir.join("sub"), b"x").is_err());
        let mut names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, [std::ffi::OsString::from("shoal.toml"), std::ffi::OsString::from("sub")]);
        assert!(write_atomic(Path::new("/"), b"x").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn survives_arbitrary_bodies() {
        // No panics on odd but well-formed input.
        let files = files();
        for body in [
            json!({"properties": {"basic": {"": 1, "a.b": {"c d": [[], {}]}}}}),
            json!({"properties": {"": {"": null}, "x": {"\"": "\n"}}}),
            json!({"properties": {"basic": {"nodes": {"address": "x"}}}}),
            json!({"properties": {"basic": {"tls": [1, "a", true, 1.5]}}}),
        ] {
            for name in ["web", "brand-new"] {
                if let Ok(edit) = put(&files, "pools", name, &body) {
                    for (_, text) in &edit.changed {
                        assert!(text.parse::<DocumentMut>().is_ok(), "{text}");
                    }
                }
            }
        }
    }
}
