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
    /// A value is finite but too large for an axis (its span would overflow).
    #[error("cannot plot {what}: value {value:e} at point {index} is beyond ±{MAX_MAGNITUDE:e}, the largest an axis can span")]
    TooLarge {
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

/// The largest magnitude drawn: an axis from `-MAX` to `MAX` still has a finite span with room
/// for its padding, and its tick arithmetic stays exact enough to end.
pub const MAX_MAGNITUDE: f64 = 1e150;

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
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect(),
        }
    }
}

/// One chart of a figure: a title, the y axis's name and its curves.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The chart's title.
    pub title: String,
    /// The y axis's name.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
}

/// Draws `series` on one chart and returns the SVG document.
pub fn line_chart_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, PlotError> {
    let panel = Panel {
        title: title.to_string(),
        y_label: y_label.to_string(),
        series: series.to_vec(),
    };
    panels_svg(x_label, &[panel])
}

/// Draws `panels` stacked one above the other, sharing the x axis's name, and returns the SVG
/// document. Every point must be finite.
pub fn panels_svg(x_label: &str, panels: &[Panel]) -> Result<String, PlotError> {
    for panel in panels {
        if panel.series.iter().all(|s| s.points.is_empty()) {
            return Err(PlotError::Empty(panel.title.clone()));
        }
        for s in &panel.series {
            for (index, (x, y)) in s.points.iter().enumerate() {
                if !x.is_finite() || !y.is_finite() {
                    let value = if x.is_finite() { *y } else { *x };
                    return Err(PlotError::NotFinite {
                        what: s.name.clone(),
                        value,
                        index,
                    });
                }
                if x.abs() > MAX_MAGNITUDE || y.abs() > MAX_MAGNITUDE {
                    let value = if x.abs() > MAX_MAGNITUDE { *x } else { *y };
                    return Err(PlotError::TooLarge {
                        what: s.name.clone(),
                        value,
                        index,
                    });
                }
            }
        }
    }
    if panels.is_empty() {
        return Err(PlotError::Empty("no panels".into()));
    }
    let mut svg = String::new();
    {
        let draw = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
        let root =
            SVGBackend::with_string(&mut svg, (720, 400 * panels.len() as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
            draw_panel(area, x_label, panel)?;
        }
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(svg)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    x_label: &str,
    panel: &Panel,
) -> Result<(), PlotError> {
    let draw = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
    let points: Vec<(f64, f64)> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (x_min, x_max) = bounds(points.iter().map(|p| p.0));
    let (y_min, y_max) = bounds(points.iter().map(|p| p.1));
    let y_pad = (y_max - y_min) * 0.05;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(x_min..x_max, (y_min - y_pad)..(y_max + y_pad))
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(panel.y_label.as_str())
        .y_label_formatter(&|v| format!("{v:.3e}"))
        .draw()
        .map_err(|e| draw(&e))?;
    for (index, s) in panel.series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| draw(&e))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if panel.series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
    }
    Ok(())
}

/// The range of the values, widened when they are all equal so that the axis has a span.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if min == max {
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        (min - pad, max + pad)
    } else {
        (min, max)
    }
}
