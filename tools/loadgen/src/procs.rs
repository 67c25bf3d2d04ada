//! CPU time and resident memory of watched processes, read from `/proc`
//! around the measured window, so "CPU per request" covers exactly the
//! requests the run counted.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `USER_HZ`: the unit of utime/stime in `/proc/<pid>/stat`; fixed at 100 in
/// the Linux user-space ABI.
const TICKS_PER_SECOND: f64 = 100.0;
/// How often resident memory is sampled during a run.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// A named group of processes (e.g. nginx's workers), measured as a sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub name: String,
    pub pids: Vec<u32>,
}

impl Watch {
    /// `name=pid[,pid...]`; `pid` may be `self` (the load generator).
    pub fn parse(s: &str) -> Result<Watch, String> {
        let (name, pids) = s
            .split_once('=')
            .ok_or_else(|| format!("--watch wants NAME=PID[,PID...], got {s:?}"))?;
        let pids = pids
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| match p.trim() {
                "self" => Ok(std::process::id()),
                p => p.parse().map_err(|_| format!("--watch: bad pid {p:?}")),
            })
            .collect::<Result<Vec<u32>, String>>()?;
        if name.is_empty() || pids.is_empty() {
            return Err(format!("--watch wants NAME=PID[,PID...], got {s:?}"));
        }
        Ok(Watch {
            name: name.to_string(),
            pids,
        })
    }
}

/// CPU ticks of a process (all its threads): in user space and in the
/// kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    pub user: u64,
    pub system: u64,
}

impl Ticks {
    pub fn total(self) -> u64 {
        self.user + self.system
    }

    fn since(self, start: Ticks) -> Ticks {
        Ticks {
            user: self.user.saturating_sub(start.user),
            system: self.system.saturating_sub(start.system),
        }
    }
}

impl std::iter::Sum for Ticks {
    fn sum<I: Iterator<Item = Ticks>>(iter: I) -> Ticks {
        iter.fold(Ticks::default(), |a, b| Ticks {
            user: a.user + b.user,
            system: a.system + b.system,
        })
    }
}

/// utime and stime of a process (all its threads) in ticks, from the text
/// of `/proc/<pid>/stat`. The command name may hold spaces and
/// parentheses, so fields are counted after the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<Ticks> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // After the name: state(3) ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime(14) stime(15).
    let user: u64 = f.nth(11)?.parse().ok()?;
    let system: u64 = f.next()?.parse().ok()?;
    Some(Ticks { user, system })
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn cpu_ticks(pid: u32) -> std::io::Result<Ticks> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&s)
        .ok_or_else(|| std::io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    // A zombie has no VmRSS line: it holds no memory.
    Ok(parse_status_rss_kib(&s).unwrap_or(0))
}

/// What a watched group did during the run.
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    pub name: String,
    pub pids: Vec<u32>,
    /// CPU seconds (user + system) spent during the measured window.
    pub cpu_s: f64,
    /// `cpu_s` per completed request, in microseconds.
    pub cpu_us_per_request: f64,
    /// The part of it in user space (the kernel's sampling of utime at
    /// each tick: statistical, not exact).
    pub user_us_per_request: f64,
    /// The part of it in the kernel (stime).
    pub system_us_per_request: f64,
    /// CPU share of one core over the window (1.0 = one core busy).
    pub cores_busy: f64,
    pub rss_start_mib: f64,
    pub rss_max_mib: f64,
    pub rss_end_mib: f64,
}

/// A running measurement: CPU at the start, RSS sampled in a thread.
pub struct Watcher {
    watches: Vec<Watch>,
    start_ticks: Vec<Ticks>,
    start_rss: Vec<u64>,
    max_rss: Arc<Vec<std::sync::atomic::AtomicU64>>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

fn group_ticks(w: &Watch) -> std::io::Result<Ticks> {
    w.pids.iter().map(|p| cpu_ticks(*p)).sum()
}

fn group_rss(w: &Watch) -> u64 {
    // A worker that exits mid-run simply stops counting.
    w.pids.iter().filter_map(|p| rss_kib(*p).ok()).sum()
}

impl Watcher {
    /// Fails when a pid cannot be read (a typo must not yield a zero).
    pub fn start(watches: Vec<Watch>) -> std::io::Result<Watcher> {
        let start_ticks = watches
            .iter()
            .map(group_ticks)
            .collect::<std::io::Result<Vec<_>>>()?;
        let start_rss: Vec<u64> = watches.iter().map(group_rss).collect();
        let max_rss = Arc::new(
            start_rss
                .iter()
                .map(|v| std::sync::atomic::AtomicU64::new(*v))
                .collect::<Vec<_>>(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = (!watches.is_empty()).then(|| {
            let (ws, max, stop) = (watches.clone(), max_rss.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(RSS_EVERY);
                    for (w, m) in ws.iter().zip(max.iter()) {
                        m.fetch_max(group_rss(w), Ordering::Relaxed);
                    }
                }
            })
        });
        Ok(Watcher {
            watches,
            start_ticks,
            start_rss,
            max_rss,
            stop,
            sampler,
        })
    }

