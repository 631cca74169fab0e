//! A PNG of up to four line charts over time (the soak's: RSS per node, data dir per node,
//! submit→start p50/p99, disk bytes written per task), each with the same vertical marks.
//!
//! plotters draws with its bitmap backend and ab_glyph, with a TrueType font read at run
//! time, so building needs no system library (its default `ttf` feature links fontconfig).

use std::path::Path;

use anyhow::Context;
use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Debian's fonts-dejavu-core puts it here.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const WIDTH_PX: u32 = 1600;
const HEIGHT_PX: u32 = 1100;
/// A log axis starts no lower than this (values are clamped to it by the caller).
const LOG_FLOOR: f64 = 0.01;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// What the plot shows besides its panels.
pub struct PlotSpec<'a> {
    pub title: &'a str,
    /// Vertical lines drawn on every panel (x in minutes, legend), first black, then grey.
    pub marks: Vec<(f64, &'a str)>,
    pub font: &'a Path,
}

/// One named line of a panel: (x in minutes, y) points.
pub type Line = (String, Vec<(f64, f64)>);

/// One chart of the grid.
pub struct Panel {
    pub caption: &'static str,
    pub unit: &'static str,
    pub lines: Vec<Line>,
    pub log_y: bool,
}

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

/// Fails, saying what to do, when `font` cannot be read.
pub fn check_font(font: &Path) -> anyhow::Result<()> {
    read_font(font).map(drop)
}

fn read_font(font: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(font).with_context(|| {
        format!(
            "reading the plot font {} (install fonts-dejavu-core, or pass --font with a .ttf file)",
            font.display()
        )
    })
}

/// Draws `panels` (up to four, in a 2 × 2 grid) into `path` (PNG), x in minutes.
pub fn draw(path: &Path, panels: &[Panel], spec: &PlotSpec) -> anyhow::Result<()> {
    register_font(spec.font)?;
    let root = BitMapBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Debug| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root.titled(spec.title, ("sans-serif", 24)).map_err(|e| fail(&e))?;
    let x_max = panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.1.iter().map(|p| p.0)))
        .fold(0.1, f64::max);
    for (area, panel) in root.split_evenly((2, 2)).iter().zip(panels) {
        draw_panel(area, panel, x_max, spec).map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// One panel: the lines, the retention mark and the steady-window mark, a legend.
fn draw_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    panel: &Panel,
    t_max: f64,
    spec: &PlotSpec,
) -> Result<(), String> {
    let Panel {
        caption,
        unit,
        lines,
        log_y,
    } = panel;
    let log_y = *log_y;
    let values = || lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1));
    let top = values().fold(0.0, f64::max);
    // A log axis spans whole decades, so it has labelled ticks (plotters labels powers of 10).
    let (y_min, y_max) = if log_y {
        let low = values().fold(f64::INFINITY, f64::min).max(LOG_FLOOR).min(top);
        let max = 10f64.powf(top.max(1.0).log10().ceil());
        (10f64.powf(low.log10().floor()).min(max / 10.0), max)
    } else {
        (0.0, top.max(1e-3) * 1.1)
    };
    let err = |e: &dyn std::fmt::Debug| format!("{caption}: {e:?}");
    let unit = *unit;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(*caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let marks: Vec<(f64, &str, RGBColor)> = spec
        .marks
        .iter()
        .zip([BLACK, RGBColor(110, 110, 110)].into_iter().cycle())
        .map(|(&(x, name), color)| (x, name, color))
        .collect();
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

    fn panels() -> Vec<Panel> {
        let line = |name: &str, base: f64| -> Line {
            (
                name.into(),
                (1..=12).map(|i| (i as f64 / 6.0, base + i as f64)).collect(),
            )
        };
        vec![
            Panel {
                caption: "linear",
                unit: "MiB",
                lines: vec![line("node1", 100.0), line("node2", 90.0)],
                log_y: false,
            },
            Panel {
                caption: "log",
                unit: "ms",
                lines: vec![line("p50", 0.0), line("p99", 500.0), ("empty".into(), Vec::new())],
                log_y: true,
            },
            Panel {
                caption: "no lines",
                unit: "-",
                lines: Vec::new(),
                log_y: false,
            },
        ]
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
            // The second mark lies past the data: it must be left out, not drawn outside.
            marks: vec![(0.5, "a mark"), (60.0, "past the end")],
            font,
        };
        match draw(&path, &panels(), &spec) {
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
        let message = format!("{:#}", check_font(Path::new("/nonexistent/font.ttf")).unwrap_err());
        assert!(message.contains("/nonexistent/font.ttf"), "{message}");
        assert!(
            message.contains("fonts-dejavu-core") && message.contains("--font"),
            "{message}"
        );
    }
}
