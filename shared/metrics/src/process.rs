//! Process-local metrics read from `/proc/self`: uptime, resident memory,
//! CPU seconds, open file descriptors.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::time::Instant;

/// Linux reports CPU times in `/proc` in units of USER_HZ, which is 100 on
/// every mainstream architecture.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct ProcessCollector {
    prefix: &'static str,
    started: Instant,
    start_unix: Option<f64>,
}

impl ProcessCollector {
    pub fn new(prefix: &'static str) -> Self {
        ProcessCollector {
            prefix,
            started: Instant::now(),
            start_unix: start_time_seconds(),
        }
    }
}

/// Resident memory in bytes, from `/proc/self/status`.
pub fn resident_bytes() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// User + system CPU seconds, from `/proc/self/stat`.
pub fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// When the process started, unix seconds: the kernel's boot time plus the
/// process's start in ticks since boot (`/proc/stat`, `/proc/self/stat`),
/// as Prometheus' own clients compute it.
fn start_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: f64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; starttime is field 22.
    let rest = &s[s.rfind(')')? + 2..];
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some(boot + ticks / USER_HZ)
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let uptime = format!("{}_uptime_seconds", self.prefix);
        let me = encoder.encode_descriptor(
            &uptime,
            "Seconds since the process started.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.started.elapsed().as_secs_f64()).encode(me)?;
        if let Some(start) = self.start_unix {
            let me = encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(start).encode(me)?;
        }
        if let Some(cpu) = cpu_seconds() {
            let me = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(me)?;
        }
        if let Some(rss) = resident_bytes() {
            let me = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(rss).encode(me)?;
        }
        if let Some(fds) = open_fds() {
            let me = encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(fds).encode(me)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_recent() {
        let start = start_time_seconds().expect("/proc readable");
        let now = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .expect("after 1970")
            .as_secs_f64();
        // Tick granularity is 10 ms and boot time whole seconds.
        assert!(
            start <= now + 1.0 && start > now - 600.0,
            "{start} vs {now}"
        );
    }
}
