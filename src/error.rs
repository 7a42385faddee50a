//! The one error type of the HTTP request path: which side failed
//! (client, node, or shoal itself), what happened, the status the client
//! gets for it, and whether the request may go to another node. The
//! driver, the modules, the statistics and the access log all read the
//! same value: statistics count by [`Error::stat`], the access log's `%E`
//! writes [`Error::message`].

use crate::stats::VsError;

/// A failure on the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Client(ClientError),
    Node(NodeError),
    Shoal(ShoalError),
}

/// The client sent something invalid, was too slow, or went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// An invalid or over-limit request head (its status: 400, 408, 414,
    /// 417, 431, 505, …).
    BadHead {
        status: u16,
        reason: &'static str,
    },
    BodyTooLarge,
    BadChunkedBody,
    BodyTimeout,
    ClosedDuringBody,
    GoneDuringResponse,
    WriteFailed,
}

/// A node (or an explicit address) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeError {
    ConnectFailed,
    WriteFailed,
    ReplyTimeout,
    InvalidResponse,
    ClosedBeforeResponse,
    Reset,
    /// A reused keepalive connection closed before any response byte, and
    /// could not be retried on a fresh one.
    StaleConnection,
    /// The node answered 503 (C5 counts it as a failure).
    Answered503,
    /// A module judged the node's response a failure (its reason).
    Judged(&'static str),
    IdleDuringBody,
    BadChunkedResponse,
    ClosedDuringBody,
    ExplicitConnectFailed,
    ExplicitClosed,
}

/// shoal refused or could not place the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShoalError {
    /// No node could be tried at all.
    NoNode,
    /// Every usable node is at `max_connections_per_node`, and the queue
    /// was full or timed out.
    NodesFull,
    /// The session's node is unavailable and its class redirects or
    /// closes instead of moving it.
    PersistentNodeUnavailable,
    /// A request body larger than a body filter may hold (413).
    RequestOverFilterLimit,
    /// A response body larger than a body filter may hold (502).
    ResponseOverFilterLimit,
    /// A module refused the request or failed (its reason; the status is
    /// the module's response or 500).
    Module(&'static str),
}

/// Whether a request that failed this way may be sent to another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing reached the node: always.
    Always,
    /// The node may have acted on it: only if the request is retryable
    /// (idempotent method, no body, not marked otherwise).
    IfRetryable,
    Never,
}

