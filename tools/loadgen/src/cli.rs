//! Command-line options, parsed and checked into a [`Plan`](crate::run::Plan).

use crate::http::{build_request, Url};
use crate::procs::Watch;
use crate::run::{Mode, Plan};
use std::net::ToSocketAddrs;
use std::time::Duration;

pub const USAGE: &str =
    "loadgen: HTTP/1.1 load generator (keep-alive, closed or open loop, SSE timing)

usage: loadgen [OPTIONS] URL

Load (closed loop unless --rate):
  -c, --connections N   keep-alive connections (8)
  -d, --duration D      closed loop: start requests for D (e.g. 10s); every
                        started request completes. Open loop: the schedule length
  -n, --requests N      closed loop: exactly N requests in all (with -d: at most);
                        open loop: N requests at --rate (instead of rate x duration)
  -R, --rate R          open loop: R requests/s on a fixed schedule; latency
                        counts from each request's intended send time
  -t, --threads N       load threads, each with its own event loop
                        (cores, at most one per connection)
      --timeout D       per request, including connect (30s)
Request:
  -m, --method M        GET, or POST when a body is given
  -H, --header 'K: V'   extra header (repeatable)
  -b, --body TEXT       request body (Content-Type defaults to application/json)
      --body-file PATH  request body from a file
      --stream          read bodies as server-sent events: time to first event,
                        gaps between events, events per response, [DONE] seen
Report:
      --watch NAME=PID[,PID...]  CPU seconds, CPU per request and resident
                        memory of these processes over the run (repeatable;
                        PID 'self' = loadgen)
      --json PATH       write the JSON report to PATH ('-' = stdout, and the
                        human summary goes to stderr)
  -q, --quiet           no human summary
";

#[derive(Debug, Clone)]
pub struct Options {
    pub plan: Plan,
    pub url: String,
    pub json: Option<String>,
    pub quiet: bool,
}

