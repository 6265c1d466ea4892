//! SVG charts with plotters' SVG backend: throughput and wait p99 against concurrency, one line
//! per pool. Text is written as SVG `<text>`; no font file is read.

use std::path::Path;

use plotters::prelude::*;

/// One line of a chart: a name and its (tasks, value) points.
pub type Series = (String, Vec<(f64, f64)>);

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Draws a log-log line chart of `series` to `path`.
///
/// # Errors
///
/// When the file cannot be written or plotters fails.
pub fn line_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let points = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(_, y)| *y > 0.0);
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::MAX, 0.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if y_max <= 0.0 {
        y_min = 1.0;
        y_max = 10.0;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (0.8f64..x_max * 1.25).log_scale(),
            (y_min / 1.5..y_max * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("concurrent tasks")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| human(*y))
        .draw()?;
    for (index, (name, points)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(_, y)| *y > 0.0).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `1234567.0` as `1.23M`, and so on.
pub fn human(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{:.3}G", value / 1e9)
    } else if abs >= 1e6 {
        format!("{:.3}M", value / 1e6)
    } else if abs >= 1e3 {
        format!("{:.3}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}
