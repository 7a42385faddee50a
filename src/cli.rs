//! The `shoal` command line: parse arguments, load and validate the
//! configuration, hand it to the runtime. No policy lives here. It is in
//! the library so that a program embedding shoal with modules of its own
//! ([`crate::proxy::module::Modules`]) gets the same command line by
//! calling [`main`].

use crate::config::{self, raw::Algorithm, raw::Protocol};
use crate::proxy::module::Modules;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
shoal — shard-per-core layer-7 traffic manager

USAGE:
  shoal run [-c FILE] [--log-level LEVEL]
      Run the configuration in FILE, or the embedded default (a demo
      virtual server on 127.0.0.1:8080 over three built-in demo nodes).
  shoal check -c FILE
      Validate FILE and print a summary; exit 0 if valid, 1 if not.
  shoal proxy --listen ADDR --to NODE[,NODE...] [--protocol NAME]
              [--algorithm NAME] [--shards N] [--log-level LEVEL]
              [--tls-cert FILE --tls-key FILE]
              [--request-rule FILE]... [--response-rule FILE]...
              [--cache SIZE [--cache-dir DIR --cache-disk SIZE]]
              [--bandwidth RATE] [--compress] [--h2c]
      Run one virtual server with no configuration file.
      Protocols: http, server_first, client_first, server_first_banner
      (needs --banner TEXT), generic_streaming [default], ssl_passthrough.
      --tls-cert/--tls-key: terminate TLS on the listener with this
      certificate chain and key (PEM); http offers h2 and http/1.1 by
      ALPN (docs/http2.md).
      --h2c: also accept cleartext HTTP/2 with prior knowledge (http
      without TLS only).
      --request-rule/--response-rule: run the rule in FILE on each
      request (response), in the order given (http only; docs/rules.md).
      --cache SIZE: cache responses in SIZE of memory (512MiB, 2GiB; http
      only; docs/cache.md), with the [cache] defaults otherwise;
      --cache-dir/--cache-disk add the disk tier: files in DIR, up to
      SIZE, kept across restarts.
      --bandwidth RATE: send each response at most at RATE (50Mbit,
      1Gbit; http only; docs/shaping.md).
      --compress: compress text responses with zstd, brotli or gzip for
      clients that accept them, with the [compression] defaults (http
      only; docs/shaping.md).
      Algorithms: round_robin [default], weighted_round_robin, random,
      least_connections, weighted_least_connections.
  shoal rules show NAME -c FILE
      Print rule NAME of FILE's configuration as a script of the rule
      language: a declarative rule as the script it runs, another as
      written.
  shoal passwd
      Read a password from standard input and print its hash, for the
      users of the configuration's [api] section.
  shoal node (drain|disable|enable) NODE [--pool NAME]... [--api URL]
             [--user NAME:PASSWORD]
      Set NODE (host:port as configured) draining, disabled or active in
      every pool that has it (or only the --pool ones) through a running
      shoal's REST API [--api http://127.0.0.1:9070]; credentials from
      --user or the SHOAL_API_USER environment variable.
  shoal print-default
      Print the embedded default configuration.
  shoal version

Stop with SIGTERM or Ctrl-C: accepting stops and open connections get
global.shutdown_timeout to finish. See docs/configuration.md.
";

/// Run the `shoal` command line with `modules` added to the built-in
/// modules of every generation.
pub fn main(modules: Modules) -> ExitCode {
    match real_main(modules) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shoal: {e}");
            ExitCode::from(1)
        }
    }
}

enum Cmd {
    Run { file: Option<PathBuf> },
    Check { file: PathBuf },
    RulesShow { file: PathBuf, name: String },
    Proxy(Box<Quick>),
    PrintDefault,
    Passwd,
    Node { action: String, node: String, pools: Vec<String>, api: String, user: Option<String> },
    Version,
    Help,
}

#[derive(Default)]
struct Quick {
    listen: Option<String>,
    to: Vec<String>,
    protocol: Option<String>,
    algorithm: Option<String>,
    shards: Option<usize>,
    banner: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    request_rules: Vec<String>,
    response_rules: Vec<String>,
    cache: Option<String>,
    cache_dir: Option<String>,
    cache_disk: Option<String>,
    bandwidth: Option<String>,
    compress: bool,
    h2c: bool,
}

