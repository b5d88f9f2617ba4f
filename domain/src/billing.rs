//! How usage becomes money, with no I/O: billing hours, the charge of one
//! resource for one hour from the stretches it ran, and the monthly cap.
//!
//! - A resource is charged per instance-second: each stretch of an hour it
//!   ran contributes `seconds × instances × hourly rate / 3600` at its plan's
//!   rate (microsecond timestamps, exact decimals).
//! - The hour's charge is rounded half-even to 0.0001 (the ledger's scale).
//! - Within one calendar month (UTC) a resource is never charged more than
//!   its plan's monthly price × the most instances it ran that month: once
//!   the month's charges reach that cap, further hours are free.

use bigdecimal::{BigDecimal, RoundingMode};
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

use crate::Invalid;
use crate::lifecycle::AppStatus;

/// Decimal places of every charge (the ledger's scale).
pub const CHARGE_SCALE: i64 = 4;
/// Decimal places of `hours_used` on a billing record.
pub const HOURS_SCALE: i64 = 6;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// One billing hour, `[start, start + 1 h)`, starting on the hour (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    start: DateTime<Utc>,
}

impl Period {
    /// The hour that starts at `start`; anything not on the hour is refused.
    pub fn starting(start: DateTime<Utc>) -> Result<Self, Invalid> {
        if start.minute() != 0 || start.second() != 0 || start.nanosecond() != 0 {
            return Err(Invalid::new(
                "period_start",
                format!(
                    "a billing period starts on the hour (UTC), such as \"{}\"",
                    Self::containing(start).start.to_rfc3339()
                ),
            ));
        }
        Ok(Self { start })
    }

    /// The hour `at` falls in.
    pub fn containing(at: DateTime<Utc>) -> Self {
        let start = Utc
            .with_ymd_and_hms(at.year(), at.month(), at.day(), at.hour(), 0, 0)
            .single()
            .unwrap_or(at);
        Self { start }
    }

    /// The newest hour that has ended by `now`.
    pub fn last_complete(now: DateTime<Utc>) -> Self {
        Self::containing(now).previous()
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::hours(1)
    }

    pub fn next(&self) -> Self {
        Self { start: self.end() }
    }

    pub fn previous(&self) -> Self {
        Self {
            start: self.start - Duration::hours(1),
        }
    }

    /// Whether the hour is over at `now`.
    pub fn has_ended(&self, now: DateTime<Utc>) -> bool {
        self.end() <= now
    }

    /// The first instant of the calendar month the hour belongs to.
    pub fn month_start(&self) -> DateTime<Utc> {
        month_start(self.start)
    }

    /// The idempotency key of the hour's job (`billing:2026-11-22T10`).
    pub fn key(&self) -> String {
        format!("billing:{}", self.start.format("%Y-%m-%dT%H"))
    }
}

/// The first instant of `at`'s calendar month (UTC).
pub fn month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(at)
}

/// The first instant of the month after `at`'s (UTC).
pub fn next_month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or(at)
}

/// How many instances of an application are billed in `status`: all of them
/// while it runs, none while pending, stopped, failed, suspended or deleted.
/// `None` while a release builds or rolls out: billing goes on as it was
/// (an application that ran keeps being billed, with its current count, while
/// its old release serves; one that did not run is not billed for its build).
pub fn billable_instances(status: AppStatus, instance_count: i32) -> Option<i32> {
    match status {
        AppStatus::Running => Some(instance_count.max(0)),
        AppStatus::Building => None,
        _ => Some(0),
    }
}

/// A stretch of time a resource ran unchanged (one usage row).
#[derive(Debug, Clone)]
pub struct Stretch {
    pub started_at: DateTime<Utc>,
    /// `None`: still running.
    pub ended_at: Option<DateTime<Utc>>,
    pub instances: i32,
    pub plan_id: i64,
    pub hourly_rate: BigDecimal,
    pub monthly_price: BigDecimal,
}

impl Stretch {
    /// Microseconds of `[from, to)` this stretch covers.
    pub fn overlap_micros(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let start = self.started_at.max(from);
        let end = self.ended_at.map_or(to, |e| e.min(to));
        (end - start).num_microseconds().unwrap_or(0).max(0)
    }
}

/// What one resource ran in one hour, before the monthly cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourUsage {
    /// Instance-hours, rounded to [`HOURS_SCALE`].
    pub hours_used: BigDecimal,
    /// The most instances at once.
    pub peak_instances: i32,
    /// The plan of the latest stretch (the record's plan).
    pub plan_id: i64,
    pub hourly_rate: BigDecimal,
    pub monthly_price: BigDecimal,
    /// The hour's charge before the monthly cap, rounded half-even to [`CHARGE_SCALE`].
    pub raw: BigDecimal,
}

