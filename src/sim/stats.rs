//! Per-grid-point statistics over seeds: mean and the half-width of a 95%
//! confidence interval (Student's t with n-1 degrees of freedom, from
//! `statrs`), computed from the formatted `runs.csv` rows so that a sweep
//! and a merge of its shards produce the same bytes.

use std::path::{Path, PathBuf};

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::sim::sweep::{PARAM_COLUMNS, RUN_COLUMNS, SweepError};

/// Welford's running mean and variance.
#[derive(Clone, Copy, Debug, Default)]
pub struct Running {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Running {
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
    pub fn n(&self) -> u64 {
        self.n
    }
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }
    /// Half-width of the 95% confidence interval of the mean; `None` below
    /// two values.
    pub fn ci95(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let sd = (self.m2 / (self.n - 1) as f64).sqrt();
        Some(t975(self.n - 1) * sd / (self.n as f64).sqrt())
    }
}

/// The 0.975 quantile of Student's t with `dof` degrees of freedom.
pub fn t975(dof: u64) -> f64 {
    StudentsT::new(0.0, 1.0, dof as f64)
        .expect("dof >= 1 is a valid Student's t")
        .inverse_cdf(0.975)
}

/// Metrics that are ratios: the summary also says over how many runs they
/// were defined.
fn is_fraction(metric: &str) -> bool {
    metric.ends_with("fraction")
}

/// The metrics drawn in the plots, in this order.
pub const PLOTTED: [&str; 5] = [
    "create_failure_fraction",
    "start_failure_fraction",
    "gpu_hours_vms",
    "gpu_hours_kube",
    "gpu_hours_idle",
];

/// One grid point as the plots see it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotPoint {
    pub policy: String,
    /// `arrival_per_hour`, or `trace_fraction` for trace sweeps.
    pub x: f64,
    /// The other parameters, `name=value`, that vary between lines.
    pub others: Vec<(String, String)>,
    /// Mean and CI half-width of each [`PLOTTED`] metric.
    pub values: [(Option<f64>, Option<f64>); 5],
}

/// Turns `runs.csv` rows, in run order, into `summary.csv` and plot data.
pub struct Summarizer {
    metrics: Vec<String>,
    current: Option<(String, Vec<String>)>,
    acc: Vec<Running>,
    seeds: u64,
    rows: Vec<Vec<String>>,
    plot: Vec<PlotPoint>,
    plotted_at: [Option<usize>; 5],
    header: Vec<String>,
}

const FIRST_METRIC: usize = RUN_COLUMNS.len() + PARAM_COLUMNS.len();

impl Summarizer {
    /// For rows with `header` (a `runs.csv` header).
    pub fn new(header: &[String]) -> Summarizer {
        let metrics: Vec<String> = header[FIRST_METRIC.min(header.len())..].to_vec();
        let mut out_header: Vec<String> = vec!["point".into()];
        out_header.extend(PARAM_COLUMNS.iter().map(|s| s.to_string()));
        out_header.push("seeds".into());
        for m in &metrics {
            out_header.push(format!("{m}.mean"));
            out_header.push(format!("{m}.ci95"));
            if is_fraction(m) {
                out_header.push(format!("{m}.n"));
            }
        }
        let plotted_at = PLOTTED.map(|p| metrics.iter().position(|m| m == p));
        Summarizer {
            acc: vec![Running::default(); metrics.len()],
            metrics,
            current: None,
            seeds: 0,
            rows: Vec::new(),
            plot: Vec::new(),
            plotted_at,
            header: out_header,
        }
    }

    /// One `runs.csv` row (the next in run order).
    pub fn push(&mut self, row: &[String]) -> Result<(), String> {
        if row.len() != FIRST_METRIC + self.metrics.len() {
            return Err(format!(
                "run {}: {} fields, expected {}",
                row.first().map_or("?", String::as_str),
                row.len(),
                FIRST_METRIC + self.metrics.len()
            ));
        }
        let point = &row[1];
        let params = &row[RUN_COLUMNS.len()..FIRST_METRIC];
        if self.current.as_ref().is_none_or(|(p, _)| p != point) {
            self.flush();
            self.current = Some((point.clone(), params.to_vec()));
        }
        self.seeds += 1;
        for ((acc, v), m) in self
            .acc
            .iter_mut()
            .zip(&row[FIRST_METRIC..])
            .zip(&self.metrics)
        {
            if !v.is_empty() {
                let x: f64 = v
                    .parse()
                    .map_err(|_| format!("run {}: `{m}` is `{v}`; expected a number", row[0]))?;
                acc.push(x);
            }
        }
        Ok(())
    }

    fn flush(&mut self) {
        let Some((point, params)) = self.current.take() else {
            return;
        };
        let mut row = vec![point];
        row.extend(params.iter().cloned());
        row.push(self.seeds.to_string());
        let fmt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
        for (m, acc) in self.metrics.iter().zip(&self.acc) {
            row.push(fmt(acc.mean()));
            row.push(fmt(acc.ci95()));
            if is_fraction(m) {
                row.push(acc.n().to_string());
            }
        }
        self.rows.push(row);
        let param = |name: &str| {
            PARAM_COLUMNS
                .iter()
                .position(|c| *c == name)
                .map(|i| params[i].clone())
                .unwrap_or_default()
        };
        let x_column = if param("workload") == "trace" {
            "trace_fraction"
        } else {
            "arrival_per_hour"
        };
        let others = PARAM_COLUMNS
            .iter()
            .zip(&params)
            .filter(|(c, _)| **c != "policy" && **c != x_column && **c != "workload")
            .map(|(c, v)| (c.to_string(), v.clone()))
            .collect();
        let values = self
            .plotted_at
            .map(|i| i.map_or((None, None), |i| (self.acc[i].mean(), self.acc[i].ci95())));
        self.plot.push(PlotPoint {
            policy: param("policy"),
            x: param(x_column).parse().unwrap_or(0.0),
            others,
            values,
        });
        self.seeds = 0;
        self.acc.iter_mut().for_each(|a| *a = Running::default());
    }

    /// `summary.csv` (and the plots, with the `plots` feature) for `dir`:
    /// each file's path and bytes, written by the caller with the rest of
    /// its set (all or nothing).
    pub fn finish(mut self, dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, SweepError> {
        self.flush();
        let path = dir.join("summary.csv");
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_error = |e: csv::Error| SweepError::Io {
            path: path.display().to_string(),
            error: std::io::Error::other(e),
        };
        w.write_record(&self.header).map_err(csv_error)?;
        for r in &self.rows {
            w.write_record(r).map_err(csv_error)?;
        }
        let bytes = w.into_inner().map_err(|e| SweepError::Io {
            path: path.display().to_string(),
            error: e.into_error(),
        })?;
        let files = vec![(path, bytes)];
        #[cfg(feature = "plots")]
        let files = {
            let mut files = files;
            for (name, svg) in crate::sim::plot::render_plots(&self.plot)? {
                files.push((dir.join(name), svg.into_bytes()));
            }
            files
        };
        Ok(files)
    }

    /// The plot data gathered so far (complete after the last row).
    pub fn plot_points(&self) -> &[PlotPoint] {
        &self.plot
    }
}
