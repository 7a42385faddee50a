//! The rule language's built-in functions: one table ([`TABLE`]) of names
//! (case-insensitive), argument counts, the phases a function belongs to,
//! and its implementation, resolved once at compile time. The functions
//! are grouped by namespace, one file each: `http.*` (request and
//! response), `pool.*`/`connection.*`/`request.*`, and the general ones
//! (`string.*`, `array.*`, `hash.*`, `lang.*`, `json.*`, `sys.*`,
//! `log.*`, `data.*`, `event.*`, `rule.*`). docs/rules.md is the
//! reference; a test checks that every name here is documented there.

pub mod data;
pub mod general;
pub mod http;
pub mod route;
pub mod rtsp;
pub mod shaping;
pub mod text;

use super::value::Value;
use crate::proxy::own::OwnResponse;
use crate::proxy::txn::Txn;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The functions of byte-stream rules (generic protocols) only.
pub const STREAM_ONLY: [&str; 6] =
    ["request.get", "request.set", "request.getlength", "response.get", "response.set", "response.getlength"];

/// Which rules may call a function.
pub const REQUEST: u8 = 1;
pub const RESPONSE: u8 = 2;
pub const ANY: u8 = REQUEST | RESPONSE;

pub type Func = fn(&mut Call<'_, '_>) -> Result<Value, Fault>;

pub struct Builtin {
    /// Lower case, dotted.
    pub name: &'static str,
    pub min: u8,
    pub max: u8,
    /// [`REQUEST`], [`RESPONSE`] or both.
    pub phases: u8,
    /// Changes its first argument, which must be a variable.
    pub mutates: bool,
    pub f: Func,
}

/// A call in progress: the environment, the arguments, the captures.
pub struct Call<'c, 'e> {
    pub env: &'c mut Env<'e>,
    pub args: &'c mut [Value],
    pub captures: &'c mut [Value; 9],
}

/// Argument `i` of `args` as bytes, borrowed when it is a string.
pub fn arg_bytes(args: &[Value], i: usize) -> Result<std::borrow::Cow<'_, [u8]>, Fault> {
    match args.get(i) {
        None => Ok(std::borrow::Cow::Borrowed(&[])),
        Some(v) => v.to_bytes().map_err(|e| Fault::Error(format!("argument {}: {}", i + 1, e.0))),
    }
}

impl Call<'_, '_> {
    /// Argument `i`, or "" when not given.
    pub fn arg(&self, i: usize) -> Value {
        self.args.get(i).cloned().unwrap_or_default()
    }

