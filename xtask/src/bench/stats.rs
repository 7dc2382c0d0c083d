//! Medians and ratios: how every section reduces its repeated measurements to figures.

use std::fmt;

use serde::Serialize;

use super::measure::Row;
use super::names::{Scenario, ServerName};

/// The median of `v` (the upper one of an even count); 0 for none.
pub(super) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The median of `f` over the rows of `scenario` against `server`; `None` for none.
pub(super) fn median_of(
    rows: &[Row],
    scenario: Scenario,
    server: ServerName,
    f: impl Fn(&Row) -> f64,
) -> Option<f64> {
    median_where(rows, |r| r.scenario == scenario && r.server == server, f)
}

/// The median of `f` over the measurements `keep` selects; `None` when it selects none.
pub(super) fn median_where<T>(
    measured: &[T],
    keep: impl Fn(&T) -> bool,
    f: impl Fn(&T) -> f64,
) -> Option<f64> {
    let v: Vec<f64> = measured.iter().filter(|m| keep(m)).map(f).collect();
    (!v.is_empty()).then(|| median(&v))
}

/// `a / b`, when both were measured and `b` is positive.
pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The larger of two figures, or the one measured.
pub(super) fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A median and the range of the measurements around it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` for none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let v: Vec<f64> = values.into_iter().collect();
        Some(Spread {
            median: median_where(&v, |_| true, |&x| x)?,
            min: v.iter().copied().reduce(f64::min)?,
            max: v.iter().copied().reduce(f64::max)?,
        })
    }
}

/// `median (min-max)`, with the precision asked (`{:.2}`; none: as `f64` prints).
impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(p) => write!(f, "{:.p$} ({:.p$}-{:.p$})", self.median, self.min, self.max),
            None => write!(f, "{} ({}-{})", self.median, self.min, self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_median_and_the_range() {
        let s = Spread::of([3.0, 1.0, 2.5]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 3.0));
        assert_eq!(format!("{s:.1}"), "2.5 (1.0-3.0)");
        assert_eq!(Spread::of([]), None);
    }
}
