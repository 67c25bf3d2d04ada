//! What the gateway's `/metrics` shows: the design brief's `ai_gateway_*`
//! metrics and the operator extras, all rendered from Redis (so every replica
//! shows the fleet-wide values), plus the process metrics the shared
//! collector adds (`ai_gateway_uptime_seconds`, `ai_gateway_redis_up`, …).

use aigw_metrics::families::gateway as fam;
use aigw_metrics::{Exposition, Render};

pub static EXPOSITION: Exposition = Exposition {
    prefix: "ai_gateway",
    renders: &[
        Render::of(&fam::GLOBAL_REQUESTS),
        Render::of(&fam::GLOBAL_ERRORS),
        Render::mean(&fam::GLOBAL_RESPONSE_TIME_MEAN),
        Render::of(&fam::GLOBAL_LAST_REQUEST_TIME),
        Render::of(&fam::NS_REQUESTS),
        Render::of(&fam::NS_SUCCESSFUL),
        Render::of(&fam::NS_FAILED),
        Render::of(&fam::NS_CONCURRENT),
        Render::mean(&fam::NS_RESPONSE_TIME_MEAN),
        Render::of(&fam::NS_STATUS),
        Render::of(&fam::NS_LATENCY),
        Render::of(&fam::NS_TTFT),
        Render::of(&fam::INSTANCE_HEALTH),
        Render::of(&fam::NS_RETRIES),
        Render::of(&fam::NS_REJECTIONS),
        Render::of(&fam::AUTH_FAILURES),
        Render::of(&fam::USAGE_DROPPED),
    ],
};
