//! Process-local metrics read from `/proc/self`: uptime, resident memory,
//! CPU seconds, open file descriptors.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Linux reports CPU times in `/proc` in units of USER_HZ, which is 100 on
/// every mainstream architecture.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct ProcessCollector {
    prefix: &'static str,
    started: Instant,
    start_unix: f64,
}

impl ProcessCollector {
    pub fn new(prefix: &'static str) -> Self {
        ProcessCollector {
            prefix,
            started: Instant::now(),
            start_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
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
        let me = encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.start_unix).encode(me)?;
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
