//! Durations (`30s`, `1h30m`) and sizes (`64MiB`) in the configuration.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Parses `30s`, `1h30m`, `7d`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses `64MiB`, `256KB`, `1GB`, or a number of bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" | "K" => 1000,
        "KiB" => 1 << 10,
        "MB" | "M" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" | "G" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        "TB" => 1000u64.pow(4),
        "TiB" => 1 << 40,
        u => return Err(format!("invalid size unit {u:?} in {s:?}")),
    };
    Ok((n * mult as f64) as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(f64),
    Str(String),
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) if n >= 0.0 => Ok(Duration::from_secs_f64(n)),
        NumOrStr::Num(n) => Err(serde::de::Error::custom(format!("negative duration {n}"))),
        NumOrStr::Str(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

pub(crate) fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) if n >= 0.0 => Ok(n as u64),
        NumOrStr::Num(n) => Err(serde::de::Error::custom(format!("negative size {n}"))),
        NumOrStr::Str(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}
