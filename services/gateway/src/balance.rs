//! Instance selection: weighted power of two choices (P2C) on in-flight
//! requests.
//!
//! Two distinct candidates are drawn at random with probability proportional
//! to their weight, and the one with fewer in-flight requests per unit of
//! weight wins; on a tie (e.g. both idle) the first draw wins, so light
//! traffic is spread by weight. Why this and not smooth weighted round robin: LLM requests
//! vary by orders of magnitude in duration (a 3-token embedding next to a
//! 2-minute stream), so request counts say little about load while
//! in-flight counts say a lot; P2C steers away from a busy or slow instance
//! at O(1) cost without shared counters, and the randomness keeps several
//! gateway replicas from herding onto the same "least loaded" instance.
//! Weights still hold on average because they bias both the draw and the
//! comparison. A weight of 0 drains an instance.

use crate::health::Availability;
use crate::routing::Instance;
use rand::Rng;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The chosen candidate index and whether this request is its trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub index: usize,
    pub trial: bool,
}

/// Chooses among `candidates`, skipping indexes in `tried` and instances that
/// are unavailable. `None` when no candidate is usable.
pub fn pick(candidates: &[Arc<Instance>], tried: &[usize], now_ms: u64) -> Option<Pick> {
    let mut rng = rand::thread_rng();
    // A lost trial race makes that instance ineligible; retry a few times.
    for _ in 0..4 {
        let eligible = |i: usize| -> Option<Availability> {
            let c = &candidates[i];
            if c.weight == 0 || tried.contains(&i) {
                return None;
            }
            match c.state.availability(now_ms) {
                Availability::Unavailable => None,
                a => Some(a),
            }
        };
        let (total, count) = candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| eligible(*i).is_some())
            .fold((0u64, 0usize), |(t, n), (_, c)| {
                (t + u64::from(c.weight), n + 1)
            });
        if count == 0 {
            return None;
        }
        let draw = |rng: &mut rand::rngs::ThreadRng, skip: Option<usize>, total: u64| -> usize {
            let mut x = rng.gen_range(0..total.max(1));
            let mut last = 0;
            for (i, c) in candidates.iter().enumerate() {
                if Some(i) == skip || eligible(i).is_none() {
                    continue;
                }
                last = i;
                let w = u64::from(c.weight);
                if x < w {
                    return i;
                }
                x -= w;
            }
            last
        };
        let a = draw(&mut rng, None, total);
        let chosen = if count == 1 {
            a
        } else {
            let b = draw(&mut rng, Some(a), total - u64::from(candidates[a].weight));
            // Fewer in-flight requests per unit of weight wins (cross-
            // multiplied to stay in integers); a tie keeps the first draw,
            // so idle instances share traffic by weight.
            let load = |i: usize| u64::from(candidates[i].state.in_flight.load(Relaxed));
            let (wa, wb) = (
                u64::from(candidates[a].weight),
                u64::from(candidates[b].weight),
            );
            if load(b) * wa < load(a) * wb {
                b
            } else {
                a
            }
        };
        match eligible(chosen) {
            Some(Availability::Healthy) => {
                return Some(Pick {
                    index: chosen,
                    trial: false,
                })
            }
            Some(Availability::TrialDue) if candidates[chosen].state.begin_trial() => {
                return Some(Pick {
                    index: chosen,
                    trial: true,
                });
            }
            _ => {}
        }
    }
    None
}

/// Whether [`pick`] could still choose something.
pub fn has_candidate(candidates: &[Arc<Instance>], tried: &[usize], now_ms: u64) -> bool {
    candidates.iter().enumerate().any(|(i, c)| {
        c.weight > 0
            && !tried.contains(&i)
            && c.state.availability(now_ms) != Availability::Unavailable
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthPolicy, InstanceState};
    use aigw_metrics::families::gateway::{InstanceNs, INSTANCE_HEALTH};
    use aigw_metrics::{Recorder, RecorderConfig};
    use std::time::Duration;

    fn inst(id: &str, weight: u32) -> Arc<Instance> {
        let r = Recorder::new(RecorderConfig::for_service("t"));
        let state = Arc::new(InstanceState::new(
            INSTANCE_HEALTH.series(
                &r,
                &InstanceNs {
                    instance_id: id,
                    namespace_code: "ns",
                },
            ),
            HealthPolicy {
                failure_threshold: 1,
                cooldown: Duration::from_secs(3600),
                probe_failures: 1,
            },
            id.into(),
        ));
        Arc::new(crate::routing::tests_support::instance(id, weight, state))
    }

    #[test]
    fn weights_are_respected_on_average() {
        let c = vec![inst("a", 1), inst("b", 3)];
        let mut hits = [0u32; 2];
        for _ in 0..4000 {
            hits[pick(&c, &[], 0).unwrap().index] += 1;
        }
        // Expected 1000 / 3000 with idle instances; allow a wide margin.
        assert!(hits[0] > 600 && hits[0] < 1400, "{hits:?}");
    }

    #[test]
    fn busy_instance_is_avoided() {
        let c = vec![inst("a", 1), inst("b", 1)];
        c[0].state.in_flight.store(10, Relaxed);
        for _ in 0..100 {
            assert_eq!(pick(&c, &[], 0).unwrap().index, 1);
        }
    }

    #[test]
    fn tried_unhealthy_and_drained_are_skipped() {
        let c = vec![inst("a", 1), inst("b", 1), inst("c", 0)];
        assert_eq!(pick(&c, &[0], 0).unwrap().index, 1);
        c[1].state.record_failure(false);
        assert!(pick(&c, &[0], 0).is_none());
    }
}