    /// Starts the CPU window again, after setup work that must not count.
    pub fn restart(mut self) -> Watcher {
        for (i, w) in self.watches.iter().enumerate() {
            if let Ok(t) = group_ticks(w) {
                self.start_ticks[i] = t;
            }
        }
        self
    }

    pub fn finish(mut self, elapsed: Duration, requests: u64) -> Vec<WatchReport> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        self.watches
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let end_rss = group_rss(w);
                let max = self.max_rss[i].load(Ordering::Relaxed).max(end_rss);
                // A process gone by the end counts what it had at the start.
                let ticks = group_ticks(w)
                    .unwrap_or(self.start_ticks[i])
                    .since(self.start_ticks[i]);
                let cpu_s = ticks.total() as f64 / TICKS_PER_SECOND;
                let per_request = |t: u64| {
                    if requests == 0 {
                        0.0
                    } else {
                        t as f64 / TICKS_PER_SECOND * 1e6 / requests as f64
                    }
                };
                WatchReport {
                    name: w.name.clone(),
                    pids: w.pids.clone(),
                    cpu_s,
                    cpu_us_per_request: per_request(ticks.total()),
                    user_us_per_request: per_request(ticks.user),
                    system_us_per_request: per_request(ticks.system),
                    cores_busy: cpu_s / elapsed.as_secs_f64().max(1e-9),
                    rss_start_mib: mib(self.start_rss[i]),
                    rss_max_mib: mib(max),
                    rss_end_mib: mib(end_rss),
                }
            })
            .collect()
    }
}

/// CPU seconds this process has used so far.
pub fn self_cpu_s() -> f64 {
    cpu_ticks(std::process::id()).map_or(0, Ticks::total) as f64 / TICKS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_the_name() {
        let stat = "4242 (nginx: worker) x) S 1 4242 4242 0 -1 4194624 1000 0 0 0 \
                    250 75 0 0 20 0 1 0 12345 1000000 500 18446744073709551615";
        assert_eq!(
            parse_stat_ticks(stat),
            Some(Ticks {
                user: 250,
                system: 75
            })
        );
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tgateway\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_status_rss_kib(status), Some(12345));
        assert_eq!(parse_status_rss_kib("Name:\tzombie\n"), None);
    }

    #[test]
    fn watch_specs_parse() {
        assert_eq!(
            Watch::parse("nginx=10,11").unwrap(),
            Watch {
                name: "nginx".into(),
                pids: vec![10, 11]
            }
        );
        assert_eq!(
            Watch::parse("me=self").unwrap().pids,
            vec![std::process::id()]
        );
        assert!(Watch::parse("nginx").is_err());
        assert!(Watch::parse("nginx=").is_err());
        assert!(Watch::parse("nginx=abc").is_err());
    }

    #[test]
    fn own_process_is_measured() {
        let w = Watcher::start(vec![Watch::parse("me=self").unwrap()]).unwrap();
        // Burn some CPU so the delta is visible at 10 ms resolution.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let r = w.finish(t.elapsed(), 1000);
        assert_eq!(r.len(), 1);
        assert!(r[0].cpu_s > 0.0, "{r:?}");
        assert!(
            r[0].rss_max_mib > 0.0 && r[0].rss_max_mib >= r[0].rss_end_mib,
            "{r:?}"
        );
        assert_eq!(r[0].cpu_us_per_request, r[0].cpu_s * 1e6 / 1000.0);
        // A busy loop runs in user space: its ticks are user ticks, and the
        // parts add up to the total.
        let (user, system) = (r[0].user_us_per_request, r[0].system_us_per_request);
        assert!(user > 0.0, "{r:?}");
        assert!(
            (user + system - r[0].cpu_us_per_request).abs() < 1e-6,
            "{r:?}"
        );
        assert!(Watcher::start(vec![Watch::parse("gone=4000000000").unwrap()]).is_err());
    }
}
