//! Figures over rounds, shared by the bench and `metrics-cost`.

/// The median (the lower middle one for an even count) of `values`, 0 without values.
///
/// ```
/// assert_eq!(ac_redislock_bench::stats::median(&[3.0, 1.0, 2.0, 4.0]), 2.0);
/// ```
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}
