//! Syslog (RFC 5424) over UDP or a Unix datagram socket (`/dev/log`):
//! one datagram per event, its severity from the event's level, the
//! event's type as the message id and its section and tags as
//! structured data.

use super::{Action, Outcome};
use crate::config::model::SyslogTarget;
use crate::events::{Event, Level};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;

pub struct Syslog {
    target: SyslogTarget,
    facility: u8,
    udp: Option<UdpSocket>,
    unix: Option<UnixDatagram>,
    host: String,
}

impl Syslog {
    pub fn new(target: SyslogTarget, facility: u8) -> Result<Syslog, String> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "-".into());
        Ok(Syslog { target, facility, udp: None, unix: None, host })
    }
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` escaped in a parameter value.
fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]")
}

/// The datagram for `ev`.
pub fn message(ev: &Event, facility: u8, host: &str) -> String {
    let severity = match ev.level {
        Level::Info => 6,
        Level::Warning => 4,
        Level::Serious => 2,
        Level::Fatal => 1,
    };
    let mut sd = format!(
        "[shoal@32473 level=\"{}\" section=\"{}\" tag=\"{}\"",
        ev.level.name(),
        sd_escape(&ev.section),
        sd_escape(&ev.tag)
    );
    for t in &ev.tags {
        sd += &format!(" tags=\"{}\"", sd_escape(t));
    }
    sd.push(']');
    format!(
        "<{}>1 {} {host} shoal {} {} {sd} {}",
        u32::from(facility) * 8 + severity,
        crate::log::access::format_rfc3339(ev.time),
        std::process::id(),
        ev.kind,
        ev.text
    )
}

impl Action for Syslog {
    fn deliver(&mut self, ev: &Event) -> Outcome {
        let msg = message(ev, self.facility, &self.host);
        let sent = match &self.target {
            SyslogTarget::Udp(addr) => {
                if self.udp.is_none() {
                    let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    match UdpSocket::bind(bind) {
                        Ok(s) => self.udp = Some(s),
                        Err(e) => return Outcome::Retry(format!("cannot open a UDP socket: {e}")),
                    }
                }
                self.udp.as_ref().map(|s| s.send_to(msg.as_bytes(), addr))
            }
            SyslogTarget::Unix(path) => {
                if self.unix.is_none() {
                    match UnixDatagram::unbound() {
                        Ok(s) => self.unix = Some(s),
                        Err(e) => return Outcome::Retry(format!("cannot open a Unix socket: {e}")),
                    }
                }
                self.unix.as_ref().map(|s| s.send_to(msg.as_bytes(), path))
            }
        };
        match sent {
            Some(Ok(_)) => Outcome::Done,
            Some(Err(e)) => {
                self.unix = None;
                Outcome::Retry(format!("syslog: {e}"))
            }
            None => Outcome::Retry("syslog: no socket".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_form() {
        let ev = Event::new(&crate::events::catalogue::NODE_DOWN, "pools/w\"eb", "Node down").tag("10.0.0.1:80");
        let m = message(&ev, 3, "edge1");
        assert!(m.starts_with("<28>1 "), "{m}");
        assert!(m.contains(" edge1 shoal "), "{m}");
        assert!(m.contains(" node.down [shoal@32473 level=\"WARNING\" section=\"pools/w\\\"eb\" tag=\"nodefail\" tags=\"10.0.0.1:80\"] Node down"), "{m}");
    }
}
