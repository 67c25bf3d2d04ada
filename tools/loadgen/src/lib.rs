//! `loadgen`: an HTTP/1.1 load generator light enough to measure a
//! sub-millisecond proxy on two cores. Keep-alive connections, closed loop
//! (N connections for a duration, or exactly N requests) or open loop at a
//! fixed rate, server-sent-event timing, and the CPU and memory of watched
//! processes over exactly the measured window.

pub mod cli;
pub mod hist;
pub mod http;
pub mod procs;
pub mod report;
pub mod run;

pub use report::Report;

/// Runs the load described by `options` and reports it.
pub fn run(options: &cli::Options) -> anyhow::Result<Report> {
    let plan = options.plan.clone();
    let (mode, connections, threads, stream) = (
        plan.mode.clone(),
        plan.connections,
        plan.threads,
        plan.stream,
    );
    let outcome = run::execute(plan)?;
    Ok(Report::new(
        &options.url,
        &mode,
        connections,
        threads,
        stream,
        &outcome,
    ))
}
