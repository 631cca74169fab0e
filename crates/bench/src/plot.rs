//! The soak plot: a PNG of four panels (RSS per node, data dir per node, submit→start
//! p50/p99, disk bytes written per task), each with the end of the first retention period
//! and the start of the verdict's steady window marked.
//!
//! plotters draws with its bitmap backend and ab_glyph, with a TrueType font read at run
//! time, so building needs no system library (its default `ttf` feature links fontconfig).

use std::path::Path;

use anyhow::Context;
use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::soak::sample::Sample;
use crate::soak::series::node_names;

/// Debian's fonts-dejavu-core puts it here.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const WIDTH_PX: u32 = 1600;
const HEIGHT_PX: u32 = 1100;
/// Latencies are drawn on a log axis; a value of 0 is drawn at this floor.
const LATENCY_FLOOR_MS: f64 = 0.01;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// What the plot shows besides the samples.
pub struct PlotSpec<'a> {
    pub title: &'a str,
    pub retention_s: f64,
    pub steady_from_s: f64,
    pub font: &'a Path,
}

/// One named line of a panel.
type Line = (String, Vec<(f64, f64)>);

/// Reads the font once and hands it to plotters (which wants it for the whole run).
fn register_font(font: &Path) -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if REGISTERED.get().is_some() {
        return Ok(());
    }
    let bytes: &'static [u8] = Box::leak(read_font(font)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| {
        anyhow!(
            "{} is not a TrueType font the plot can use; pass --font",
            font.display()
        )
    })?;
    let _ = REGISTERED.set(());
    Ok(())
}

fn read_font(font: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(font).with_context(|| {
        format!(
            "reading the plot font {} (install fonts-dejavu-core, or pass --font with a .ttf file)",
            font.display()
        )
    })
}

fn per_node(samples: &[Sample], value: impl Fn(&crate::soak::sample::NodeSample) -> Option<f64>) -> Vec<Line> {
    node_names(samples)
        .into_iter()
        .map(|name| {
            let points = samples
                .iter()
                .filter_map(|s| {
                    let node = s.nodes.iter().find(|n| n.name == name)?;
                    Some((s.t_s / 60.0, value(node)?))
                })
                .collect();
            (name, points)
        })
        .collect()
}

fn latency_lines(samples: &[Sample]) -> Vec<Line> {
    let of = |f: fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter_map(|s| Some((s.t_s / 60.0, f(s)?.max(LATENCY_FLOOR_MS))))
            .collect()
    };
    vec![
        ("p50".to_string(), of(|s| s.start_p50_ms)),
        ("p99".to_string(), of(|s| s.start_p99_ms)),
    ]
}

fn bytes_per_task_lines(samples: &[Sample]) -> Vec<Line> {
    let mut lines = per_node(samples, |n| n.write_bytes_per_task.map(|b| b / 1024.0));
    let total = samples
        .iter()
        .filter_map(|s| Some((s.t_s / 60.0, s.write_bytes_per_task? / 1024.0)))
        .collect();
    lines.push(("all nodes".to_string(), total));
    lines
}

