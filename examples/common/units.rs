//! The units the example CLIs (`run`, `judge`) take on their command lines, as clap value
//! parsers: durations (`500ms`, `2s`, `1.5s`, `3m`; a bare number is seconds) and sizes
//! (`1024`, `64K`, `16M`, `1G`). The library's own serde form (profiles) counts plain
//! bytes and `{ secs, nanos }`; these are for people typing flags. Each example includes
//! this file with a `#[path]` module (`judge.rs`: `"common/units.rs"`, `run/main.rs`:
//! `"../common/units.rs"`).

use std::time::Duration;

/// `500ms`, `2s`, `1.5s`, `3m`; a bare number is seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration (e.g. 500ms, 2s, 1m)");
    let (num, unit) = v
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| v.split_at(i))
        .unwrap_or((v, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// `1024`, `64K`, `16M`, `1G` (binary multiples, either case); a bare number is bytes.
pub fn parse_size(v: &str) -> Result<u64, String> {
    let (num, mult) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&v[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a size (a number with an optional K, M or G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{v:?} is too large"))
}
