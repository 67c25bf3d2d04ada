//! The budget month: monthly budgets are per UTC calendar month. The
//! token-service sums cost per namespace and month
//! (`metrics:cost:ns:{ns}:month:{YYYY-MM}`) and budgets are checked against
//! the current month's sum, so both sides must agree on the month of an
//! instant, to the millisecond.

use std::fmt;

/// A UTC calendar month of the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BudgetMonth {
    year: i64,
    /// 1 to 12.
    month: u32,
}

impl BudgetMonth {
    /// The month holding a unix time in milliseconds.
    pub fn of_unix_ms(ms: i64) -> BudgetMonth {
        let (year, month, _) = civil_from_days(ms.div_euclid(86_400_000));
        BudgetMonth { year, month }
    }

    /// The month holding a unix time in seconds.
    pub fn of_unix_s(s: i64) -> BudgetMonth {
        BudgetMonth::of_unix_ms(s.saturating_mul(1000))
    }

    /// `YYYY-MM`, as in the Redis key.
    pub fn label(&self) -> String {
        self.to_string()
    }

    /// The month after this one.
    pub fn next(&self) -> BudgetMonth {
        if self.month == 12 {
            BudgetMonth {
                year: self.year + 1,
                month: 1,
            }
        } else {
            BudgetMonth {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Unix seconds of the month's first instant.
    pub fn start_unix_s(&self) -> i64 {
        days_from_civil(self.year, self.month, 1) * 86_400
    }

    /// Seconds from `unix_s` to the start of the next month, at least 1
    /// (a `Retry-After` for a spent budget).
    pub fn seconds_to_next_month(unix_s: i64) -> u64 {
        let next = BudgetMonth::of_unix_s(unix_s).next();
        (next.start_unix_s() - unix_s).max(1) as u64
    }
}

impl fmt::Display for BudgetMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(ms: i64) -> String {
        BudgetMonth::of_unix_ms(ms).label()
    }

    #[test]
    fn months_of_instants() {
        assert_eq!(label(0), "1970-01");
        // 2024-02-29T23:59:59.999Z and the next millisecond.
        assert_eq!(label(1_709_251_199_999), "2024-02");
        assert_eq!(label(1_709_251_200_000), "2024-03");
        // 2025-12-31T23:59:59Z → December; 2026-01-01T00:00:00Z → January.
        assert_eq!(label(1_767_225_599_000), "2025-12");
        assert_eq!(label(1_767_225_600_000), "2026-01");
        assert_eq!(label(-1), "1969-12");
        assert_eq!(BudgetMonth::of_unix_s(1_709_208_000).label(), "2024-02");
    }

    #[test]
    fn time_to_the_next_month() {
        // 2023-12-31T23:59:59Z: one second to January.
        assert_eq!(BudgetMonth::seconds_to_next_month(1_704_067_199), 1);
        // 2024-02-01T00:00:00Z: all of February (a leap year) to go.
        assert_eq!(
            BudgetMonth::seconds_to_next_month(1_706_745_600),
            29 * 86_400
        );
        let jan = BudgetMonth::of_unix_s(1_704_067_200);
        assert_eq!(jan.start_unix_s(), 1_704_067_200);
        assert_eq!(jan.next().label(), "2024-02");
        assert_eq!(BudgetMonth::of_unix_s(1_703_980_800).next(), jan);
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // 1900-03-01 .. 2300: the day count and the calendar agree.
        let mut prev = BudgetMonth::of_unix_s(-2_203_891_200);
        for day in (-2_203_891_200i64 / 86_400)..(10_413_792_000 / 86_400) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            let cur = BudgetMonth { year: y, month: m };
            assert!(cur == prev || cur == prev.next(), "{prev} -> {cur}");
            prev = cur;
        }
    }
}