    /// Argument `i` as bytes, borrowed when it is a string ("" when not
    /// given): for functions that only read their arguments.
    pub fn bytes_ref(&self, i: usize) -> Result<std::borrow::Cow<'_, [u8]>, Fault> {
        arg_bytes(self.args, i)
    }

    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, Fault> {
        match self.args.get(i) {
            None => Ok(Vec::new()),
            Some(v) => {
                v.to_bytes().map(|b| b.into_owned()).map_err(|e| Fault::Error(format!("argument {}: {}", i + 1, e.0)))
            }
        }
    }

    pub fn text(&self, i: usize) -> Result<String, Fault> {
        Ok(String::from_utf8_lossy(&self.bytes(i)?).into_owned())
    }

    /// The phase's whole body; waits for it when it is still coming, and
    /// is `None` when the message has none.
    pub fn body(&mut self) -> Result<Option<&mut Vec<u8>>, Fault> {
        if self.env.body.is_none() && self.env.body_coming {
            return Err(Fault::Wait(Pending::Body));
        }
        Ok(self.env.body.as_deref_mut())
    }

    pub fn int(&self, i: usize) -> Result<i64, Fault> {
        match self.args.get(i) {
            None => Ok(0),
            Some(v) => v.to_int().map_err(|e| Fault::Error(format!("argument {}: {}", i + 1, e.0))),
        }
    }

    /// The shard's view of the configuration generation the connection
    /// runs on.
    pub fn view(&self) -> Result<&std::rc::Rc<crate::runtime::shard::ShardView>, Fault> {
        if let Some(tx) = self.env.tx.as_deref() {
            return Ok(&tx.view);
        }
        match self.env.stream.as_deref() {
            Some(s) => Ok(&s.view),
            None => Err(Fault::Error("there is no connection here".into())),
        }
    }

    /// The HTTP transaction, or an error outside HTTP virtual servers.
    pub fn tx(&mut self) -> Result<&mut Txn, Fault> {
        self.env.tx.as_deref_mut().ok_or_else(|| Fault::Error("only on HTTP virtual servers".into()))
    }

    /// The byte stream's connection, or an error on HTTP virtual servers.
    pub fn stream(&mut self) -> Result<&mut Stream, Fault> {
        self.env.stream.as_deref_mut().ok_or_else(|| {
            Fault::Error("only on virtual servers of the generic protocols (HTTP rules use http.*)".into())
        })
    }

    /// The client's address and the address it connected to.
    pub fn addrs(&self) -> Result<(SocketAddr, SocketAddr), Fault> {
        if let Some(tx) = self.env.tx.as_deref() {
            return Ok((tx.client(), tx.conn.local));
        }
        match self.env.stream.as_deref() {
            Some(s) => Ok((s.client, s.local)),
            None => Err(Fault::Error("there is no connection here".into())),
        }
    }

    /// Where the connection is going: the shard's view, the virtual server,
    /// and the pool, node and address chosen so far (to change them).
    pub fn route(&mut self) -> Result<Route<'_>, Fault> {
        if let Some(tx) = self.env.tx.as_deref_mut() {
            let node = tx.node.and_then(|i| tx.view.pools.get(tx.pool)?.nodes.get(i)).map(|n| n.name.clone());
            return Ok(Route {
                view: &tx.view,
                vs: tx.vs,
                pool: &mut tx.pool,
                required_node: &mut tx.required_node,
                explicit_addr: Some(&mut tx.explicit_addr),
                node,
            });
        }
        match self.env.stream.as_deref_mut() {
            Some(s) => Ok(Route {
                view: &s.view,
                vs: s.vs,
                pool: &mut s.pool,
                required_node: &mut s.required_node,
                explicit_addr: None,
                node: s.node.clone(),
            }),
            None => Err(Fault::Error("there is no connection here".into())),
        }
    }
}

/// What [`Call::route`] gives.
pub struct Route<'a> {
    pub view: &'a std::rc::Rc<crate::runtime::shard::ShardView>,
    pub vs: usize,
    pub pool: &'a mut usize,
    pub required_node: &'a mut Option<usize>,
    /// `None` where an explicit address cannot be used (byte streams).
    pub explicit_addr: Option<&'a mut Option<SocketAddr>>,
    /// The node that served (its name as configured), once one did.
    pub node: Option<String>,
}

/// A connection of a generic protocol that rules run on (F1): where it
/// comes from, and where the rules send it.
pub struct Stream {
    pub view: std::rc::Rc<crate::runtime::shard::ShardView>,
    pub vs: usize,
    pub client: SocketAddr,
    pub local: SocketAddr,
    /// The pool the connection goes to (a rule may change it before the
    /// node is connected).
    pub pool: usize,
    /// The node a rule asked for (tried first).
    pub required_node: Option<usize>,
    /// The node connected to, once there is one.
    pub node: Option<String>,
    /// On an RTSP virtual server: the message exchange the rules run on.
    pub rtsp: Option<Box<crate::rtsp::exchange::Exchange>>,
}

/// How a function ends other than with a value.
#[derive(Debug)]
pub enum Fault {
    /// A runtime error: the rule stops, is logged and counted.
    Error(String),
    Stop(Stop),
    Wait(Pending),
}

/// How far a function's effect ends the processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// This rule (`rule.break()`); the next rule runs.
    Rule,
    /// Every remaining rule of this phase (`pool.use`, an answer).
    Phase,
    /// The connection closes now (`connection.close()`).
    Close,
}

