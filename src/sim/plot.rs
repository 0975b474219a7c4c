//! SVG plots of a sweep summary (feature `plots`): VM create and start
//! failure fractions against the arrival rate (or trace fraction), one line
//! per policy (and per combination of the other varying parameters) with
//! its 95% confidence band; and GPU-hours split between VMs, Kubernetes and
//! idle, one panel per line. Plotters' SVG backend needs no fonts: text is
//! written as SVG text and sized by its built-in estimate, so the bytes
//! depend on the data alone.

use std::collections::BTreeMap;

use plotters::prelude::*;

use crate::sim::stats::PlotPoint;
use crate::sim::sweep::SweepError;

const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// Lines: points grouped by policy and the other parameters that vary,
/// in first-seen order, each sorted by x.
fn lines(points: &[PlotPoint]) -> Vec<(String, Vec<&PlotPoint>)> {
    // Which other parameters take more than one value: only those name a line.
    let mut values: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in points {
        for (k, v) in &p.others {
            let e = values.entry(k.as_str()).or_default();
            if !e.contains(&v.as_str()) {
                e.push(v.as_str());
            }
        }
    }
    let mut out: Vec<(String, Vec<&PlotPoint>)> = Vec::new();
    for p in points {
        let mut label = p.policy.clone();
        for (k, v) in &p.others {
            if values.get(k.as_str()).is_some_and(|vs| vs.len() > 1) {
                label.push_str(&format!(" {k}={v}"));
            }
        }
        match out.iter_mut().find(|(l, _)| *l == label) {
            Some((_, ps)) => ps.push(p),
            None => out.push((label, vec![p])),
        }
    }
    for (_, ps) in &mut out {
        ps.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    out
}

fn x_range(points: &[PlotPoint]) -> (f64, f64) {
    let lo = points.iter().map(|p| p.x).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.x).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (
            lo - 0.5_f64.max(lo.abs() * 0.1),
            hi + 0.5_f64.max(hi.abs() * 0.1),
        )
    } else {
        (lo, hi)
    }
}

fn plot_err(e: impl std::fmt::Display) -> SweepError {
    SweepError::Merge(format!("drawing a plot: {e}"))
}

/// Draws one metric (index into `PlotPoint::values`) per line, with bands.
/// How one chart looks.
struct Panel<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    /// Top of the y axis; `None`: from the data.
    y_max: Option<f64>,
    legend: SeriesLabelPosition,
}

fn draw_metric(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: Panel<'_>,
    series: &[(String, Vec<&PlotPoint>)],
    metrics: &[(usize, &str)],
) -> Result<(), SweepError> {
    let Panel {
        title,
        x_desc,
        y_desc,
        y_max,
        legend,
    } = panel;
    let all: Vec<PlotPoint> = series
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| (*p).clone()))
        .collect();
    let (x0, x1) = x_range(&all);
    let top = y_max.unwrap_or_else(|| {
        let m = series
            .iter()
            .flat_map(|(_, ps)| ps.iter())
            .flat_map(|p| metrics.iter().map(move |(i, _)| p.values[*i]))
            .map(|(m, c)| m.unwrap_or(0.0) + c.unwrap_or(0.0))
            .fold(0.0, f64::max);
        if m > 0.0 { m * 1.05 } else { 1.0 }
    });
    // Plotters does not end on an infinite or NaN axis (an edited row of
    // 1e308 makes a confidence interval overflow): refused instead.
    if !(top.is_finite() && x0.is_finite() && x1.is_finite() && (x1 - x0).is_finite()) {
        return Err(SweepError::Merge(format!(
            "drawing the plot `{title}`: its axes would reach {} on x and {} on y; a value in the summary is too large to plot",
            crate::report::number(x1 - x0),
            crate::report::number(top)
        )));
    }
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(plot_err)?;
    let mut colour = 0;
    for (label, ps) in series {
        for (i, metric_name) in metrics {
            let color = PALETTE[colour % PALETTE.len()];
            colour += 1;
            let defined: Vec<(f64, f64, f64)> = ps
                .iter()
                .filter_map(|p| {
                    let (m, c) = p.values[*i];
                    m.map(|m| (p.x, m, c.unwrap_or(0.0)))
                })
                .collect();
            if defined.is_empty() {
                continue;
            }
            let mut band: Vec<(f64, f64)> = defined
                .iter()
                .map(|&(x, m, c)| (x, (m + c).min(top)))
                .collect();
            band.extend(defined.iter().rev().map(|&(x, m, c)| (x, (m - c).max(0.0))));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    color.mix(0.18).filled(),
                )))
                .map_err(plot_err)?;
            let name = if metric_name.is_empty() {
                label.clone()
            } else {
                format!("{label}: {metric_name}")
            };
            chart
                .draw_series(LineSeries::new(
                    defined.iter().map(|&(x, m, _)| (x, m)),
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    defined
                        .iter()
                        .map(|&(x, m, _)| Circle::new((x, m), 3, color.filled())),
                )
                .map_err(plot_err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// `failures.svg` and `gpu_hours.svg`: each file's name and bytes, for the
/// caller to write with the rest of its set.
pub fn render_plots(points: &[PlotPoint]) -> Result<Vec<(&'static str, String)>, SweepError> {
    let series = lines(points);
    let x_desc = if points
        .first()
        .is_some_and(|p| p.others.iter().any(|(k, _)| k == "arrival_per_hour"))
    {
        "trace fraction kept"
    } else {
        "VM arrivals per hour"
    };
    let mut files = Vec::new();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(500);
        draw_metric(
            &left,
            Panel {
                title: "create-vm failing no-gpu",
                x_desc,
                y_desc: "fraction of creates (95% CI)",
                y_max: Some(1.0),
                legend: SeriesLabelPosition::LowerRight,
            },
            &series,
            &[(0, "")],
        )?;
        draw_metric(
            &right,
            Panel {
                title: "start-vm failing no-gpu",
                x_desc,
                y_desc: "fraction of starts (95% CI)",
                y_max: Some(1.0),
                legend: SeriesLabelPosition::LowerRight,
            },
            &series,
            &[(1, "")],
        )?;
        root.present().map_err(plot_err)?;
    }
    files.push(("failures.svg", svg));

    let mut svg = String::new();
    {
        let panels = series.len().max(1);
        let width = 500 * panels as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let areas = root.split_evenly((1, panels));
        for (area, one) in areas.iter().zip(series.iter()) {
            draw_metric(
                area,
                Panel {
                    title: &format!("GPU-hours: {}", one.0),
                    x_desc,
                    y_desc: "GPU-hours per run (95% CI)",
                    y_max: None,
                    legend: SeriesLabelPosition::MiddleRight,
                },
                std::slice::from_ref(one),
                &[(2, "VMs"), (3, "Kubernetes"), (4, "idle")],
            )?;
        }
        root.present().map_err(plot_err)?;
    }
    files.push(("gpu_hours.svg", svg));
    Ok(files)
}
