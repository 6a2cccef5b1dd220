//! Calendar arithmetic on the city's wall clock: dates `YYYY-MM-DD`, times
//! `YYYY-MM-DDTHH:MM` kept as minutes since 1970-01-01, working days, ages,
//! and the star tier as a pure function of verified minutes. Knows nothing
//! of tables or the host.

/// (year, month, day), checked.
pub fn parse_date(s: &str) -> Option<(i64, i64, i64)> {
    let mut it = s.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let feb = if leap { 29 } else { 28 };
    let days = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    ((1..=12).contains(&m) && d >= 1 && d <= days[(m - 1) as usize]).then_some((y, m, d))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a date.
pub fn day_number(date: &str) -> Option<i64> {
    let (y, m, d) = parse_date(date)?;
    Some(days_from_civil(y, m, d))
}

/// The date of a day number.
pub fn date_of(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM` (a space for the `T` too) as minutes since the epoch.
pub fn parse_at(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(['T', ' '])?;
    let day = day_number(date)?;
    let (h, m) = time.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(day * 1440 + h * 60 + m)
}

/// Minutes since the epoch as `YYYY-MM-DDTHH:MM`.
pub fn fmt_at(minutes: i64) -> String {
    let (day, rest) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    format!("{}T{:02}:{:02}", date_of(day), rest / 60, rest % 60)
}

/// The date part of a time.
pub fn date_at(minutes: i64) -> String {
    date_of(minutes.div_euclid(1440))
}

/// `YYYY-MM` of a time.
pub fn month_at(minutes: i64) -> String {
    date_at(minutes)[..7].to_string()
}

/// Whole years from `birth` to `on`.
pub fn age(birth: &str, on: &str) -> Option<i64> {
    let (by, bm, bd) = parse_date(birth)?;
    let (y, m, d) = parse_date(on)?;
    Some(y - by - i64::from((m, d) < (bm, bd)))
}

/// Monday to Friday.
pub fn is_working_day(day: i64) -> bool {
    // 1970-01-01 was a Thursday (weekday 3 counting Monday as 0).
    (day + 3).rem_euclid(7) < 5
}

/// The last day of a notice of `n` working days that begins the working day
/// after `from` (n = 0: `from` itself).
pub fn working_days_after(from: &str, n: i64) -> Option<String> {
    let mut day = day_number(from)?;
    let mut left = n;
    while left > 0 {
        day += 1;
        if is_working_day(day) {
            left -= 1;
        }
    }
    Some(date_of(day))
}

/// `date` plus `years` (29 February becomes 28 February).
pub fn add_years(date: &str, years: i64) -> Option<String> {
    let (y, m, d) = parse_date(date)?;
    let d = if m == 2 && d == 29 { 28 } else { d };
    Some(format!("{:04}-{m:02}-{d:02}", y + years))
}

/// Thresholds in hours, ascending, from `"100,300,600,1000,1500"`.
pub fn thresholds(s: &str) -> Option<Vec<i64>> {
    let v: Vec<i64> = s
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    (!v.is_empty() && v.len() <= 5 && v.windows(2).all(|w| w[0] < w[1]) && v[0] > 0).then_some(v)
}

/// The star tier (0-5) earned by `minutes` of verified service.
pub fn tier(minutes: i64, thresholds: &[i64]) -> i64 {
    thresholds.iter().filter(|h| minutes >= **h * 60).count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = parse_at("2026-12-01T14:30").unwrap();
        assert_eq!(fmt_at(t), "2026-12-01T14:30");
        assert_eq!(parse_at("2026-12-01 14:30"), Some(t));
        assert_eq!(month_at(t), "2026-12");
        assert_eq!(parse_at("2026-12-01T24:00"), None);
        assert_eq!(parse_at("2026-02-30T10:00"), None);
        assert_eq!(age("2008-06-02", "2026-06-01"), Some(17));
        assert_eq!(age("2008-06-02", "2026-06-02"), Some(18));
    }

    #[test]
    fn working_days_skip_weekends() {
        // 2026-03-06 is a Friday: five working days end on Friday 13th.
        assert!(is_working_day(day_number("2026-03-06").unwrap()));
        assert!(!is_working_day(day_number("2026-03-07").unwrap()));
        assert_eq!(
            working_days_after("2026-03-06", 5).as_deref(),
            Some("2026-03-13")
        );
        assert_eq!(
            working_days_after("2026-03-07", 1).as_deref(),
            Some("2026-03-09")
        );
        assert_eq!(
            working_days_after("2026-03-07", 0).as_deref(),
            Some("2026-03-07")
        );
        assert_eq!(add_years("2024-02-29", 2).as_deref(), Some("2026-02-28"));
    }

    #[test]
    fn tiers_follow_hours() {
        let t = thresholds("100,300,600,1000,1500").unwrap();
        assert_eq!(tier(0, &t), 0);
        assert_eq!(tier(100 * 60 - 1, &t), 0);
        assert_eq!(tier(100 * 60, &t), 1);
        assert_eq!(tier(650 * 60, &t), 3);
        assert_eq!(tier(5000 * 60, &t), 5);
        assert_eq!(thresholds("300,100"), None);
        assert_eq!(thresholds("10, 20,50").unwrap(), vec![10, 20, 50]);
    }
}
