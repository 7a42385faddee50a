//! Building a shard's monoio runtime on the thread that will drive it.
//!
//! Preference order, each tried only if the previous one is refused:
//! 1. io_uring with DEFER_TASKRUN | SINGLE_ISSUER (kernel ≥ 6.1): completions
//!    are processed only when the shard enters the kernel, so a busy shard is
//!    never interrupted per completion;
//! 2. io_uring with COOP_TASKRUN | TASKRUN_FLAG (kernel ≥ 5.19);
//! 3. plain io_uring (every completion raises an inter-processor interrupt:
//!    about twice the CPU per request, measured in DESIGN.md);
//! 4. monoio's epoll driver, when io_uring is unavailable (old kernel, or a
//!    container seccomp profile that blocks io_uring_setup).
//!
//! `SHOAL_RING=defer|coop|plain|epoll` forces a starting point, for
//! measurements and for testing the fallbacks.

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};
use std::io;

pub type ShardRuntime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMode {
    DeferTaskrun,
    CoopTaskrun,
    Plain,
    Epoll,
}

impl RingMode {
    pub fn describe(self) -> &'static str {
        match self {
            RingMode::DeferTaskrun => "io_uring (DEFER_TASKRUN | SINGLE_ISSUER)",
            RingMode::CoopTaskrun => "io_uring (COOP_TASKRUN | TASKRUN_FLAG)",
            RingMode::Plain => "io_uring (no taskrun flags: expect an interrupt per completion)",
            RingMode::Epoll => "epoll (io_uring unavailable)",
        }
    }

    fn from_env() -> Option<RingMode> {
        match std::env::var("SHOAL_RING").ok()?.as_str() {
            "defer" => Some(RingMode::DeferTaskrun),
            "coop" => Some(RingMode::CoopTaskrun),
            "plain" => Some(RingMode::Plain),
            "epoll" => Some(RingMode::Epoll),
            _ => None,
        }
    }
}

/// Build the runtime for the calling thread. Warnings explain every step
/// down the preference order.
pub fn build(entries: u32) -> io::Result<(ShardRuntime, RingMode)> {
    let order = [RingMode::DeferTaskrun, RingMode::CoopTaskrun, RingMode::Plain];
    let start = RingMode::from_env().unwrap_or(RingMode::DeferTaskrun);
    if start != RingMode::Epoll {
        if monoio::utils::detect_uring() {
            for mode in order.into_iter().skip_while(|m| *m != start) {
                match build_uring(mode, entries) {
                    Ok(rt) => return Ok((rt, mode)),
                    Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                        log::warn!("{}", memlock_advice(&e, entries));
                        break;
                    }
                    Err(e) => log::debug!("{} refused: {e}; trying the next ring mode", mode.describe()),
                }
            }
        } else {
            log::warn!(
                "io_uring is not available (kernel too old, or blocked by a seccomp profile such as a container runtime's default); \
                 falling back to epoll, which costs more CPU per request"
            );
        }
    }
    let rt = RuntimeBuilder::<LegacyDriver>::new().with_entries(entries).enable_timer().build()?;
    Ok((rt.into(), RingMode::Epoll))
}

fn build_uring(mode: RingMode, entries: u32) -> io::Result<ShardRuntime> {
    let mut urb = io_uring::IoUring::builder();
    match mode {
        RingMode::DeferTaskrun => {
            urb.setup_defer_taskrun().setup_single_issuer();
        }
        RingMode::CoopTaskrun => {
            urb.setup_coop_taskrun().setup_taskrun_flag();
        }
        RingMode::Plain | RingMode::Epoll => {}
    }
    let rt = RuntimeBuilder::<IoUringDriver>::new().with_entries(entries).uring_builder(urb).enable_timer().build()?;
    Ok(rt.into())
}

fn memlock_advice(e: &io::Error, entries: u32) -> String {
    let current = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max locked memory"))
                .map(|l| l.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".into());
    format!(
        "io_uring setup failed ({e}) with {entries} entries: the locked-memory limit is too low (current soft/hard: {current} bytes). \
         Raise it with `ulimit -l unlimited` in the shell that starts shoal, or `LimitMEMLOCK=infinity` in the systemd unit, \
         or lower `global.ring_entries`. Falling back to epoll."
    )
}
