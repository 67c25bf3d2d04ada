//! The console's scripts and styles, embedded in the binary: the vendored
//! htmx and uPlot (pinned, checksums in `assets/vendor/SHA256SUMS`) and the
//! console's own stylesheet and script. Nothing is fetched at run time.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx-2.0.11.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "uPlot-1.6.32.iife.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/vendor/uPlot-1.6.32.iife.min.js"),
    },
    Asset {
        name: "uPlot-1.6.32.min.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/vendor/uPlot-1.6.32.min.css"),
    },
    Asset {
        name: "console.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/console.css"),
    },
];

/// `GET /ui/assets/{name}`: open to everyone (the sign-in page needs them).
pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == name.as_str()) {
        Some(a) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, a.content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(a.bytes),
        None => HttpResponse::NotFound()
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("no such asset"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// Every vendored file embedded is the one its checksum pins, and every
    /// pinned file is embedded or is a licence.
    #[test]
    fn vendored_assets_match_their_checksums() {
        let sums = include_str!("../../assets/vendor/SHA256SUMS");
        let pinned: Vec<(&str, &str)> = sums
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (sum, name) = l.split_once("  ").expect("sha256sum line");
                (name.trim(), sum.trim())
            })
            .collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/vendor");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name == "SHA256SUMS" || name == "README.md" {
                continue;
            }
            let sum = pinned
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name} has no checksum in SHA256SUMS"))
                .1;
            let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
            assert_eq!(hex(&Sha256::digest(&bytes)), sum, "{name} changed");
        }
        for (name, sum) in &pinned {
            if let Some(a) = ASSETS.iter().find(|a| a.name == *name) {
                assert_eq!(hex(&Sha256::digest(a.bytes)), *sum, "embedded {name}");
            } else {
                assert!(name.ends_with("LICENSE"), "{name} is pinned but not served");
            }
        }
        let vendored = ASSETS
            .iter()
            .filter(|a| pinned.iter().any(|(n, _)| *n == a.name));
        assert_eq!(vendored.count(), 3);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
