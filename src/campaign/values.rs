//! Campaign values: defaults, validators (an impossible value is a deserialization error, so
//! the toml crate reports its line) and durations.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serializer};

pub(super) fn one() -> usize {
    1
}
pub(super) fn two() -> u32 {
    2
}
pub(super) fn four() -> u32 {
    4
}
pub(super) fn five() -> u32 {
    5
}
pub(super) fn sixteen() -> u32 {
    16
}
pub(super) fn fifty() -> u32 {
    50
}
pub(super) fn one_hundred() -> u32 {
    100
}
pub(super) fn two_hundred() -> f64 {
    200.0
}
pub(super) fn five_f() -> f64 {
    5.0
}
pub(super) fn one_twenty_f() -> f64 {
    120.0
}
pub(super) fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

pub(super) fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == 0 {
        return Err(de::Error::custom("must be at least 1, not 0"));
    }
    Ok(v)
}

pub(super) fn at_least_one_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    at_least_one(d).map(|v| v as usize)
}

pub(super) fn some_at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    at_least_one(d).map(Some)
}

pub(super) fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || v < 0.0 {
        return Err(de::Error::custom(format!("must be a number ≥ 0, not {v}")));
    }
    Ok(v)
}

pub(super) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || v <= 0.0 {
        return Err(de::Error::custom(format!("must be a number > 0, not {v}")));
    }
    Ok(v)
}

pub(super) fn some_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(de::Error::custom(format!("must be between 0 and 1, not {v}")));
    }
    Ok(Some(v))
}

/// `60`, `2.5`, `"60s"`, `"500ms"`, `"2m"`, `"1h"`.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl de::Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration: a number of seconds, or text such as \"60s\", \"500ms\", \"2m\"")
        }
        fn visit_f64<E: de::Error>(self, s: f64) -> Result<Duration, E> {
            seconds_to_duration(s).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, s: i64) -> Result<Duration, E> {
            self.visit_f64(s as f64)
        }
        fn visit_u64<E: de::Error>(self, s: u64) -> Result<Duration, E> {
            self.visit_f64(s as f64)
        }
        fn visit_str<E: de::Error>(self, t: &str) -> Result<Duration, E> {
            parse_duration(t).map_err(E::custom)
        }
    }
    d.deserialize_any(DurationVisitor)
}

pub(super) fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The longest duration a campaign or the command line may ask for (a run phase, a drain
/// timeout): a week. Longer ones are typing mistakes, and timers cannot take astronomic ones.
pub const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// The shortest fault or mean time between client crashes: shorter ones would make the
/// schedule (one entry per fault or crash) grow without bound.
pub const MIN_EVENT_SECONDS: f64 = 0.05;

pub(super) fn seconds_to_duration(s: f64) -> Result<Duration, String> {
    if !s.is_finite() || s <= 0.0 {
        return Err(format!("must be a positive duration, not {s}"));
    }
    if s > MAX_SECONDS {
        return Err(format!("must be at most a week ({MAX_SECONDS} s), not {s} s"));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Seconds (drain `quiet` and `timeout`): > 0 and at most a week.
pub(super) fn positive_bounded<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = positive(d)?;
    if v > MAX_SECONDS {
        return Err(de::Error::custom(format!(
            "must be at most a week ({MAX_SECONDS} s), not {v}"
        )));
    }
    Ok(v)
}

/// A mean interval between client crashes: 0 (none), or between [`MIN_EVENT_SECONDS`] and a week.
pub(super) fn crash_interval<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = non_negative(d)?;
    if v != 0.0 && !(MIN_EVENT_SECONDS..=MAX_SECONDS).contains(&v) {
        return Err(de::Error::custom(format!(
            "must be 0 (no crashes) or between {MIN_EVENT_SECONDS} s and a week, not {v}"
        )));
    }
    Ok(v)
}

/// Partitions of a topic: at least 1, and no more than a broker takes (Kafka: 10,000 per topic
/// keeps far below its signed 32-bit limit, which larger numbers overflowed).
pub(super) fn partitions<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = at_least_one(d)?;
    if v > 10_000 {
        return Err(de::Error::custom(format!("must be at most 10000, not {v}")));
    }
    Ok(v)
}

/// A duration as written on the command line or in a campaign: a number of seconds, or a
/// number with the unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (write e.g. 60s, 500ms, 2m)"))?;
    let factor = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("`{other}` is not a duration unit (use ms, s, m or h)")),
    };
    seconds_to_duration(n * factor)
}