fn parse_args() -> Result<(Cmd, Option<log::LevelFilter>), String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let sub = match p.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => v.string().map_err(|e| e.to_string())?,
        Some(Long("help")) | Some(Short('h')) | None => return Ok((Cmd::Help, None)),
        Some(Long("version")) | Some(Short('V')) => return Ok((Cmd::Version, None)),
        Some(a) => return Err(format!("{}\n\n{USAGE}", a.unexpected())),
    };
    let mut file = None;
    let mut level = None;
    let mut q = Quick::default();
    let (mut positional, mut pools, mut api, mut user) = (Vec::new(), Vec::new(), None, None);
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        let val = |p: &mut lexopt::Parser| -> Result<String, String> {
            p.value().map_err(|e| e.to_string())?.string().map_err(|e| e.to_string())
        };
        match arg {
            Short('c') | Long("config") => file = Some(PathBuf::from(val(&mut p)?)),
            Long("log-level") => {
                let v = val(&mut p)?;
                level = Some(crate::logging::parse_level(&v).ok_or_else(|| format!("unknown log level \"{v}\""))?);
            }
            Long("listen") => q.listen = Some(val(&mut p)?),
            Long("to") => {
                q.to.extend(val(&mut p)?.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from))
            }
            Long("protocol") => q.protocol = Some(val(&mut p)?),
            Long("algorithm") => q.algorithm = Some(val(&mut p)?),
            Long("banner") => q.banner = Some(val(&mut p)?),
            Long("tls-cert") => q.tls_cert = Some(val(&mut p)?),
            Long("tls-key") => q.tls_key = Some(val(&mut p)?),
            Long("request-rule") => q.request_rules.push(val(&mut p)?),
            Long("response-rule") => q.response_rules.push(val(&mut p)?),
            Long("cache") => q.cache = Some(val(&mut p)?),
            Long("cache-dir") => q.cache_dir = Some(val(&mut p)?),
            Long("cache-disk") => q.cache_disk = Some(val(&mut p)?),
            Long("bandwidth") => q.bandwidth = Some(val(&mut p)?),
            Long("compress") => q.compress = true,
            Long("h2c") => q.h2c = true,
            Long("shards") => q.shards = Some(val(&mut p)?.parse().map_err(|_| "--shards takes a number".to_string())?),
            Long("pool") => pools.push(val(&mut p)?),
            Long("api") => api = Some(val(&mut p)?),
            Long("user") => user = Some(val(&mut p)?),
            Value(v) if sub == "node" || sub == "rules" => positional.push(v.string().map_err(|e| e.to_string())?),
            Short('h') | Long("help") => return Ok((Cmd::Help, None)),
            a => return Err(format!("{}\n\n{USAGE}", a.unexpected())),
        }
    }
    let cmd = match sub.as_str() {
        "run" => Cmd::Run { file },
        "check" => Cmd::Check { file: file.ok_or("check needs -c FILE")? },
        "proxy" => Cmd::Proxy(Box::new(q)),
        "rules" => match positional.as_slice() {
            [show, name] if show == "show" => {
                Cmd::RulesShow { file: file.ok_or("rules show needs -c FILE")?, name: name.clone() }
            }
            _ => return Err(format!("expected: rules show NAME -c FILE\n\n{USAGE}")),
        },
        "print-default" => Cmd::PrintDefault,
        "passwd" => Cmd::Passwd,
        "node" => match positional.as_slice() {
            [action, node] => Cmd::Node {
                action: action.clone(),
                node: node.clone(),
                pools,
                api: api.unwrap_or_else(|| "http://127.0.0.1:9070".into()),
                user,
            },
            _ => return Err(format!("node needs an action and a node\n\n{USAGE}")),
        },
        "version" => Cmd::Version,
        "help" => Cmd::Help,
        other => return Err(format!("unknown command \"{other}\"\n\n{USAGE}")),
    };
    Ok((cmd, level))
}

