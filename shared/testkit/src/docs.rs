//! The documentation's settings tables, read so tests can hold them to the
//! code: each service documents every variable it reads in one table, and
//! its tests compare that table with the variables its config reads.

/// The first `` `span` `` of a table cell, or its trimmed text.
fn cell_value(cell: &str) -> String {
    let c = cell.trim();
    match c.split('`').nth(1) {
        Some(code) if c.starts_with('`') => code.to_string(),
        _ => c.to_string(),
    }
}

/// The rows of the first table after the line `heading`, as (variable,
/// default): the first two cells, each its first `` `code` `` span or its
/// text. The header and separator rows are skipped.
pub fn settings_table(markdown: &str, heading: &str) -> Vec<(String, String)> {
    let mut lines = markdown
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .skip_while(|l| !l.trim_start().starts_with('|'));
    let mut rows = Vec::new();
    let _header = lines.next();
    for line in lines {
        let line = line.trim();
        if !line.starts_with('|') {
            break;
        }
        if line.starts_with("|---") || line.starts_with("| ---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        if cells.len() >= 2 {
            rows.push((cell_value(cells[0]), cell_value(cells[1])));
        }
    }
    rows
}

/// Asserts that `documented` and `read` name the same variables with the
/// same defaults, listing every difference.
#[track_caller]
pub fn assert_same_settings(doc: &str, documented: &[(String, String)], read: &[(String, String)]) {
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (var, default) in read {
        match documented.iter().find(|(v, _)| v == var) {
            None => missing.push(format!("{var} (default {default})")),
            Some((_, d)) if d != default => {
                wrong.push(format!("{var}: documented {d}, code {default}"))
            }
            Some(_) => {}
        }
    }
    let extra: Vec<&String> = documented
        .iter()
        .map(|(v, _)| v)
        .filter(|v| !read.iter().any(|(r, _)| r == *v))
        .collect();
    assert!(
        missing.is_empty() && wrong.is_empty() && extra.is_empty(),
        "{doc}: settings table and code disagree\n  not documented: {missing:?}\n  wrong default: {wrong:?}\n  documented but not read: {extra:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_settings_table() {
        let md = "# X\n\n## Configuration\n\nText.\n\n| variable | default | meaning |\n|---|---|---|\n| `PORT` | `8001` | port |\n| `WORKERS` | CPUs | threads |\n| `URL` | `redis://a:1` (local) | where |\n\nAfter.\n| `NOT` | `IN` | table |\n";
        assert_eq!(
            settings_table(md, "## Configuration"),
            vec![
                ("PORT".to_string(), "8001".to_string()),
                ("WORKERS".to_string(), "CPUs".to_string()),
                ("URL".to_string(), "redis://a:1".to_string()),
            ]
        );
    }
}