/// The hour's usage of one resource from its stretches (any order); `None`
/// when it did not run in the hour.
pub fn hour_usage(period: Period, stretches: &[Stretch]) -> Option<HourUsage> {
    // Exact integer arithmetic (a rate has at most four decimals): BigDecimal
    // division is slow, and billing runs it for every resource every hour.
    let (from, to) = (period.start(), period.end());
    let mut instance_micros: i128 = 0;
    let mut cost_micro_e4: i128 = 0;
    let mut peak = 0;
    let mut latest: Option<&Stretch> = None;
    for stretch in stretches {
        let micros = stretch.overlap_micros(from, to);
        if micros == 0 || stretch.instances <= 0 {
            continue;
        }
        let used = i128::from(micros) * i128::from(stretch.instances);
        cost_micro_e4 += used * in_units(&stretch.hourly_rate, CHARGE_SCALE);
        instance_micros += used;
        peak = peak.max(stretch.instances);
        if latest.is_none_or(|l| l.started_at <= stretch.started_at) {
            latest = Some(stretch);
        }
    }
    let latest = latest?;
    let hour = i128::from(MICROS_PER_HOUR);
    // Instance-hours at HOURS_SCALE: micros × 10^6 / micros per hour.
    let hours = div_half_even(instance_micros * 1_000_000, hour);
    let charge = div_half_even(cost_micro_e4, hour);
    Some(HourUsage {
        hours_used: from_units(hours, HOURS_SCALE),
        peak_instances: peak,
        plan_id: latest.plan_id,
        hourly_rate: latest.hourly_rate.clone(),
        monthly_price: latest.monthly_price.clone(),
        raw: from_units(charge, CHARGE_SCALE),
    })
}

/// `value` in units of 10^-scale (a rate or price stored with at most `scale` decimals).
fn in_units(value: &BigDecimal, scale: i64) -> i128 {
    let (digits, _) = value.with_scale(scale).as_bigint_and_exponent();
    i128::try_from(&digits).unwrap_or(i128::MAX)
}

fn from_units(units: i128, scale: i64) -> BigDecimal {
    BigDecimal::new(units.into(), scale)
}

