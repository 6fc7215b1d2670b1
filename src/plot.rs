//! Curves as SVG, drawn with plotters' SVG backend (no system libraries).

use plotters::prelude::*;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// There is nothing to draw.
    #[error("nothing to plot: {0}")]
    Empty(String),
    /// A value cannot be placed on the axes.
    #[error("cannot plot {what}: value {value} at point {index} is not finite")]
    NotFinite {
        /// What was plotted.
        what: String,
        /// The value.
        value: f64,
        /// Its index.
        index: usize,
    },
    /// The drawing backend failed.
    #[error("drawing failed: {0}")]
    Draw(String),
}

/// One curve of `(x, y)` points with a name for the legend.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series of `values` at x = 0, 1, 2, ...
    pub fn indexed(name: impl Into<String>, values: &[f64]) -> Self {
        Self {
            name: name.into(),
            points: values.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect(),
        }
    }
}

/// Draws `series` on one chart and returns the SVG document.
pub fn line_chart_svg(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<String, PlotError> {
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    if points.is_empty() {
        return Err(PlotError::Empty(title.to_string()));
    }
    for s in series {
        for (index, (x, y)) in s.points.iter().enumerate() {
            if !x.is_finite() || !y.is_finite() {
                let value = if x.is_finite() { *y } else { *x };
                return Err(PlotError::NotFinite { what: s.name.clone(), value, index });
            }
        }
    }
    let (x_min, x_max) = bounds(points.iter().map(|p| p.0));
    let (y_min, y_max) = bounds(points.iter().map(|p| p.1));
    let y_pad = (y_max - y_min) * 0.05;
    let mut svg = String::new();
    {
        let draw = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
        let root = SVGBackend::with_string(&mut svg, (720, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(x_min..x_max, (y_min - y_pad)..(y_max + y_pad))
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .y_label_formatter(&|v| format!("{v:.3e}"))
            .draw()
            .map_err(|e| draw(&e))?;
        for (index, s) in series.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| draw(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw(&e))?;
        }
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(svg)
}

/// The range of the values, widened when they are all equal so that the axis has a span.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if min == max {
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        (min - pad, max + pad)
    } else {
        (min, max)
    }
}
