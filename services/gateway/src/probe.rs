//! Active health checks: instances with a `health_check` in the snapshot
//! are probed every `interval_s` with `GET {base_url}{path}` and the
//! instance key; the result feeds the instance's state in [`crate::health`].

use crate::routing::{Instance, RoutingStore};
use aigw_service::clock::monotonic_ms;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Probes every enabled instance that has a health check, each on its own
/// interval, reading the current routing table on every tick so config
/// changes apply without restart.
pub async fn run_active_checks(
    store: Arc<RoutingStore>,
    client: reqwest::Client,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(routing) = store.load() else {
            continue;
        };
        let now = monotonic_ms();
        for inst in routing.instances() {
            let Some(hc) = &inst.health_check else {
                continue;
            };
            let st = &inst.state;
            if now < st.next_probe_ms.load(Relaxed) || st.probing.swap(true, Relaxed) {
                continue;
            }
            st.next_probe_ms
                .store(now + hc.interval.as_millis() as u64, Relaxed);
            let inst = inst.clone();
            let client = client.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let ok = tokio::select! {
                    ok = probe(&client, &inst) => ok,
                    _ = cancel.cancelled() => { inst.state.probing.store(false, Relaxed); return; }
                };
                inst.state.record_probe(ok);
                inst.state.probing.store(false, Relaxed);
            });
        }
    }
}

async fn probe(client: &reqwest::Client, inst: &Instance) -> bool {
    let Some(hc) = &inst.health_check else {
        return true;
    };
    // A probe must finish before the next one is due.
    let timeout = inst
        .timeout
        .min(hc.interval)
        .max(Duration::from_millis(100));
    let mut req = client.get(hc.url.clone()).timeout(timeout);
    if let Some(auth) = &inst.auth {
        req = req.header(inst.auth_name, auth.clone());
    }
    if let Some((name, value)) = &inst.provider_header {
        req = req.header(*name, value.clone());
    }
    match req.send().await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            if !ok {
                tracing::debug!(instance = %inst.id, status = resp.status().as_u16(), "health check failed");
            }
            ok
        }
        Err(e) => {
            tracing::debug!(instance = %inst.id, error = %without_url(&e), "health check failed");
            false
        }
    }
}

/// A reqwest error's text without the URL (which may carry credentials in
/// its userinfo).
pub fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    };
    let mut src = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