/// `n / d` rounded half to even (`n >= 0`, `d > 0`).
fn div_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r > d || (2 * r == d && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

/// The charge of an hour: its raw cost rounded to [`CHARGE_SCALE`], but no
/// more than what is left of the month's cap (`monthly price × peak
/// instances`) after `charged_this_month`. Never negative.
pub fn capped_charge(
    raw: &BigDecimal,
    monthly_price: &BigDecimal,
    peak_instances_this_month: i32,
    charged_this_month: &BigDecimal,
) -> BigDecimal {
    let zero = BigDecimal::from(0);
    let rounded = raw.with_scale_round(CHARGE_SCALE, RoundingMode::HalfEven);
    let cap = monthly_price * BigDecimal::from(peak_instances_this_month.max(0));
    let left = (cap - charged_this_month).max(zero.clone());
    rounded.min(left).max(zero).with_scale(CHARGE_SCALE)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn dec(text: &str) -> BigDecimal {
        BigDecimal::from_str(text).unwrap()
    }

    fn stretch(from: &str, to: Option<&str>, instances: i32, rate: &str) -> Stretch {
        Stretch {
            started_at: at(from),
            ended_at: to.map(at),
            instances,
            plan_id: 1,
            hourly_rate: dec(rate),
            monthly_price: dec("10.00"),
        }
    }

    #[test]
    fn periods_start_on_the_hour() {
        let p = Period::starting(at("2026-11-22T10:00:00Z")).unwrap();
        assert_eq!(p.end(), at("2026-11-22T11:00:00Z"));
        assert_eq!(p.key(), "billing:2026-11-22T10");
        assert!(Period::starting(at("2026-11-22T10:30:00Z")).is_err());
        assert_eq!(Period::containing(at("2026-11-22T10:59:59.999Z")), p);
        assert_eq!(Period::last_complete(at("2026-11-22T11:00:00Z")), p);
        assert!(p.has_ended(at("2026-11-22T11:00:00Z")));
        assert!(!p.has_ended(at("2026-11-22T10:59:59Z")));
        assert_eq!(p.month_start(), at("2026-11-01T00:00:00Z"));
        assert_eq!(
            next_month_start(at("2026-12-31T23:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn instance_seconds_at_each_stretch_rate() {
        let p = Period::starting(at("2026-11-22T10:00:00Z")).unwrap();
        // 1 instance from before the hour to :15, 3 from :15 to :45, stopped at :45.
        let stretches = [
            stretch(
                "2026-11-22T09:00:00Z",
                Some("2026-11-22T10:15:00Z"),
                1,
                "0.0400",
            ),
            stretch(
                "2026-11-22T10:15:00Z",
                Some("2026-11-22T10:45:00Z"),
                3,
                "0.0400",
            ),
            stretch(
                "2026-11-22T08:00:00Z",
                Some("2026-11-22T09:00:00Z"),
                5,
                "0.0400",
            ),
        ];
        let usage = hour_usage(p, &stretches).unwrap();
        // 0.25 h × 1 + 0.5 h × 3 = 1.75 instance-hours at 0.04 = 0.07.
        assert_eq!(usage.hours_used, dec("1.750000"));
        assert_eq!(usage.peak_instances, 3);
        assert_eq!(
            capped_charge(&usage.raw, &usage.monthly_price, 3, &dec("0")),
            dec("0.0700")
        );
        assert!(hour_usage(p, &stretches[2..]).is_none());
        // Still running: counts to the end of the hour.
        let open = [stretch("2026-11-22T10:30:00Z", None, 2, "0.0100")];
        let usage = hour_usage(p, &open).unwrap();
        assert_eq!(
            capped_charge(&usage.raw, &usage.monthly_price, 2, &dec("0")),
            dec("0.0100")
        );
    }

    #[test]
    fn integer_rounding_is_half_even() {
        assert_eq!(div_half_even(5, 2), 2);
        assert_eq!(div_half_even(7, 2), 4);
        assert_eq!(div_half_even(11, 4), 3);
        assert_eq!(div_half_even(9, 4), 2);
        assert_eq!(in_units(&BigDecimal::from_str("0.0137").unwrap(), 4), 137);
        assert_eq!(from_units(175, 2), BigDecimal::from_str("1.75").unwrap());
        // One second of one instance at 0.0137 an hour: 0.0000038… → 0.0000.
        let p = Period::starting(at("2026-11-22T10:00:00Z")).unwrap();
        let second = [stretch(
            "2026-11-22T10:00:00Z",
            Some("2026-11-22T10:00:01Z"),
            1,
            "0.0137",
        )];
        assert_eq!(
            hour_usage(p, &second).unwrap().raw,
            BigDecimal::from_str("0.0000").unwrap()
        );
        assert_eq!(
            hour_usage(p, &second).unwrap().hours_used,
            BigDecimal::from_str("0.000278").unwrap()
        );
    }

    #[test]
    fn only_serving_applications_are_billed() {
        assert_eq!(billable_instances(AppStatus::Running, 3), Some(3));
        assert_eq!(billable_instances(AppStatus::Building, 2), None);
        for idle in [
            AppStatus::Pending,
            AppStatus::Stopped,
            AppStatus::Failed,
            AppStatus::Suspended,
            AppStatus::Deleting,
        ] {
            assert_eq!(billable_instances(idle, 3), Some(0), "{idle}");
        }
    }

    #[test]
    fn the_monthly_cap_bounds_every_charge() {
        let price = dec("10.00");
        assert_eq!(
            capped_charge(&dec("0.5"), &price, 1, &dec("9.80")),
            dec("0.2000")
        );
        assert_eq!(
            capped_charge(&dec("0.5"), &price, 1, &dec("10.00")),
            dec("0.0000")
        );
        assert_eq!(
            capped_charge(&dec("0.5"), &price, 1, &dec("12.00")),
            dec("0.0000")
        );
        assert_eq!(
            capped_charge(&dec("0.5"), &price, 2, &dec("9.80")),
            dec("0.5000")
        );
        assert_eq!(
            capped_charge(&dec("0.00005"), &price, 1, &dec("0")),
            dec("0.0000")
        );
        assert_eq!(
            capped_charge(&dec("0.00015"), &price, 1, &dec("0")),
            dec("0.0002")
        );
    }

    /// A small deterministic generator, so the property below needs no crate.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn property_a_month_never_exceeds_its_cap_and_no_charge_is_negative() {
        let mut rng = Lcg(0x5eed);
        for case in 0..120 {
            let price = BigDecimal::from(rng.below(5000) as i64) / BigDecimal::from(100);
            let rate = BigDecimal::from(rng.below(20000) as i64) / BigDecimal::from(10000);
            let month = at("2026-02-01T00:00:00Z");
            let hours = (next_month_start(month) - month).num_hours();
            let mut charged = BigDecimal::from(0);
            let mut peak = 0;
            let mut hour = Period::starting(month).unwrap();
            for _ in 0..hours {
                let instances = 1 + rng.below(10) as i32;
                let minute = rng.below(60) as i64;
                let stretches = [Stretch {
                    started_at: hour.start() + Duration::minutes(minute),
                    ended_at: None,
                    instances,
                    plan_id: 1,
                    hourly_rate: rate.clone(),
                    monthly_price: price.clone(),
                }];
                let usage = hour_usage(hour, &stretches).unwrap();
                peak = peak.max(usage.peak_instances);
                let charge = capped_charge(&usage.raw, &usage.monthly_price, peak, &charged);
                assert!(charge >= 0, "case {case}: negative charge");
                charged += charge;
                assert!(
                    charged <= &price * BigDecimal::from(peak),
                    "case {case}: {charged} over the cap of {price} × {peak}"
                );
                hour = hour.next();
            }
        }
    }
}