#[allow(clippy::disallowed_methods)] // a command-line tool's flags (fractional seconds too)
fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    // Bare numbers are seconds.
    if let Ok(s) = v.parse::<f64>() {
        if s.is_finite() && s >= 0.0 {
            return Ok(Duration::from_secs_f64(s));
        }
    }
    humantime::parse_duration(v)
        .map_err(|_| format!("{flag}: not a duration like 10s or 500ms: {v:?}"))
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: not a valid number: {v:?}"))
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut connections = 8usize;
    let mut duration_v: Option<Duration> = None;
    let mut requests: Option<u64> = None;
    let mut rate: Option<f64> = None;
    let mut threads: Option<usize> = None;
    let mut timeout = Duration::from_secs(30);
    let mut method: Option<String> = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    let mut stream = false;
    let mut watches = Vec::new();
    let mut json = None;
    let mut quiet = false;
    let mut url: Option<String> = None;

    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        // Messages name the long form.
        let flag = match flag {
            "-c" => "--connections",
            "-d" => "--duration",
            "-n" => "--requests",
            "-R" => "--rate",
            "-t" => "--threads",
            "-m" => "--method",
            "-H" => "--header",
            "-b" => "--body",
            "-q" => "--quiet",
            f => f,
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--connections" => connections = number(flag, &value()?)?,
            "--duration" => duration_v = Some(duration(flag, &value()?)?),
            "--requests" => requests = Some(number(flag, &value()?)?),
            "--rate" => rate = Some(number(flag, &value()?)?),
            "--threads" => threads = Some(number(flag, &value()?)?),
            "--timeout" => timeout = duration(flag, &value()?)?,
            "--method" => method = Some(value()?.to_ascii_uppercase()),
            "--header" => {
                let v = value()?;
                let (k, val) = v
                    .split_once(':')
                    .ok_or_else(|| format!("{flag} wants 'Name: value', got {v:?}"))?;
                let (k, val) = (k.trim(), val.trim());
                if k.is_empty() || k.contains([' ', '\r', '\n']) || val.contains(['\r', '\n']) {
                    return Err(format!("{flag}: bad header {v:?}"));
                }
                headers.push((k.to_string(), val.to_string()));
            }
            "--body" => body = Some(value()?.into_bytes()),
            "--body-file" => {
                let p = value()?;
                body = Some(std::fs::read(&p).map_err(|e| format!("--body-file {p}: {e}"))?);
            }
            "--stream" => stream = true,
            "--watch" => watches.push(Watch::parse(&value()?)?),
            "--json" => json = Some(value()?),
            "--quiet" => quiet = true,
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("unknown option {f:?}")),
            _ if url.is_none() => url = Some(arg.clone()),
            _ => return Err(format!("unexpected argument {arg:?} (one URL only)")),
        }
    }

    let url_s = url.ok_or("missing URL")?;
    let target = Url::parse(&url_s).map_err(|e| e.to_string())?;
    if connections == 0 || connections > 100_000 {
        return Err("--connections must be 1..=100000".into());
    }
    if timeout.is_zero() {
        return Err("--timeout must be above zero".into());
    }
    if requests == Some(0) {
        return Err("--requests must be at least 1".into());
    }
    let mode = match rate {
        Some(r) => {
            if !(r.is_finite() && r > 0.0 && r <= 10_000_000.0) {
                return Err("--rate must be above 0 (and at most 10000000)".into());
            }
            let total = match (requests, duration_v) {
                (Some(n), _) => n,
                (None, Some(d)) => (r * d.as_secs_f64()).round() as u64,
                (None, None) => return Err("--rate needs --duration or --requests".into()),
            };
            if total == 0 {
                return Err("--rate x --duration gives no request".into());
            }
            Mode::Open {
                rate: r,
                requests: total,
            }
        }
        None => {
            if duration_v.is_none() && requests.is_none() {
                return Err("give --duration or --requests (or both)".into());
            }
            if duration_v.is_some_and(|d| d.is_zero()) {
                return Err("--duration must be above zero".into());
            }
            Mode::Closed {
                duration: duration_v,
                requests,
            }
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.unwrap_or(cores).clamp(1, connections);
    let body = body.unwrap_or_default();
    let method = method.unwrap_or_else(|| if body.is_empty() { "GET" } else { "POST" }.into());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("--method: bad method {method:?}"));
    }
    let addr = (
        target.host.trim_start_matches('[').trim_end_matches(']'),
        target.port,
    )
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .next()
        .ok_or_else(|| format!("cannot resolve {}", target.host))?;
    let request = build_request(&method, &target, &headers, &body);
    Ok(Options {
        plan: Plan {
            addr,
            request: request.into(),
            head_request: method == "HEAD",
            connections,
            threads,
            mode,
            timeout,
            stream,
            watches,
        },
        url: url_s,
        json,
        quiet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Options, String> {
        parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn closed_and_open_modes() {
        let o = p(&["-c", "64", "-d", "2s", "-t", "2", "http://127.0.0.1:1/x"]).unwrap();
        assert_eq!(
            o.plan.mode,
            Mode::Closed {
                duration: Some(Duration::from_secs(2)),
                requests: None
            }
        );
        assert_eq!((o.plan.connections, o.plan.threads), (64, 2));
        assert_eq!(o.plan.addr.port(), 1);
        assert!(o.plan.request.starts_with(b"GET /x HTTP/1.1\r\n"));

        let o = p(&[
            "--rate=5000",
            "--duration",
            "3",
            "-c",
            "1",
            "-t",
            "4",
            "http://127.0.0.1:1/",
        ])
        .unwrap();
        assert_eq!(
            o.plan.mode,
            Mode::Open {
                rate: 5000.0,
                requests: 15_000
            }
        );
        // Never more threads than connections.
        assert_eq!(o.plan.threads, 1);

        let o = p(&[
            "-R",
            "100",
            "-n",
            "7",
            "-b",
            "{}",
            "-H",
            "Authorization: Bearer x",
            "http://127.0.0.1:1/",
        ])
        .unwrap();
        assert_eq!(
            o.plan.mode,
            Mode::Open {
                rate: 100.0,
                requests: 7
            }
        );
        let req = String::from_utf8(o.plan.request.to_vec()).unwrap();
        assert!(req.starts_with("POST / HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nAuthorization: Bearer x\r\n"), "{req}");
        assert!(req.ends_with("Content-Length: 2\r\n\r\n{}"), "{req}");
    }

    #[test]
    fn bad_options_are_refused_with_a_reason() {
        let cases: &[(&[&str], &str)] = &[
            (&["http://127.0.0.1:1/"], "--duration or --requests"),
            (&["-d", "1s"], "missing URL"),
            (&["-d", "soon", "http://127.0.0.1:1/"], "--duration"),
            (
                &["-d", "1s", "-c", "0", "http://127.0.0.1:1/"],
                "--connections",
            ),
            (&["-R", "0", "-d", "1s", "http://127.0.0.1:1/"], "--rate"),
            (&["-R", "10", "http://127.0.0.1:1/"], "--rate needs"),
            (&["-n", "0", "http://127.0.0.1:1/"], "--requests"),
            (
                &["-n", "1", "-H", "nocolon", "http://127.0.0.1:1/"],
                "--header",
            ),
            (
                &["-n", "1", "--frobnicate", "http://127.0.0.1:1/"],
                "unknown option",
            ),
            (&["-n", "1", "https://127.0.0.1:1/"], "http://"),
            (&["-n", "1", "http://127.0.0.1:1/", "http://x/"], "one URL"),
            (
                &["-n", "1", "--watch", "gw", "http://127.0.0.1:1/"],
                "--watch",
            ),
            (&["-n"], "--requests needs a value"),
        ];
        for (args, want) in cases {
            let e = p(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }
}
