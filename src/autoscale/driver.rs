//! The driver contract of the source product's autoscaling (J1): a
//! program run as `DRIVER ACTION --cloudcreds=NAME [--key=value]…` for
//! the actions `status`, `createnode`, `destroynode`, `listimageids` and
//! `listsizeids`, which answers one JSON object on standard output
//! (`{"NodeStatusResponse": {"version": 1, "code": 200, "nodes": […]}}`,
//! `CreateNodeResponse`, `DestroyNodeResponse`). A `code` of 400 or more,
//! anything on standard error, an exit status other than 0, no answer
//! within the timeout, or output that is not such an object is an error.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A node as a driver describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverNode {
    /// `uniq_id` (an integer or a string in the JSON).
    pub id: String,
    pub name: String,
    pub status: String,
    pub private_ip: String,
    pub public_ip: String,
    /// Unix time; 0 when the cloud does not say.
    pub created: u64,
    pub imageid: String,
    /// Percent of its creation done.
    pub complete: u64,
}

/// What an answer says: its code and nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u64,
    pub nodes: Vec<DriverNode>,
}

/// Largest answer read (a driver's listing of a whole cloud is bounded).
const MAX_OUTPUT: u64 = 4 << 20;

/// Run `driver action --cloudcreds=creds --k=v…` and read its answer.
pub fn call(
    driver: &Path,
    action: &str,
    creds: &str,
    opts: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answer, String> {
    let mut cmd = Command::new(driver);
    cmd.arg(action).arg(format!("--cloudcreds={creds}"));
    for (k, v) in opts {
        cmd.arg(format!("--{k}={v}"));
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", driver.display()))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        let _ = (&mut out).take(MAX_OUTPUT).read_to_end(&mut o);
        o
    });
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        let _ = (&mut err).take(64 * 1024).read_to_end(&mut e);
        e
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} {action}: no answer within {timeout:?}", driver.display()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{} {action}: {e}", driver.display())),
        }
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !stderr.is_empty() {
        return Err(format!("{} {action}: {}", driver.display(), String::from_utf8_lossy(&stderr).trim()));
    }
    if !status.success() {
        return Err(format!("{} {action}: exited with {status}", driver.display()));
    }
    let answer = parse(&stdout).map_err(|e| format!("{} {action}: {e}", driver.display()))?;
    if answer.code >= 400 {
        return Err(format!("{} {action}: answered code {}", driver.display(), answer.code));
    }
    Ok(answer)
}

/// An answer's JSON: one `…Response` object with `code` and `nodes`.
pub fn parse(out: &[u8]) -> Result<Answer, String> {
    let v: serde_json::Value = serde_json::from_slice(out).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().filter(|o| o.len() == 1).ok_or("expected one …Response object")?;
    let (name, body) = obj.iter().next().expect("one entry");
    if !name.ends_with("Response") {
        return Err(format!("expected a …Response object, found {name:?}"));
    }
    let code = body["code"].as_u64().ok_or("no integer code")?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let nodes = body["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| DriverNode {
                    id: text(&n["uniq_id"]),
                    name: text(&n["name"]),
                    status: text(&n["status"]),
                    private_ip: text(&n["private_ip"]),
                    public_ip: text(&n["public_ip"]),
                    created: n["created"].as_u64().unwrap_or(0),
                    imageid: text(&n["imageid"]),
                    complete: n["complete"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Answer { code, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_contract_examples_parse() {
        let a = parse(
            br#"{"NodeStatusResponse": {"version":1, "code":200, "nodes":[
                {"sizeid":1, "status":"active", "name":"webserver0", "public_ip":"174.143.153.20",
                 "created":1274688003, "uniq_id":100768, "private_ip":"10.177.1.212", "imageid":"apache_xxl", "complete":100}]}}"#,
        )
        .unwrap();
        assert_eq!(a.code, 200);
        assert_eq!(
            (a.nodes[0].id.as_str(), a.nodes[0].private_ip.as_str(), a.nodes[0].created, a.nodes[0].complete),
            ("100768", "10.177.1.212", 1274688003, 100)
        );
        assert_eq!(parse(br#"{"CreateNodeResponse": {"version":1, "code":202, "nodes":[]}}"#).unwrap().code, 202);
        assert!(parse(b"nope").is_err());
        assert!(parse(br#"{"a":1,"b":2}"#).is_err());
        assert!(parse(br#"{"NodeStatusResponse": {"version":1}}"#).is_err());
    }
}
