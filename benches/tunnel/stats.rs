//! Clocks and the figures' statistics and formatting.

use crate::NOT_INSTALLED;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock in µs: comparable across processes and with `expires_at`.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Copy)]
pub struct Dist {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn dist(mut v: Vec<f64>) -> Option<Dist> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Dist {
        p50: pct(&v, 0.50),
        p99: pct(&v, 0.99),
        max: v[v.len() - 1],
    })
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

pub fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

pub fn fmt_dist(d: Option<Dist>) -> String {
    match d {
        Some(d) => format!("{} / {} / {} ms", ms(d.p50), ms(d.p99), ms(d.max)),
        None => "no samples".into(),
    }
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

pub fn cell(v: Option<f64>, digits: usize, have_haproxy: bool) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None if !have_haproxy => NOT_INSTALLED.into(),
        None => "failed".into(),
    }
}
