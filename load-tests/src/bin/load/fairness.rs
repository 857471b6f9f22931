//! No domain starved: from the moments each recipient's message arrived at
//! the sink, every domain must get its first message soon after the run's
//! first, keep a fair share of the rate while everyone has work (measured at
//! the run's half-way point), and not finish far behind the others (the
//! median domain).

use broadside_load_tests::scenario::FairnessCheck;
use serde::Serialize;

/// The share of its messages at which a domain counts as done: retries of
/// deferred recipients (a few %) come on the retry schedule, not on the
/// domain's rate, so the last messages say nothing about fairness.
const COMPLETE: f64 = 0.9;
/// The rate share is measured from the start until this share of all
/// messages arrived, when every domain of a fair run still has work.
const HALF: f64 = 0.5;

/// One domain's arrivals.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainArrivals {
    pub domain: String,
    /// Messages it should get (its recipients but the refused ones).
    pub expected: u64,
    /// Seconds since the start of the run at which each of its recipients'
    /// first message arrived, in any order.
    pub times: Vec<f64>,
}

/// One domain's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DomainFigures {
    pub domain: String,
    pub expected: u64,
    pub arrived: u64,
    /// Its first arrival after the run's first arrival, seconds.
    pub first_lag_s: Option<f64>,
    /// Its share of its own messages at the half-way point over 0.5 (`None`
    /// for domains below `min_messages`).
    pub rate_ratio: Option<f64>,
    /// When it reached 90 % of its messages after the median domain did,
    /// seconds (`None` for domains below `min_messages`).
    pub completion_lag_s: Option<f64>,
}

/// What the fairness check found.
#[derive(Debug, Default, Serialize)]
pub struct FairnessFindings {
    /// The bounds checked.
    pub first_delivery_within_s: f64,
    pub min_rate_ratio: f64,
    pub min_messages: u64,
    pub completion_lag_s: f64,
    /// Since the start of the run: the first arrival, when half of all
    /// expected messages had arrived, and when the median domain (of those
    /// measured) had 90 % of its own.
    pub first_arrival_s: Option<f64>,
    pub half_s: Option<f64>,
    pub median_complete_s: Option<f64>,
    /// The worst domain of each measure.
    pub worst_first_lag_s: f64,
    pub worst_rate_ratio: Option<f64>,
    pub worst_completion_lag_s: f64,
    pub domains: Vec<DomainFigures>,
    /// One line per broken bound: `d3.example: first message 14.2 s after …`.
    pub starved: Vec<String>,
}

impl FairnessFindings {
    pub fn passed(&self) -> bool {
        self.starved.is_empty()
    }

    /// The report's lines.
    pub fn print(&self) {
        let ratio = self
            .worst_rate_ratio
            .map_or("-".to_owned(), |r| format!("{r:.2}"));
        println!(
            "fairness   {} — {} domains; worst first delivery +{:.2} s (bound {:.1}), worst rate \
             ratio at half-way {ratio} (bound {:.2}), worst lag to 90 % {:+.2} s (bound {:.1})",
            if self.passed() { "passed" } else { "FAILED" },
            self.domains.len(),
            self.worst_first_lag_s,
            self.first_delivery_within_s,
            self.min_rate_ratio,
            self.worst_completion_lag_s,
            self.completion_lag_s,
        );
        for why in &self.starved {
            println!("  starved    {why}");
        }
    }
}

/// The `share` quantile of sorted `times` out of `expected`: when the
/// `ceil(share × expected)`-th arrival came, if it did.
fn quantile(times: &[f64], expected: u64, share: f64) -> Option<f64> {
    let n = ((expected as f64 * share).ceil() as usize).max(1);
    times.get(n - 1).copied()
}

/// Checks every domain against `bounds`.
pub fn check(mut domains: Vec<DomainArrivals>, bounds: &FairnessCheck) -> FairnessFindings {
    for d in &mut domains {
        d.times.sort_by(f64::total_cmp);
    }
    let mut all: Vec<f64> = domains
        .iter()
        .flat_map(|d| d.times.iter().copied())
        .collect();
    all.sort_by(f64::total_cmp);
    let total: u64 = domains.iter().map(|d| d.expected).sum();
    let mut f = FairnessFindings {
        first_delivery_within_s: bounds.first_delivery_within_secs,
        min_rate_ratio: bounds.min_rate_ratio,
        min_messages: bounds.min_messages,
        completion_lag_s: bounds.completion_lag_secs,
        first_arrival_s: all.first().copied(),
        // A run that never got there (messages missing) is judged at its end.
        half_s: quantile(&all, total, HALF).or(all.last().copied()),
        median_complete_s: median_completion(&domains, bounds),
        ..FairnessFindings::default()
    };
    let (Some(first), Some(half)) = (f.first_arrival_s, f.half_s) else {
        f.starved.push("no message arrived at all".to_owned());
        return f;
    };
    let marks = Marks {
        first,
        half,
        complete: f.median_complete_s,
    };
    for d in &domains {
        let figures = judge(d, bounds, &marks, &mut f.starved);
        f.worst_first_lag_s = f.worst_first_lag_s.max(figures.first_lag_s.unwrap_or(0.0));
        f.worst_completion_lag_s = f
            .worst_completion_lag_s
            .max(figures.completion_lag_s.unwrap_or(0.0));
        if let Some(r) = figures.rate_ratio {
            f.worst_rate_ratio = Some(f.worst_rate_ratio.map_or(r, |w| w.min(r)));
        }
        f.domains.push(figures);
    }
    f
}

