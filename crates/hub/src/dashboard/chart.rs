//! Charts as inline SVG, drawn on the server: no script, nothing fetched. Colours are SVG
//! presentation attributes (not `style`), so the dashboard's strict Content-Security-Policy
//! needs no exception for them.

use super::render::escape;
use std::fmt::Write;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 220;
/// Room for the axis labels.
const LEFT: u32 = 44;
const BOTTOM: u32 = 28;
const TOP: u32 = 12;

/// A bar chart of `bars` (label, value), in order, titled `title` for screen readers and
/// hover. Labels are shown under every bar when there is room, else under every other one.
pub(crate) fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0);
    // The axis' top: the largest value, at least 1 so an empty chart still has a scale.
    let top = max.max(1);
    let plot_w = WIDTH - LEFT - 8;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let n = bars.len().max(1) as u32;
    let slot = plot_w / n;
    let bar_w = (slot * 7 / 10).max(1);
    let label_every = if slot >= 40 { 1 } else { 2 };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    // Axes and the scale's top and zero.
    let base = TOP + plot_h;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#888"/><line x1="{LEFT}" y1="{base}" x2="{x2}" y2="{base}" stroke="#888"/><text x="{tx}" y="{ty}" text-anchor="end" font-size="11" fill="#444">{top}</text><text x="{tx}" y="{base}" text-anchor="end" font-size="11" fill="#444">0</text>"##,
        x2 = LEFT + plot_w,
        tx = LEFT - 6,
        ty = TOP + 10,
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let i = i as u32;
        let h = (u128::from(*value) * u128::from(plot_h) / u128::from(top)) as u32;
        let x = LEFT + i * slot + (slot - bar_w) / 2;
        let y = base - h;
        let _ = write!(
            svg,
            r##"<rect class="bar" x="{x}" y="{y}" width="{bar_w}" height="{h}" fill="#2f6f9f"><title>{l}: {value}</title></rect>"##,
            l = escape(label)
        );
        if i.is_multiple_of(label_every) {
            let _ = write!(
                svg,
                r##"<text x="{cx}" y="{ly}" text-anchor="middle" font-size="10" fill="#444">{l}</text>"##,
                cx = x + bar_w / 2,
                ly = base + 16,
                l = escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(values: &[u64]) -> Vec<(String, u64)> {
        values.iter().enumerate().map(|(i, v)| (format!("12-{:02}", i + 1), *v)).collect()
    }

    fn heights(svg: &str) -> Vec<u32> {
        svg.split(r#"class="bar""#)
            .skip(1)
            .map(|r| {
                let h = r.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let svg = bar_chart("Uploads per day", &bars(&[0, 5, 10]));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let plot_h = HEIGHT - BOTTOM - TOP;
        assert_eq!(heights(&svg), vec![0, plot_h / 2, plot_h]);
        assert!(svg.contains("<title>12-03: 10</title>"));
        assert!(svg.contains(">10</text>"), "the scale's top");
    }

    #[test]
    fn an_empty_or_all_zero_chart_draws_without_dividing_by_zero() {
        assert_eq!(heights(&bar_chart("x", &[])), Vec::<u32>::new());
        assert_eq!(heights(&bar_chart("x", &bars(&[0; 14]))), vec![0; 14]);
        let huge = bar_chart("x", &bars(&[u64::MAX, 1]));
        assert_eq!(heights(&huge)[0], HEIGHT - BOTTOM - TOP);
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let svg = bar_chart("<b>&", &[("<script>".into(), 1)]);
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("&lt;b&gt;&amp;"));
    }

    #[test]
    fn fourteen_days_fit_with_every_label() {
        let svg = bar_chart("x", &bars(&[1; 14]));
        assert_eq!(svg.matches("<text").count(), 2 + 14);
        let svg = bar_chart("x", &bars(&[1; 48]));
        assert_eq!(svg.matches("<text").count(), 2 + 24);
    }
}