/// Something a function must wait for; the module does it and resumes
/// the rule with its result.
#[derive(Debug)]
pub enum Pending {
    /// An HTTP subrequest (`http.request.get/post`).
    Http(Box<super::subrequest::Request>),
    /// The whole body of the phase's message: the call is made again once
    /// it is in ([`Env::body`]).
    Body,
    /// A place in a rate class's queue (`rate.use`): the rule resumes when
    /// its time comes.
    Rate(crate::shaping::rate::Ticket),
}

/// The phase a rule runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Request,
    Response,
}

/// What a rule can reach while it runs.
pub struct Env<'e> {
    /// The rule's name, for logs.
    pub rule: std::rc::Rc<str>,
    pub phase: Phase,
    /// The HTTP transaction (request and response heads, routing).
    pub tx: Option<&'e mut Txn>,
    /// Or the byte stream's connection (generic protocols).
    pub stream: Option<&'e mut Stream>,
    /// The whole body of the phase's message, when the rules read bodies
    /// (the request's in request rules, the response's in response rules);
    /// on a byte stream, the data just read from the client (request
    /// rules) or the node (response rules).
    pub body: Option<&'e mut Vec<u8>>,
    /// There is no `body` yet but one is coming: a function that needs it
    /// waits for it ([`Pending::Body`]).
    pub body_coming: bool,
    pub state: &'e mut State,
    pub shared: &'e Shared,
}

/// What the rules decide beyond the transaction's own fields, and keep
/// for the connection.
#[derive(Default)]
pub struct State {
    /// `connection.data`: per connection, bounded.
    pub conn_data: BTreeMap<Vec<u8>, Value>,
    /// An answer a rule made (`http.sendResponse`, `http.redirect`).
    pub respond: Option<Box<OwnResponse>>,
    /// Close the connection.
    pub close: bool,
    /// `request.retry()`: try the request on another node.
    pub retry: bool,
    /// The phase's body was replaced.
    pub body_changed: bool,
}

impl State {
    /// Forget what belongs to one request; keep what belongs to the
    /// connection.
    pub fn next_request(&mut self) {
        self.respond = None;
        self.close = false;
        self.retry = false;
        self.body_changed = false;
    }
}

/// Most keys, and bytes, that `connection.data` keeps per connection.
pub const CONN_DATA_KEYS: usize = 64;
pub const CONN_DATA_BYTES: usize = 64 * 1024;

/// What every rule on a shard shares: the process-wide data store, the
/// host name, and the shard's cache of compiled regular expressions.
pub struct Shared {
    pub data: std::sync::Arc<data::Store>,
    pub hostname: String,
    pub regex: std::cell::RefCell<text::RegexCache>,
}