/// Whether a domain has enough messages for rates and quantiles.
fn measured(d: &DomainArrivals, bounds: &FairnessCheck) -> bool {
    d.expected >= bounds.min_messages.max(1)
}

/// When the median measured domain reached 90 % of its messages; domains
/// that never did count as last.
fn median_completion(domains: &[DomainArrivals], bounds: &FairnessCheck) -> Option<f64> {
    let mut done: Vec<f64> = domains
        .iter()
        .filter(|d| measured(d, bounds))
        .map(|d| quantile(&d.times, d.expected, COMPLETE).unwrap_or(f64::INFINITY))
        .collect();
    done.sort_by(f64::total_cmp);
    done.get(done.len().checked_sub(1)? / 2)
        .copied()
        .filter(|t| t.is_finite())
}

/// The run's reference moments, seconds since its start.
struct Marks {
    first: f64,
    half: f64,
    complete: Option<f64>,
}

/// One domain's figures; a line in `starved` for each bound it breaks.
fn judge(
    d: &DomainArrivals,
    bounds: &FairnessCheck,
    marks: &Marks,
    starved: &mut Vec<String>,
) -> DomainFigures {
    let name = &d.domain;
    let mut figures = DomainFigures {
        domain: name.clone(),
        expected: d.expected,
        arrived: d.times.len() as u64,
        first_lag_s: d.times.first().map(|t| t - marks.first),
        rate_ratio: None,
        completion_lag_s: None,
    };
    let Some(lag) = figures.first_lag_s else {
        if d.expected > 0 {
            starved.push(format!("{name}: no message arrived"));
        }
        return figures;
    };
    if lag > bounds.first_delivery_within_secs {
        starved.push(format!(
            "{name}: first message {lag:.1} s after the run's first (bound {:.1} s)",
            bounds.first_delivery_within_secs
        ));
    }
    if !measured(d, bounds) {
        return figures;
    }
    let by_half = d.times.partition_point(|t| *t <= marks.half) as f64;
    let ratio = (by_half / d.expected as f64) / HALF;
    figures.rate_ratio = Some(ratio);
    if ratio < bounds.min_rate_ratio {
        starved.push(format!(
            "{name}: {:.0} % of its messages when the run had half of all, a rate ratio of \
             {ratio:.2} (bound {:.2})",
            ratio * HALF * 100.0,
            bounds.min_rate_ratio
        ));
    }
    let Some(reference) = marks.complete else {
        return figures;
    };
    match quantile(&d.times, d.expected, COMPLETE) {
        None => starved.push(format!("{name}: never reached 90 % of its messages")),
        Some(t) => {
            let lag = t - reference;
            figures.completion_lag_s = Some(lag);
            if lag > bounds.completion_lag_secs {
                starved.push(format!(
                    "{name}: reached 90 % {lag:.1} s after the median domain (bound {:.1} s)",
                    bounds.completion_lag_secs
                ));
            }
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` arrivals evenly spread over `[from, to]` seconds.
    fn domain(name: &str, n: u64, from: f64, to: f64) -> DomainArrivals {
        let step = (to - from) / n.saturating_sub(1).max(1) as f64;
        DomainArrivals {
            domain: name.to_owned(),
            expected: n,
            times: (0..n).map(|i| from + step * i as f64).collect(),
        }
    }

    fn bounds() -> FairnessCheck {
        FairnessCheck {
            first_delivery_within_secs: 5.0,
            min_rate_ratio: 0.5,
            min_messages: 100,
            completion_lag_secs: 10.0,
        }
    }

    #[test]
    fn domains_progressing_together_pass() {
        let domains = vec![
            domain("d0.example", 1000, 1.0, 30.0),
            domain("d1.example", 1000, 1.2, 31.0),
            domain("d2.example", 200, 1.5, 29.0),
            // Too small for a rate, but on time.
            domain("tiny.example", 3, 2.0, 50.0),
        ];
        let f = check(domains, &bounds());
        assert!(f.passed(), "{:?}", f.starved);
        assert_eq!(f.domains.len(), 4);
        assert!(f.domains[3].rate_ratio.is_none());
        let worst = f.worst_rate_ratio.expect("measured");
        assert!(worst > 0.9, "{f:?}");
    }

    #[test]
    fn a_domain_held_back_until_the_others_are_done_is_starved() {
        // d1 gets nothing until 20 s, then all of it by 40 s: its first
        // message is late, it has under a tenth of its share at half-way and
        // it finishes long after the others.
        let domains = vec![
            domain("d0.example", 1000, 1.0, 20.0),
            domain("d2.example", 1000, 1.0, 20.0),
            domain("d1.example", 1000, 20.0, 40.0),
        ];
        let f = check(domains, &bounds());
        assert!(!f.passed());
        let d1: Vec<&String> = f.starved.iter().filter(|s| s.starts_with("d1.")).collect();
        assert_eq!(d1.len(), 3, "{:?}", f.starved);
        assert!(
            f.starved.iter().all(|s| s.starts_with("d1.")),
            "{:?}",
            f.starved
        );
        assert!(f.worst_first_lag_s >= 19.0, "{f:?}");
        assert!(f.worst_rate_ratio.expect("measured") < 0.1, "{f:?}");
        assert!(f.worst_completion_lag_s > 10.0, "{f:?}");
    }

    #[test]
    fn a_domain_that_never_gets_mail_is_starved() {
        let mut silent = domain("d9.example", 500, 0.0, 0.0);
        silent.times.clear();
        let f = check(vec![domain("d0.example", 500, 0.5, 9.0), silent], &bounds());
        assert_eq!(f.starved, vec!["d9.example: no message arrived".to_owned()]);
    }
}
