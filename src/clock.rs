//! Wall-clock helpers. Records and messages carry Unix milliseconds; the
//! state machines take `now` as an argument so tests inject their own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `ms` (Unix milliseconds) as a UTC date and time to the minute, e.g.
/// `2026-12-06 17:18 UTC`: what a person reads in an error such as "this
/// invite expired on …", with no time-zone database needed.
pub fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm,
    // proleptic Gregorian calendar), in unsigned arithmetic from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Why a duration typed by a user was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration: give a number and a unit, e.g. 30m, 12h, 7d or 2w")]
pub struct BadDuration(pub String);

/// A duration as people type it: a whole number and one unit, `s`, `m`,
/// `h`, `d` or `w` (`90m`, `7d`). A bare number is refused: whether it
/// meant seconds or days is exactly the mistake to avoid.
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(text.to_string());
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 (a leap day in a year divisible by 400) 12:34:56.
        assert_eq!(format_utc(951_827_696_000), "2000-02-29 12:34 UTC");
        // 2024-12-31 23:59:59, the last second of a leap year.
        assert_eq!(format_utc(1_735_689_599_999), "2024-12-31 23:59 UTC");
        assert_eq!(format_utc(1_735_689_600_000), "2025-01-01 00:00 UTC");
        // 2100-03-01: 2100 is not a leap year.
        assert_eq!(format_utc(4_107_542_400_000), "2100-03-01 00:00 UTC");
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration(" 90m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        for bad in [
            "",
            "7",
            "d",
            "7 d",
            "7days",
            "-1h",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert_eq!(parse_duration(bad), Err(BadDuration(bad.into())), "{bad:?}");
        }
    }
}
