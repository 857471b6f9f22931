//! The SVG plot: messages per second at the sink (one-second windows) above
//! the engine's queue (pending plus deferred recipients) over time.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::drive::Sample;

/// Samples per one-second window of the throughput line (250 ms sampling).
const WINDOW: usize = 4;

pub fn write(path: &Path, title: &str, timeline: &[Sample]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let (top, bottom) = root.split_vertically(320);
    let end = timeline.last().map_or(1.0, |s| s.t.max(1.0));
    let rates = throughput(timeline);
    let peak_rate = rates.iter().map(|(_, r)| *r).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{title}: messages/s at the sink"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..peak_rate * 1.1)
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .draw_series(LineSeries::new(rates, &BLUE))
        .map_err(|e| anyhow!("plot: {e}"))?;
    let peak_queue = timeline.iter().map(|s| s.queued).max().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("queue: pending + deferred recipients", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..peak_queue * 1.1)
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .draw_series(LineSeries::new(
            timeline.iter().map(|s| (s.t, s.queued as f64)),
            &RED,
        ))
        .map_err(|e| anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

/// (time, messages/s) over sliding windows of [`WINDOW`] samples.
fn throughput(timeline: &[Sample]) -> Vec<(f64, f64)> {
    timeline
        .windows(WINDOW + 1)
        .map(|w| {
            let (a, b) = (w[0], w[WINDOW]);
            let dt = (b.t - a.t).max(1e-6);
            (b.t, (b.delivered_at_sink - a.delivered_at_sink) as f64 / dt)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, delivered: u64, queued: u64) -> Sample {
        Sample {
            t,
            delivered_at_sink: delivered,
            final_in_store: delivered,
            queued,
            deferred: 0,
            rss: 0,
        }
    }

    #[test]
    fn the_plot_is_an_svg_with_both_charts() {
        let timeline: Vec<Sample> = (0..40)
            .map(|k| sample(k as f64 * 0.25, k * 100, 4000 - k * 100))
            .collect();
        let rates = throughput(&timeline);
        assert!(
            rates.iter().all(|(_, r)| (r - 400.0).abs() < 1e-6),
            "{rates:?}"
        );
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = dir.path().join("p.svg");
        write(&path, "smoke", &timeline).expect("plot written");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("messages/s at the sink") && svg.contains("queue"));
    }
}
