//! Turning measurements into what `docs/benchmarks.md` shows: medians, Markdown tables and
//! SVG bar charts (written by hand: a few rectangles and labels need no plotting library).

use std::fmt::Write as _;

/// `20 B`, `16 KiB`, `1 MiB`.
pub fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// The `q` quantile (0.5: the median) of sorted nanosecond samples, in `unit` nanoseconds
/// (1e3: µs, 1e6: ms); NaN when there are none.
pub fn quantile(sorted_ns: &[u64], q: f64, unit: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_ns.len() - 1) as f64 * q).round() as usize;
    sorted_ns[i] as f64 / unit
}

/// The median of some values (NaN when there are none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// A number for a table: thousands as `152 k`, millions as `1.2 M`, small ones with the given
/// decimals.
pub fn human(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        "–".into()
    } else if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.0} k", value / 1e3)
    } else {
        format!("{value:.decimals$}")
    }
}

/// A Markdown table.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names; columns after the first are right-aligned.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let align: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", align.join("|"));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

/// A horizontal grouped bar chart: one group per category, one bar per series.
pub struct BarChart {
    pub title: String,
    /// What the bars measure, under the axis.
    pub unit: String,
    pub series: Vec<String>,
    /// (category, one value per series; NaN: no bar).
    pub groups: Vec<(String, Vec<f64>)>,
    /// A vertical reference line (e.g. 1.0 for a ratio), if any.
    pub reference: Option<f64>,
}

const COLOURS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

impl BarChart {
    pub fn to_svg(&self) -> String {
        let (label_w, chart_w, bar_h, gap) = (150.0, 520.0, 11.0, 8.0);
        let group_h = bar_h * self.series.len() as f64 + gap;
        let top = 40.0 + 16.0 * self.series.len().div_ceil(2) as f64;
        let height = top + group_h * self.groups.len() as f64 + 40.0;
        let width = label_w + chart_w + 70.0;
        let max = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(self.reference)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let x = |v: f64| label_w + v / max * chart_w;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        for (i, name) in self.series.iter().enumerate() {
            let (lx, ly) = (10.0 + 300.0 * (i % 2) as f64, 32.0 + 16.0 * (i / 2) as f64);
            let _ = writeln!(
                svg,
                r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                ly - 9.0,
                COLOURS[i % COLOURS.len()],
                lx + 14.0,
                ly,
                escape(name)
            );
        }
        for (g, (category, values)) in self.groups.iter().enumerate() {
            let gy = top + group_h * g as f64;
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                label_w - 6.0,
                gy + group_h / 2.0,
                escape(category)
            );
            for (i, v) in values.iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let y = gy + bar_h * i as f64;
                let _ = writeln!(
                    svg,
                    r#"<rect x="{label_w}" y="{y}" width="{:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}" font-size="9">{}</text>"#,
                    x(*v) - label_w,
                    bar_h - 1.0,
                    COLOURS[i % COLOURS.len()],
                    x(*v) + 3.0,
                    y + bar_h - 2.5,
                    short(*v)
                );
            }
        }
        let bottom = top + group_h * self.groups.len() as f64;
        if let Some(r) = self.reference {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{bottom}" stroke="#444" stroke-dasharray="4 3"/>"##,
                x(r)
            );
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{label_w}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#444"/><text x="{label_w}" y="{}">{}</text>"##,
            label_w + chart_w,
            bottom + 18.0,
            escape(&self.unit)
        );
        svg.push_str("</svg>\n");
        svg
    }
}

fn short(v: f64) -> String {
    if v >= 100.0 {
        human(v, 0)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_medians() {
        assert_eq!(size_label(20), "20 B");
        assert_eq!(size_label(16 << 10), "16 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(quantile(&[1000, 2000, 3000], 0.5, 1e3), 2.0);
        assert_eq!(quantile(&[1000, 2000, 3000], 1.0, 1e3), 3.0);
        assert!(quantile(&[], 0.5, 1.0).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(human(152_345.0, 0), "152 k");
    }

    #[test]
    fn a_chart_has_one_bar_per_value() {
        let chart = BarChart {
            title: "t <1>".into(),
            unit: "x".into(),
            series: vec!["a".into(), "b".into()],
            groups: vec![
                ("g".into(), vec![1.0, 2.0]),
                ("h".into(), vec![f64::NAN, 3.0]),
            ],
            reference: Some(1.0),
        };
        let svg = chart.to_svg();
        assert_eq!(svg.matches("<rect x=").count(), 2 + 3, "legend + bars");
        assert!(svg.contains("t &lt;1&gt;"));
    }
}
