//! Line charts as inline SVG: the HTML report must open offline, without scripts.

use std::fmt::Write;

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 140.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// A chart of `series` over seconds 0‥n, titled `title`, its y axis in `unit`.
pub fn line_chart(title: &str, unit: &str, series: &[Series<'_>]) -> String {
    let points = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { nice(top) } else { 1.0 };
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    #[allow(clippy::cast_precision_loss)]
    let x = |i: usize| LEFT + plot_w * i as f64 / (points.max(2) - 1) as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<title>{title}</title><text x="{LEFT}" y="18" font-weight="bold">{title}</text>"#
    );
    for tick in 0..=4 {
        let value = top * f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{value} {unit}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(value) + 4.0,
            y = y(value),
            value = trim(value),
        );
    }
    let step = (points / 10).max(1);
    for i in (0..points).step_by(step) {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{i}s</text>"#,
            x(i),
            HEIGHT - BOTTOM + 16.0
        );
    }
    for (n, s) in series.iter().enumerate() {
        let line: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let legend_y = TOP + 16.0 * n as f64;
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/><rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            line.join(" "),
            WIDTH - RIGHT + 12.0,
            legend_y - 4.0,
            WIDTH - RIGHT + 30.0,
            legend_y,
            s.name,
            c = s.color,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The axis top: `value` rounded up to 1, 2 or 5 times a power of ten.
fn nice(value: f64) -> f64 {
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|top| *top >= value)
        .unwrap_or(10.0 * power)
}

/// `value` without needless decimals.
fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::{Series, line_chart, nice};

    #[test]
    fn axis_tops_are_round_numbers() {
        assert!((nice(37.0) - 50.0).abs() < 1e-9);
        assert!((nice(0.7) - 1.0).abs() < 1e-9);
        assert!((nice(100.0) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_chart_is_one_svg_with_a_line_per_series() {
        let series = [
            Series {
                name: "p50",
                color: "#1f77b4",
                values: vec![1.0, 2.0, 3.0],
            },
            Series {
                name: "p99",
                color: "#d62728",
                values: vec![4.0, 5.0, 6.0],
            },
        ];
        let svg = line_chart("Latency", "ms", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }
}