impl Shared {
    pub fn new(data: std::sync::Arc<data::Store>) -> Shared {
        Shared { data, hostname: hostname(), regex: Default::default() }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The built-in named `lower` (lower case), or `None`.
pub fn lookup(lower: &str) -> Option<u16> {
    TABLE.iter().position(|b| b.name == lower).map(|i| i as u16)
}

const fn f(name: &'static str, min: u8, max: u8, phases: u8, f: Func) -> Builtin {
    Builtin { name, min, max, phases, mutates: false, f }
}

const fn m(name: &'static str, min: u8, max: u8, f: Func) -> Builtin {
    Builtin { name, min, max, phases: ANY, mutates: true, f }
}

/// Every built-in function (docs/rules.md has each with an example).
pub static TABLE: &[Builtin] = &[
    // http.* on the request
    f("http.getpath", 0, 0, ANY, http::get_path),
    f("http.cache.disable", 0, 0, ANY, http::cache_disable),
    f("http.cache.enable", 0, 0, ANY, http::cache_enable),
    f("http.cache.setkey", 1, 1, ANY, http::cache_setkey),
    f("http.compress.enable", 0, 0, ANY, http::compress_enable),
    f("http.compress.disable", 0, 0, ANY, http::compress_disable),
    f("http.setpath", 1, 1, REQUEST, http::set_path),
    f("http.getquerystring", 0, 0, ANY, http::get_query),
    f("http.setquerystring", 1, 1, REQUEST, http::set_query),
    f("http.getrawurl", 0, 0, ANY, http::get_raw_url),
    f("http.setrawurl", 1, 1, REQUEST, http::set_raw_url),
    f("http.geturl", 0, 0, ANY, http::get_raw_url),
    f("http.getmethod", 0, 0, ANY, http::get_method),
    f("http.setmethod", 1, 1, REQUEST, http::set_method),
    f("http.getversion", 0, 0, ANY, http::get_version),
    f("http.getheader", 1, 1, ANY, http::get_header),
    f("http.setheader", 2, 2, REQUEST, http::set_header),
    f("http.addheader", 2, 2, REQUEST, http::add_header),
    f("http.removeheader", 1, 1, REQUEST, http::remove_header),
    f("http.headerexists", 1, 1, ANY, http::header_exists),
    f("http.listheadernames", 0, 0, ANY, http::list_header_names),
    f("http.gethostheader", 0, 0, ANY, http::get_host),
    f("http.getcookie", 1, 1, ANY, http::get_cookie),
    f("http.setcookie", 2, 2, REQUEST, http::set_cookie),
    f("http.removecookie", 1, 1, REQUEST, http::remove_cookie),
    f("http.getformparam", 1, 1, ANY, http::get_form_param),
    f("http.getbody", 0, 1, REQUEST, http::get_body),
    f("http.setbody", 1, 1, REQUEST, http::set_body),
    f("http.redirect", 1, 1, ANY, http::redirect),
    f("http.changesite", 1, 1, ANY, http::change_site),
    f("http.sendresponse", 3, 4, ANY, http::send_response),
    f("http.request.get", 1, 3, ANY, http::request_get),
    f("http.request.post", 2, 4, ANY, http::request_post),
    // http.* on the response
    f("http.getresponseheader", 1, 1, RESPONSE, http::get_response_header),
    f("http.setresponseheader", 2, 2, RESPONSE, http::set_response_header),
    f("http.addresponseheader", 2, 2, RESPONSE, http::add_response_header),
    f("http.removeresponseheader", 1, 1, RESPONSE, http::remove_response_header),
    f("http.listresponseheadernames", 0, 0, RESPONSE, http::list_response_header_names),
    f("http.getresponsecode", 0, 0, RESPONSE, http::get_response_code),
    f("http.setresponsecode", 1, 1, RESPONSE, http::set_response_code),
    f("http.getresponsebody", 0, 1, RESPONSE, http::get_response_body),
    f("http.setresponsebody", 1, 1, RESPONSE, http::set_response_body),
    // rtsp.* (RTSP virtual servers)
    f("rtsp.getmethod", 0, 0, ANY, rtsp::get_method),
    f("rtsp.getrawurl", 0, 0, ANY, rtsp::get_raw_url),
    f("rtsp.getpath", 0, 0, ANY, rtsp::get_path),
    f("rtsp.getversion", 0, 0, ANY, rtsp::get_version),
    f("rtsp.setrawurl", 1, 1, REQUEST, rtsp::set_raw_url),
    f("rtsp.setpath", 1, 1, REQUEST, rtsp::set_path),
    f("rtsp.getrequestheader", 1, 1, ANY, rtsp::get_request_header),
    f("rtsp.setrequestheader", 2, 2, REQUEST, rtsp::set_request_header),
    f("rtsp.removerequestheader", 1, 1, REQUEST, rtsp::remove_request_header),
    f("rtsp.getsession", 0, 0, ANY, rtsp::get_session),
    f("rtsp.getresponsecode", 0, 0, RESPONSE, rtsp::get_response_code),
    f("rtsp.getresponseheader", 1, 1, RESPONSE, rtsp::get_response_header),
    f("rtsp.setresponseheader", 2, 2, RESPONSE, rtsp::set_response_header),
    f("rtsp.removeresponseheader", 1, 1, RESPONSE, rtsp::remove_response_header),
    f("rtsp.getresponsebody", 0, 0, RESPONSE, rtsp::get_response_body),
    f("rtsp.setresponsebody", 1, 1, RESPONSE, rtsp::set_response_body),
    f("rtsp.redirect", 1, 1, ANY, rtsp::redirect),
    f("rtsp.sendresponse", 1, 3, ANY, rtsp::send_response),
    // pool.*, connection.*, request.*
    f("pool.use", 1, 2, REQUEST, route::pool_use),
    f("pool.select", 1, 2, REQUEST, route::pool_select),
    f("pool.getname", 0, 0, ANY, route::pool_name),
    f("connection.getnode", 0, 0, ANY, route::get_node),
    f("connection.getpool", 0, 0, ANY, route::pool_name),
    f("connection.getvirtualserver", 0, 0, ANY, route::virtual_server),
    f("connection.data.set", 2, 2, ANY, route::conn_data_set),
    f("connection.data.get", 1, 1, ANY, route::conn_data_get),
    f("connection.setpersistence", 1, 1, REQUEST, route::set_persistence),
    f("connection.setpersistenceclass", 1, 1, REQUEST, route::set_persistence),
    f("connection.setpersistencekey", 1, 1, REQUEST, route::set_persistence_key),
    f("connection.setservicelevelclass", 1, 1, REQUEST, shaping::set_service_level),
    f("connection.getservicelevelclass", 0, 0, ANY, shaping::get_service_level),
    f("response.setbandwidthclass", 1, 1, ANY, shaping::set_bandwidth),
    f("connection.setbandwidthclass", 1, 1, ANY, shaping::set_bandwidth),
    f("connection.getbandwidthclass", 0, 0, ANY, shaping::get_bandwidth),
    f("rate.use", 1, 2, REQUEST, shaping::rate_use),
    f("rate.use.noqueue", 1, 2, REQUEST, shaping::rate_use_no_queue),
    f("rate.getbacklog", 1, 2, ANY, shaping::rate_backlog),
    f("slm.conforming", 1, 1, ANY, shaping::conforming),
    f("slm.state", 1, 1, ANY, shaping::state),
    f("connection.setidempotent", 1, 1, REQUEST, route::set_idempotent),
    f("connection.close", 0, 0, ANY, route::close),
    f("connection.discard", 0, 0, ANY, route::close),
    f("request.getremoteip", 0, 0, ANY, route::remote_ip),
    f("request.getremoteport", 0, 0, ANY, route::remote_port),
    f("request.getlocalip", 0, 0, ANY, route::local_ip),
    f("request.getdestip", 0, 0, ANY, route::local_ip),
    f("request.getlocalport", 0, 0, ANY, route::local_port),
    f("request.retry", 0, 0, RESPONSE, route::retry),
    f("request.get", 0, 1, REQUEST, route::stream_get),
    f("request.set", 1, 1, REQUEST, route::stream_set),
    f("request.getlength", 0, 0, REQUEST, route::stream_len),
    f("response.get", 0, 1, RESPONSE, route::stream_get),
    f("response.set", 1, 1, RESPONSE, route::stream_set),
    f("response.getlength", 0, 0, RESPONSE, route::stream_len),
    // string.*
    f("string.len", 1, 1, ANY, text::len),
    f("string.left", 2, 2, ANY, text::left),
    f("string.right", 2, 2, ANY, text::right),
    f("string.substring", 3, 3, ANY, text::substring),
    f("string.skip", 2, 2, ANY, text::skip),
    f("string.drop", 2, 2, ANY, text::drop),
    f("string.trim", 1, 1, ANY, text::trim),
    f("string.lowercase", 1, 1, ANY, text::lowercase),
    f("string.uppercase", 1, 1, ANY, text::uppercase),
    f("string.startswith", 2, 2, ANY, text::starts_with),
    f("string.endswith", 2, 2, ANY, text::ends_with),
    f("string.contains", 2, 2, ANY, text::contains),
    f("string.find", 2, 3, ANY, text::find),
    f("string.count", 2, 2, ANY, text::count),
    f("string.replace", 3, 3, ANY, text::replace),
    f("string.replaceall", 3, 3, ANY, text::replace_all),
    f("string.wildmatch", 2, 2, ANY, text::wildmatch),
    f("string.regexmatch", 2, 3, ANY, text::regex_match),
    f("string.regexsub", 3, 4, ANY, text::regex_sub),
    f("string.ipmaskmatch", 2, 2, ANY, text::ipmask_match),
    f("string.split", 1, 2, ANY, text::split),
    f("string.join", 1, 2, ANY, text::join),
    f("string.urlencode", 1, 1, ANY, text::url_encode),
    f("string.urldecode", 1, 1, ANY, text::url_decode),
    // array.*, hash.*, lang.*, json.*, sys.*, log.*, event.*, rule.*, data.*
    f("array.length", 1, 1, ANY, general::array_length),
    f("array.create", 1, 2, ANY, general::array_create),
    m("array.push", 2, 2, general::array_push),
    m("array.pop", 1, 1, general::array_pop),
    m("array.shift", 1, 1, general::array_shift),
    m("array.unshift", 2, 2, general::array_unshift),
    m("array.append", 2, 2, general::array_append),
    f("array.sort", 1, 1, ANY, general::array_sort),
    f("array.reverse", 1, 1, ANY, general::array_reverse),
    f("array.contains", 2, 2, ANY, general::array_contains),
    f("hash.keys", 1, 1, ANY, general::hash_keys),
    f("hash.values", 1, 1, ANY, general::hash_values),
    f("hash.contains", 2, 2, ANY, general::hash_contains),
    m("hash.delete", 2, 2, general::hash_delete),
    f("hash.count", 1, 1, ANY, general::array_length),
    f("lang.toint", 1, 1, ANY, general::to_int),
    f("lang.todouble", 1, 1, ANY, general::to_double),
    f("lang.tostring", 1, 1, ANY, general::to_string),
    f("lang.isarray", 1, 1, ANY, general::is_array),
    f("lang.ishash", 1, 1, ANY, general::is_hash),
    f("lang.typeof", 1, 1, ANY, general::type_of),
    f("json.serialize", 1, 1, ANY, general::json_serialize),
    f("json.deserialize", 1, 1, ANY, general::json_deserialize),
    f("sys.hostname", 0, 0, ANY, general::sys_hostname),
    f("sys.time", 0, 0, ANY, general::sys_time),
    f("sys.time.highres", 0, 0, ANY, general::sys_time_highres),
    f("log.info", 1, 1, ANY, general::log_info),
    f("log.warn", 1, 1, ANY, general::log_warn),
    f("log.error", 1, 1, ANY, general::log_error),
    f("event.emit", 1, 2, ANY, general::event_emit),
    f("rule.break", 0, 0, ANY, general::rule_break),
    f("data.set", 2, 2, ANY, data::set),
    f("data.get", 1, 1, ANY, data::get),
    f("data.remove", 1, 1, ANY, data::remove),
    f("data.reset", 0, 1, ANY, data::reset),
    f("data.getmemoryusage", 0, 0, ANY, data::memory_usage),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for b in TABLE {
            assert_eq!(b.name, b.name.to_ascii_lowercase(), "{}", b.name);
            assert!(seen.insert(b.name), "{} twice", b.name);
            assert!(b.min <= b.max);
        }
    }

    /// docs/rules.md names every function (the reference is complete).
    #[test]
    fn every_function_is_documented() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md")).unwrap();
        let lower = doc.to_ascii_lowercase();
        let missing: Vec<&str> = TABLE.iter().map(|b| b.name).filter(|n| !lower.contains(&format!("`{n}("))).collect();
        assert!(missing.is_empty(), "not in docs/rules.md: {missing:?}");
    }
}