impl Error {
    /// Which side failed, as the access log and statistics name it.
    pub fn side(&self) -> &'static str {
        match self {
            Error::Client(_) => "client",
            Error::Node(_) => "node",
            Error::Shoal(_) => "shoal",
        }
    }

    /// What the client gets for it (0: nothing, the connection closes).
    pub fn status(&self) -> u16 {
        match self {
            Error::Client(e) => match e {
                ClientError::BadHead { status, .. } => *status,
                ClientError::BodyTooLarge => 413,
                ClientError::BadChunkedBody => 400,
                ClientError::BodyTimeout => 408,
                ClientError::ClosedDuringBody | ClientError::GoneDuringResponse | ClientError::WriteFailed => 0,
            },
            Error::Node(e) => match e {
                NodeError::ReplyTimeout => 504,
                NodeError::Answered503 => 503,
                _ => 502,
            },
            Error::Shoal(e) => match e {
                ShoalError::NoNode | ShoalError::NodesFull => 503,
                ShoalError::PersistentNodeUnavailable => 302,
                ShoalError::RequestOverFilterLimit => 413,
                ShoalError::ResponseOverFilterLimit => 502,
                ShoalError::Module(_) => 500,
            },
        }
    }

    /// One line for logs and the access log's `%E`.
    pub fn message(&self) -> &'static str {
        match self {
            Error::Client(e) => match e {
                ClientError::BadHead { reason, .. } => reason,
                ClientError::BodyTooLarge => "request body larger than max_body_size",
                ClientError::BadChunkedBody => "invalid chunked request body",
                ClientError::BodyTimeout => "request body not received within client_idle_timeout",
                ClientError::ClosedDuringBody => "client closed during the request body",
                ClientError::GoneDuringResponse => "client went away during the response",
                ClientError::WriteFailed => "client write failed",
            },
            Error::Node(e) => match e {
                NodeError::ConnectFailed => "could not connect to a node",
                NodeError::WriteFailed => "write to node failed",
                NodeError::ReplyTimeout => "no reply within max_reply_time",
                NodeError::InvalidResponse => "invalid response from node",
                NodeError::ClosedBeforeResponse => "node closed the connection before a complete response",
                NodeError::Reset => "node connection reset",
                NodeError::StaleConnection => "node closed the connection",
                NodeError::Answered503 => "node answered 503",
                NodeError::Judged(why) => why,
                NodeError::IdleDuringBody => "node idle past server_idle_timeout during the response body",
                NodeError::BadChunkedResponse => "invalid chunked response body",
                NodeError::ClosedDuringBody => "node closed during the response body",
                NodeError::ExplicitConnectFailed => "could not connect to the explicit address",
                NodeError::ExplicitClosed => "the explicit address closed the connection",
            },
            Error::Shoal(e) => match e {
                ShoalError::NoNode => "no node available",
                ShoalError::NodesFull => "every node at max_connections_per_node (queue full or queue_timeout)",
                ShoalError::PersistentNodeUnavailable => "persistent node unavailable",
                ShoalError::RequestOverFilterLimit => "request body larger than a body filter's limit",
                ShoalError::ResponseOverFilterLimit => "response body larger than a body filter's limit",
                ShoalError::Module(why) => why,
            },
        }
    }

    /// May the request go to another node after this?
    pub fn retry(&self) -> Retry {
        match self {
            Error::Node(NodeError::ConnectFailed) => Retry::Always,
            Error::Node(
                NodeError::IdleDuringBody
                | NodeError::BadChunkedResponse
                | NodeError::ClosedDuringBody
                | NodeError::ExplicitConnectFailed
                | NodeError::ExplicitClosed,
            ) => Retry::Never,
            Error::Node(_) => Retry::IfRetryable,
            Error::Client(_) | Error::Shoal(_) => Retry::Never,
        }
    }

    /// Whether the node is to blame (counts towards marking it failed).
    pub fn is_node_failure(&self) -> bool {
        matches!(self, Error::Node(_))
    }

    /// The statistics counter this error goes to.
    pub fn stat(&self) -> VsError {
        match self {
            Error::Client(
                ClientError::ClosedDuringBody | ClientError::GoneDuringResponse | ClientError::WriteFailed,
            ) => VsError::ClientAbort,
            Error::Client(_) => VsError::BadRequest,
            Error::Node(_) => VsError::NodeFailure,
            Error::Shoal(
                ShoalError::Module(_) | ShoalError::RequestOverFilterLimit | ShoalError::ResponseOverFilterLimit,
            ) => VsError::Module,
            Error::Shoal(_) => VsError::NoNode,
        }
    }
}

impl From<crate::http::HttpError> for Error {
    fn from(e: crate::http::HttpError) -> Self {
        Error::Client(ClientError::BadHead { status: e.status, reason: e.reason })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} side)", self.message(), self.side())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let connect = Error::Node(NodeError::ConnectFailed);
        assert_eq!((connect.status(), connect.retry(), connect.stat()), (502, Retry::Always, VsError::NodeFailure));
        let timeout = Error::Node(NodeError::ReplyTimeout);
        assert_eq!((timeout.status(), timeout.retry()), (504, Retry::IfRetryable));
        let gone = Error::Client(ClientError::GoneDuringResponse);
        assert_eq!((gone.status(), gone.stat(), gone.side()), (0, VsError::ClientAbort, "client"));
        let head: Error = crate::http::HttpError::new(431, "request head too large").into();
        assert_eq!((head.status(), head.stat(), head.message()), (431, VsError::BadRequest, "request head too large"));
        assert_eq!(Error::Shoal(ShoalError::NoNode).stat(), VsError::NoNode);
        assert_eq!(Error::Shoal(ShoalError::Module("x")).stat(), VsError::Module);
    }
}
