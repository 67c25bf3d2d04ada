//! The `RELIABILITY|…` lines `docs/RELIABILITY.md` is made of.

/// Prints `RELIABILITY|fault|load|lost` (and appends it to the file named by
/// `AIGW_RELIABILITY_FILE`, which `scripts/reliability.sh` sets); the rows of
/// `docs/RELIABILITY.md`.
pub fn report(fault: &str, load: &str, lost: &str) {
    let line = format!("RELIABILITY|{fault}|{load}|{lost}");
    println!("{line}");
    if let Ok(path) = std::env::var("AIGW_RELIABILITY_FILE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
