//! The `shoal` binary: the command line ([`shoal::cli`]) with the
//! built-in modules, on mimalloc.

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the request path allocates nothing,
/// so the allocator matters for what connections keep between requests.
/// glibc keeps the memory of finished requests in the shard's arena,
/// fragmented by the small long-lived state of parked connections;
/// mimalloc's size-segregated pages return it (perf/RESULTS.md: 4.7 ->
/// 3.6 KiB of RSS per idle keepalive connection).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    shoal::cli::main(shoal::proxy::module::Modules::new())
}