fn real_main(modules: Modules) -> Result<ExitCode, String> {
    let (cmd, level) = parse_args()?;
    let cfg = match cmd {
        Cmd::Help => {
            print!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Version => {
            println!("shoal {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::PrintDefault => {
            print!("{}", config::EMBEDDED_DEFAULT);
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Passwd => {
            // On a terminal: a prompt, and the password not echoed. From a
            // pipe (scripts): one line.
            let line = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                rpassword::prompt_password("Password: ").map_err(|e| format!("cannot read the password: {e}"))?
            } else {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
                line
            };
            let pw = line.trim_end_matches(['\r', '\n']);
            if pw.is_empty() {
                return Err("the password is empty".into());
            }
            println!("{}", crate::api::auth::hash_password(pw));
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Node { action, node, pools, api, user } => return node_command(&action, &node, &pools, &api, user),
        Cmd::Check { file } => {
            return match config::load_file(&file) {
                Ok(c) => {
                    print!("{}", c.summary());
                    println!("configuration OK");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(1))
                }
            };
        }
        Cmd::RulesShow { file, name } => {
            let c = config::load_file(&file).map_err(|e| e.to_string())?;
            let rule = c.rules.iter().find(|r| r.name == name).ok_or_else(|| {
                let names: Vec<&str> = c.rules.iter().map(|r| r.name.as_str()).collect();
                format!(
                    "no rule named \"{name}\" (defined: {})",
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                )
            })?;
            use std::io::Write;
            std::io::stdout().write_all(&rule.source).map_err(|e| e.to_string())?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Run { file: Some(f) } => {
            let cfg = config::load_file(&f).map_err(|e| e.to_string())?;
            if cfg.cluster.is_some() {
                // Logging first: the cluster's start says what it found.
                crate::logging::init(level.unwrap_or(cfg.global.log_level));
                crate::cluster::start(&f, cfg)?
            } else {
                cfg
            }
        }
        Cmd::Run { file: None } => config::embedded_default(),
        Cmd::Proxy(q) => quick_config(*q)?,
    };
    crate::logging::init(level.unwrap_or(cfg.global.log_level));
    for line in cfg.summary().lines() {
        log::info!("{line}");
    }
    crate::runtime::run(cfg, modules, |control| {
        crate::api::start(&control)?;
        crate::cluster::attach(control);
        Ok(())
    })?;
    crate::cluster::leave();
    Ok(ExitCode::SUCCESS)
}

/// `shoal node ACTION NODE`: one PUT to the API's node resource.
fn node_command(
    action: &str,
    node: &str,
    pools: &[String],
    api: &str,
    user: Option<String>,
) -> Result<ExitCode, String> {
    let state = match action {
        "drain" => "draining",
        "disable" => "disabled",
        "enable" => "active",
        other => return Err(format!("unknown node action \"{other}\" (drain, disable, enable)")),
    };
    let user = user
        .or_else(|| std::env::var("SHOAL_API_USER").ok())
        .ok_or("give the API credentials with --user NAME:PASSWORD or SHOAL_API_USER")?;
    let mut body = format!("{{\"state\":\"{state}\"");
    if !pools.is_empty() {
        let list: Vec<String> = pools.iter().map(|p| format!("{p:?}")).collect();
        body.push_str(&format!(",\"pools\":[{}]", list.join(",")));
    }
    body.push('}');
    let path = crate::api::routes::encode(node);
    let (status, text) = crate::api::client::request(
        api,
        &user,
        "PUT",
        &format!("/api/tm/{}/nodes/{path}", crate::api::routes::VERSION),
        &body,
    )?;
    print!("{text}");
    Ok(if status == 200 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Build quick mode's configuration as TOML text and load it through the
/// same validation a file gets.
fn quick_config(q: Quick) -> Result<config::Config, String> {
    let listen = q.listen.ok_or("proxy needs --listen ADDR")?;
    if q.to.is_empty() {
        return Err("proxy needs --to NODE[,NODE...]".into());
    }
    let protocol = q.protocol.unwrap_or_else(|| "generic_streaming".into());
    if Protocol::parse(&protocol).is_none() {
        return Err(format!("unknown protocol \"{protocol}\" (expected one of: {})", Protocol::NAMES.join(", ")));
    }
    let algorithm = q.algorithm.unwrap_or_else(|| "round_robin".into());
    if Algorithm::parse(&algorithm).is_none() {
        return Err(format!("unknown algorithm \"{algorithm}\" (expected one of: {})", Algorithm::NAMES.join(", ")));
    }
    let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let nodes: Vec<String> = q.to.iter().map(|n| s(n)).collect();
    let mut t = String::new();
    if let Some(n) = q.shards {
        t += &format!("[global]\nshards = {n}\n\n");
    }
    t += &format!("[virtual_servers.proxy]\nlisten = {}\nprotocol = {}\npool = \"proxy\"\n", s(&listen), s(&protocol));
    if let Some(b) = &q.banner {
        t += &format!("banner = {}\n", s(b));
    }
    let named =
        |kind: &str, files: &[String]| -> Vec<String> { (1..=files.len()).map(|i| format!("{kind}-{i}")).collect() };
    let (req, resp) = (named("request", &q.request_rules), named("response", &q.response_rules));
    if !req.is_empty() {
        t += &format!("request_rules = [{}]\n", req.iter().map(|n| s(n)).collect::<Vec<_>>().join(", "));
    }
    if !resp.is_empty() {
        t += &format!("response_rules = [{}]\n", resp.iter().map(|n| s(n)).collect::<Vec<_>>().join(", "));
    }
    if q.cache.is_some() {
        t += "cache = true\n";
    }
    if q.bandwidth.is_some() {
        t += "bandwidth_class = \"proxy\"\n";
    }
    match (&q.tls_cert, &q.tls_key) {
        (Some(c), Some(k)) => {
            t += &format!("\n[virtual_servers.proxy.tls]\ncertificates = [{{ cert = {}, key = {} }}]\n", s(c), s(k))
        }
        (None, None) => {}
        _ => return Err("--tls-cert and --tls-key go together".into()),
    }
    if q.compress {
        t += "\n[virtual_servers.proxy.compression]\n";
    }
    let http = protocol == "http";
    if q.h2c && (!http || q.tls_cert.is_some()) {
        return Err("--h2c is cleartext HTTP/2: it needs --protocol http and no --tls-cert".into());
    }
    if http && (q.h2c || q.tls_cert.is_some()) {
        t += &format!("\n[virtual_servers.proxy.http2]\nh2c = {}\n", q.h2c);
    }
    t += &format!("\n[pools.proxy]\nalgorithm = {}\nnodes = [{}]\n", s(&algorithm), nodes.join(", "));
    for (name, file) in req.iter().zip(&q.request_rules).chain(resp.iter().zip(&q.response_rules)) {
        t += &format!("\n[rules.{name}]\nfile = {}\n", s(file));
    }
    if let Some(size) = &q.cache {
        config::raw::Size::parse(size).map_err(|e| format!("--cache: {e}"))?;
        t += &format!("\n[cache]\nmemory = {}\n", s(size));
        match (&q.cache_dir, &q.cache_disk) {
            (Some(dir), Some(disk)) => {
                config::raw::Size::parse(disk).map_err(|e| format!("--cache-disk: {e}"))?;
                // Relative to where shoal runs, as a command-line path is.
                let dir = std::path::absolute(dir).map_err(|e| format!("--cache-dir: {e}"))?;
                t += &format!("disk_dir = {}\ndisk_size = {}\n", s(&dir.to_string_lossy()), s(disk));
            }
            (None, None) => {}
            _ => return Err("--cache-dir and --cache-disk go together".into()),
        }
    } else if q.cache_dir.is_some() || q.cache_disk.is_some() {
        return Err("--cache-dir and --cache-disk need --cache SIZE".into());
    }
    if let Some(rate) = &q.bandwidth {
        crate::shaping::bandwidth::parse_rate(rate).map_err(|e| format!("--bandwidth: {e}"))?;
        t += &format!("\n[bandwidth_classes.proxy]\nmax_rate = {}\nper_connection = true\n", s(rate));
    }
    const NAME: &str = "<command line>";
    config::load_str(&t, NAME).map_err(|e| {
        if e.file != NAME {
            // An error in a rule file: its file:line:column.
            return e.to_string();
        }
        e.message.clone() + &e.key.map(|k| format!(" ({k})")).unwrap_or_default()
    })
}
