//! The event types shoal raises: each with its level and primary tag (the
//! source's short names where it had one). docs/events.md lists them with
//! their sections and tags; a rule's `event.emit` raises `rule.custom`
//! with a name of its own as the primary tag.

use super::Level;

/// An event type.
#[derive(Debug)]
pub struct Kind {
    pub name: &'static str,
    pub level: Level,
    pub tag: &'static str,
    /// What it means, for the documentation and `shoal check`.
    pub what: &'static str,
}

macro_rules! kinds {
    ($($id:ident = $name:literal, $level:ident, $tag:literal, $what:literal;)*) => {
        $(pub static $id: Kind = Kind { name: $name, level: Level::$level, tag: $tag, what: $what };)*
        /// Every type, in the documentation's order.
        pub static ALL: &[&Kind] = &[$(&$id),*];
    };
}

kinds! {
    NODE_DOWN = "node.down", Warning, "nodefail", "a monitor or passive health marked a node down (the reason in the text)";
    NODE_UP = "node.up", Info, "nodeworking", "a node is back in service";
    POOL_DOWN = "pool.down", Serious, "pooldied", "no node of a pool can take traffic";
    POOL_UP = "pool.up", Info, "poolok", "a pool that had no working node has one again";
    PERSISTENCE_FAILED = "persistence.failed", Warning, "persistfail", "a session's node could not be used and the class's failure mode answered (redirect or close)";
    SLM_WARNING = "slm.warning", Warning, "slmclasswarn", "a service level class fell below its warning percentage";
    SLM_SERIOUS = "slm.serious", Serious, "slmclassfail", "a service level class fell below its serious percentage";
    SLM_OK = "slm.ok", Info, "slmclassok", "a service level class conforms again";
    CONFIG_APPLIED = "config.applied", Info, "confok", "a configuration generation was applied";
    CONFIG_REFUSED = "config.refused", Serious, "confrefused", "a configuration was refused (the loader's file:line message in the text); the running one stays";
    CERT_EXPIRING = "tls.cert_expiring", Warning, "certexpiring", "a certificate in the configuration expires within the configured number of days";
    RULE_ERROR = "rule.error", Warning, "ruleerror", "a rule failed at run time or was cut off by its budget (at most one a second per rule)";
    RULE_CUSTOM = "rule.custom", Info, "custom", "a rule raised an event with event.emit (its name is the primary tag)";
    RATE_OVERFLOW = "rate.overflow", Warning, "ratequeuefull", "a rate class refused requests: its queue was full or their wait too long (at most one a second per class)";
    AUTOSCALE_ACTION = "autoscale.action", Info, "autoscale", "an autoscaled pool added or removed a node";
    AUTOSCALE_ERROR = "autoscale.error", Serious, "autoscalefail", "an autoscaling driver failed; autoscaling pauses for its credentials";
    CLUSTER_ETCD_LOST = "cluster.etcd_lost", Serious, "etcdlost", "this member lost etcd: it keeps serving its last configuration and its traffic IPs until etcd is back";
    CLUSTER_ETCD_BACK = "cluster.etcd_back", Info, "etcdback", "this member reached etcd again (or first) and caught up with the cluster's configuration";
    CLUSTER_MEMBER_JOINED = "cluster.member_joined", Info, "machineok", "a member joined the cluster (its lease appeared)";
    CLUSTER_MEMBER_LEFT = "cluster.member_left", Warning, "machinefail", "a member left the cluster: it stopped, or its lease expired";
    TIP_RAISED = "cluster.tip_raised", Info, "flipperraiselocal", "this member raised a traffic IP address";
    TIP_LOWERED = "cluster.tip_lowered", Info, "flipperdroplocal", "this member lowered a traffic IP address";
    TIP_ERROR = "cluster.tip_error", Serious, "flipperfail", "a traffic IP address could not be raised, lowered or filtered (the command's error in the text)";
    PROCESS_TROUBLE = "process.trouble", Fatal, "fatal", "the monitor thread could not start, or a shard panicked";
}

/// The catalogued type named `name`.
pub fn find(name: &str) -> Option<&'static Kind> {
    ALL.iter().copied().find(|k| k.name == name)
}
