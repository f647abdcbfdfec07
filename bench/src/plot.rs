//! PNG: deliveries/s and latency (p50, p99, max) per second over the run, and the
//! latency distribution (value at percentile) of the whole run.

use std::path::Path;

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::stats::Tick;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a TrueType font for plotters' `ab_glyph` backend (no fontconfig or
/// freetype needed). `SSE_BENCH_FONT` overrides the search; without any font the
/// charts are drawn without text.
fn load_font() -> bool {
    let mut paths: Vec<String> = FONT_PATHS.iter().map(|s| s.to_string()).collect();
    if let Ok(p) = std::env::var("SSE_BENCH_FONT") {
        paths.insert(0, p);
    }
    for p in paths {
        if let Ok(bytes) = std::fs::read(&p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

pub fn draw(path: &Path, title: &str, ticks: &[Tick], total: &Histogram<u64>) -> Result<()> {
    let text = load_font();
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let (top, bottom) = root.split_vertically(450);
    let (tl, tr) = top.split_horizontally(600);
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e:?}");

    let tmax = ticks.last().map(|t| t.t).unwrap_or(1.0).max(1.0);
    // Deliveries per second.
    {
        let ymax = ticks.iter().map(|t| t.deliveries).max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut b = ChartBuilder::on(&tl);
        b.margin(10)
            .x_label_area_size(if text { 35 } else { 5 })
            .y_label_area_size(if text { 80 } else { 5 });
        if text {
            b.caption(format!("{title}: deliveries/s"), ("sans-serif", 18));
        }
        let mut chart = b.build_cartesian_2d(0.0..tmax, 0.0..ymax).map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc("seconds");
        if !text {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                ticks.iter().map(|t| (t.t, t.deliveries as f64)),
                &BLUE,
            ))
            .map_err(err)?;
    }
    // Latency per second.
    {
        let ymax = ticks.iter().map(|t| t.max_ms).fold(1.0, f64::max) * 1.1;
        let ymin = (ticks
            .iter()
            .filter(|t| t.deliveries > 0)
            .map(|t| t.p50_ms)
            .fold(f64::MAX, f64::min)
            * 0.5)
            .clamp(0.01, 1.0);
        let mut b = ChartBuilder::on(&tr);
        b.margin(10)
            .x_label_area_size(if text { 35 } else { 5 })
            .y_label_area_size(if text { 60 } else { 5 });
        if text {
            b.caption(
                "latency per second (ms): p50 green, p99 red, max grey",
                ("sans-serif", 18),
            );
        }
        let mut chart = b
            .build_cartesian_2d(0.0..tmax, (ymin..ymax).log_scale())
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc("seconds");
        if !text {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(err)?;
        let with = |f: fn(&Tick) -> f64| {
            ticks
                .iter()
                .filter(|t| t.deliveries > 0)
                .map(move |t| (t.t, f(t).max(ymin)))
                .collect::<Vec<_>>()
        };
        chart
            .draw_series(LineSeries::new(
                with(|t| t.max_ms),
                &RGBColor(150, 150, 150),
            ))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(with(|t| t.p99_ms), &RED))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(with(|t| t.p50_ms), &GREEN))
            .map_err(err)?;
    }
    // Distribution: latency at percentile, x = 1/(1-q) on a log scale.
    {
        let mut points = Vec::new();
        if !total.is_empty() {
            let mut q = 0.0f64;
            while q < 0.99999 {
                let v = total.value_at_quantile(q) as f64 / 1000.0;
                points.push((1.0 / (1.0 - q), v.max(0.001)));
                q = 1.0 - (1.0 - q) * 0.9;
            }
            points.push((100_000.0, (total.max() as f64 / 1000.0).max(0.001)));
        }
        let ymax = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.2;
        let ymin = (points.iter().map(|p| p.1).fold(f64::MAX, f64::min) * 0.5).clamp(0.001, 1.0);
        let mut b = ChartBuilder::on(&bottom);
        b.margin(10)
            .x_label_area_size(if text { 35 } else { 5 })
            .y_label_area_size(if text { 60 } else { 5 });
        if text {
            b.caption(
                format!(
                    "latency distribution, {} events (x: 10 = p90, 100 = p99, 1000 = p99.9)",
                    total.len()
                ),
                ("sans-serif", 18),
            );
        }
        let mut chart = b
            .build_cartesian_2d((1.0..100_000.0).log_scale(), (ymin..ymax).log_scale())
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc("1 / (1 - percentile)").y_desc("ms");
        if !text {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(err)?;
        chart
            .draw_series(LineSeries::new(points, &BLUE))
            .map_err(err)?;
    }
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}
