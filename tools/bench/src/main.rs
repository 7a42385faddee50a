//! shoal-bench: a zeusbench-style HTTP/1.1 load generator (L1), built on
//! shoal's own runtime setup, HTTP codec and TLS stream (`https://`
//! targets, so TLS costs are measured on the proxy's own code path).
//! Closed loop (`-c` connections busy at once, `-n` requests or `-t`
//! seconds) or open loop (`-r` requests per second on a fixed schedule,
//! with coordinated-omission correction);
//! HdrHistogram latencies; per-second progress; text or JSON report; exit
//! status 2 past the `--max-errors` threshold. See docs/bench.md.

mod args;
mod report;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match args::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shoal-bench: {e}\n\n{}", args::USAGE);
            return ExitCode::from(1);
        }
    };
    let (stats, elapsed, notes) = run::run(opts.clone());
    if !opts.quiet {
        for n in notes {
            eprintln!("{n}");
        }
    }
    if opts.json {
        println!("{}", report::json(&opts, &stats, elapsed));
    } else {
        print!("{}", report::text(&opts, &stats, elapsed));
    }
    if report::passes(&opts, &stats) {
        ExitCode::SUCCESS
    } else {
        eprintln!("shoal-bench: errors above --max-errors {}%", opts.max_errors_pct);
        ExitCode::from(2)
    }
}
