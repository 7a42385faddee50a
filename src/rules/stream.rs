//! Rules on the generic protocols' byte streams (F1). Request rules run
//! before the node is chosen (at connect for the server-first protocols
//! and `generic_streaming`, with no data yet; on the client's first data
//! for `client_first` and `server_first_banner`), so `pool.use` and
//! `pool.select` choose where the connection goes; with `rules_run =
//! "every"` they run again on every later read from the client. Response
//! rules run on the node's first data, or on every read with `every`.
//! `request.get`/`request.set` (`response.get`/`response.set`) read and
//! replace the data just read; `connection.close()` ends the connection.
//! A rule that waits (a subrequest) holds up its own direction of its own
//! connection only.

use super::builtins::{Phase, Shared, State, Stream};
use super::module::{run, Site};
use super::program::Program;
use super::vm::Budget;
use crate::util::baton::Baton;
use std::cell::Cell;
use std::rc::Rc;

/// One virtual server's byte-stream rules on one shard.
pub struct StreamRules {
    request: Vec<Rc<Program>>,
    response: Vec<Rc<Program>>,
    budget: Budget,
    shared: Rc<Shared>,
    /// `rules_run = "every"`.
    pub every: bool,
}

/// What the connection does after the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFlow {
    Continue,
    Close,
}

/// A connection's side of its rules: where it goes, and what
/// `connection.data` keeps.
pub struct StreamConn {
    pub stream: Stream,
    state: State,
}

impl StreamConn {
    pub fn new(stream: Stream) -> StreamConn {
        StreamConn { stream, state: State::default() }
    }
}

impl StreamRules {
    pub fn new(
        request: Vec<Rc<Program>>,
        response: Vec<Rc<Program>>,
        budget: Budget,
        shared: Rc<Shared>,
        every: bool,
    ) -> StreamRules {
        StreamRules { request, response, budget, shared, every }
    }

    /// Whether there are request (response) rules at all.
    pub fn has(&self, request: bool) -> bool {
        !self.rules(request).is_empty()
    }

    fn rules(&self, request: bool) -> &[Rc<Program>] {
        if request {
            &self.request
        } else {
            &self.response
        }
    }

    /// Whether the request (response) rules run on this read, the `runs`th
    /// of its direction (counted here).
    pub fn due(&self, runs: &Cell<u64>, request: bool) -> bool {
        runs.set(runs.get() + 1);
        !self.rules(request).is_empty() && (self.every || runs.get() == 1)
    }

    /// Run the request (response) rules on `data`: the bytes just read
    /// from the client (node), or none at connect.
    pub async fn run(&self, request: bool, conn: &mut StreamConn, data: &mut Vec<u8>) -> StreamFlow {
        let phase = if request { Phase::Request } else { Phase::Response };
        conn.state.next_request();
        let site = Site {
            tx: None,
            stream: Some(&mut conn.stream),
            body: Some(data),
            body_coming: false,
            suspend: None,
            state: &mut conn.state,
        };
        run(self.rules(request), None, self.budget, &self.shared, phase, site, |site| {
            if site.state.close {
                StreamFlow::Close
            } else {
                StreamFlow::Continue
            }
        })
        .get()
        .await
    }
}

/// The relay's view of a connection's rules. Both directions share the
/// connection's state; one direction's rules wait while the other's run
/// (which lasts only while those wait on something, a subrequest).
pub struct Filter<'a> {
    pub rules: &'a StreamRules,
    pub conn: &'a Baton<StreamConn>,
    /// Reads each direction's rules have seen: `[request, response]`.
    pub runs: &'a [Cell<u64>; 2],
}

impl Filter<'_> {
    /// Whether this direction's rules run on this read (counted).
    pub fn due(&self, request: bool) -> bool {
        self.rules.due(&self.runs[usize::from(!request)], request)
    }

    /// Run this direction's rules on `data`, once the other direction's
    /// are not running (the state is held, waits included).
    pub async fn apply(&self, request: bool, data: &mut Vec<u8>) -> StreamFlow {
        let mut conn = self.conn.take().await;
        self.rules.run(request, &mut conn, data).await
    }
}