/// Draws the four panels of `samples` into `path` (PNG).
pub fn draw(path: &Path, samples: &[Sample], spec: &PlotSpec) -> anyhow::Result<()> {
    register_font(spec.font)?;
    let root = BitMapBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Debug| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root.titled(spec.title, ("sans-serif", 24)).map_err(|e| fail(&e))?;
    let panels = root.split_evenly((2, 2));
    // Minutes on the x axis: a soak runs for tens of them.
    let t_max = samples.iter().map(|s| s.t_s / 60.0).fold(0.1, f64::max);
    let drawn = [
        panel(
            &panels[0],
            "RSS per node",
            "MiB",
            &per_node(samples, |n| Some(n.rss_mib)),
            t_max,
            spec,
            false,
        ),
        panel(
            &panels[1],
            "Data dir per node",
            "MiB",
            &per_node(samples, |n| Some(n.data_mib)),
            t_max,
            spec,
            false,
        ),
        panel(
            &panels[2],
            "submit→start (per interval)",
            "ms (log)",
            &latency_lines(samples),
            t_max,
            spec,
            true,
        ),
        panel(
            &panels[3],
            "Disk written per completed task",
            "KiB / task",
            &bytes_per_task_lines(samples),
            t_max,
            spec,
            false,
        ),
    ];
    for result in drawn {
        result.map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// One panel: the lines, the retention mark and the steady-window mark, a legend.
fn panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    caption: &str,
    unit: &str,
    lines: &[Line],
    t_max: f64,
    spec: &PlotSpec,
    log_y: bool,
) -> Result<(), String> {
    let values = || lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1));
    let top = values().fold(0.0, f64::max);
    // A log axis spans whole decades, so it has labelled ticks (plotters labels powers of 10).
    let (y_min, y_max) = if log_y {
        let low = values().fold(f64::INFINITY, f64::min).max(LATENCY_FLOOR_MS).min(top);
        let max = 10f64.powf(top.max(1.0).log10().ceil());
        (10f64.powf(low.log10().floor()).min(max / 10.0), max)
    } else {
        (0.0, top.max(1e-3) * 1.1)
    };
    let err = |e: &dyn std::fmt::Debug| format!("{caption}: {e:?}");
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let marks = [
        (spec.retention_s / 60.0, "end of first retention", BLACK),
        (
            spec.steady_from_s / 60.0,
            "verdict window starts",
            RGBColor(110, 110, 110),
        ),
    ];
    // The two axis types differ, so the drawing is written once per type through a macro.
    macro_rules! draw_on {
        ($chart:expr) => {{
            let mut chart = $chart.map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("time since the load started (min)")
                .y_desc(unit)
                .draw()
                .map_err(|e| err(&e))?;
            for (i, (name, points)) in lines.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            // A mark past the end of a short run would be drawn outside the panel.
            for &(t, name, color) in marks.iter().filter(|m| m.0 <= t_max) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(t, y_min), (t, y_max)],
                        color.stroke_width(3),
                    )))
                    .map_err(|e| err(&e))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if log_y {
        draw_on!(builder.build_cartesian_2d(0.0..t_max, (y_min..y_max).log_scale()));
    } else {
        draw_on!(builder.build_cartesian_2d(0.0..t_max, y_min..y_max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::sample::NodeSample;

    fn samples() -> Vec<Sample> {
        (1..=12)
            .map(|i| Sample {
                t_s: i as f64 * 10.0,
                start_p50_ms: Some(2.0),
                start_p99_ms: if i == 3 { None } else { Some(10.0 + i as f64) },
                write_bytes_per_task: Some(3000.0),
                nodes: (1..=3)
                    .map(|n| NodeSample {
                        name: format!("node{n}"),
                        rss_mib: 100.0 + n as f64,
                        data_mib: 20.0 * n as f64,
                        write_bytes: 1000,
                        write_bytes_per_task: Some(1000.0),
                    })
                    .collect(),
                ..Sample::default()
            })
            .collect()
    }

    #[test]
    fn lines_per_node_and_latency_floor() {
        let s = samples();
        let rss = per_node(&s, |n| Some(n.rss_mib));
        assert_eq!(
            rss.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
            ["node1", "node2", "node3"]
        );
        assert_eq!(rss[0].1.len(), 12);
        let lat = latency_lines(&s);
        assert_eq!(lat[1].1.len(), 11, "an interval without starts has no p99 point");
        let zero = latency_lines(&[Sample {
            start_p50_ms: Some(0.0),
            ..Sample::default()
        }]);
        assert_eq!(zero[0].1, vec![(0.0, LATENCY_FLOOR_MS)]);
        // x in minutes, bytes in KiB.
        assert_eq!(bytes_per_task_lines(&s).last().unwrap().1[5], (1.0, 3000.0 / 1024.0));
    }

    /// Draws a real PNG when the default font is installed; without it, the error must say
    /// which file is missing and what to do.
    #[test]
    fn draws_a_png_or_names_the_missing_font() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soak.png");
        let font = Path::new(DEFAULT_FONT);
        let spec = PlotSpec {
            title: "test",
            retention_s: 30.0,
            steady_from_s: 40.0,
            font,
        };
        match draw(&path, &samples(), &spec) {
            Ok(()) => {
                let png = std::fs::read(&path).unwrap();
                assert_eq!(&png[1..4], b"PNG");
                assert!(png.len() > 10_000, "{} bytes", png.len());
            }
            Err(e) => {
                assert!(!font.exists(), "the font exists, yet: {e:#}");
                let message = format!("{e:#}");
                assert!(
                    message.contains(DEFAULT_FONT) && message.contains("--font"),
                    "{message}"
                );
                eprintln!("no font at {DEFAULT_FONT}: checked the error only");
            }
        }
    }

    #[test]
    fn a_missing_font_is_named_with_what_to_do() {
        let message = format!("{:#}", read_font(Path::new("/nonexistent/font.ttf")).unwrap_err());
        assert!(message.contains("/nonexistent/font.ttf"), "{message}");
        assert!(
            message.contains("fonts-dejavu-core") && message.contains("--font"),
            "{message}"
        );
    }
}
