//! The report's figure, drawn by `plotters` into an SVG string: three panels over one time axis
//! — messages per second (with unknown outcomes on a second axis), an event strip (client
//! crashes and every anomaly the checker proved, one row each) and send latency — with the
//! fault windows shaded behind all three.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::timeline::Timeline;
use super::ReportError;

/// Width of the figure in pixels (the page shows it at its own width, up to this).
pub(crate) const WIDTH: u32 = 1140;
/// Left and right label areas: the same in every panel, so that the time axes line up.
const LEFT: u32 = 128;
const RIGHT: u32 = 64;
const THROUGHPUT_HEIGHT: u32 = 300;
const LANE_HEIGHT: u32 = 26;
const LATENCY_HEIGHT: u32 = 230;
/// At most this many points per series: a long run is summed into wider buckets.
const MAX_POINTS: u64 = 1200;
const FONT: &str = "sans-serif";

pub(crate) const ACKED: RGBColor = RGBColor(37, 99, 235);
pub(crate) const DELIVERED: RGBColor = RGBColor(22, 163, 74);
pub(crate) const UNKNOWN: RGBColor = RGBColor(234, 88, 12);
pub(crate) const CRASH: RGBColor = RGBColor(71, 85, 105);
pub(crate) const P50: RGBColor = RGBColor(30, 64, 175);
pub(crate) const P99: RGBColor = RGBColor(217, 119, 6);
pub(crate) const MAX: RGBColor = RGBColor(148, 163, 184);
const DRAIN: RGBColor = RGBColor(100, 116, 139);
const GRID: RGBColor = RGBColor(226, 232, 240);
const AXIS: RGBColor = RGBColor(100, 116, 139);
const TEXT: RGBColor = RGBColor(51, 65, 85);

/// The colour of a fault kind's windows (also used by the page's legend).
pub(crate) fn fault_color(kind: &str) -> RGBColor {
    match kind {
        "kill" => RGBColor(220, 38, 38),
        "pause" => RGBColor(202, 138, 4),
        "lose-acks" => RGBColor(147, 51, 234),
        "reset" => RGBColor(13, 148, 136),
        "latency" => RGBColor(2, 132, 199),
        "partition" => RGBColor(190, 24, 93),
        _ => RGBColor(100, 116, 139),
    }
}

/// The colour of an anomaly kind's marks (also used by the page's legend).
pub(crate) fn anomaly_color(kind: &str) -> RGBColor {
    match kind {
        "lost" => RGBColor(220, 38, 38),
        "duplicated" => RGBColor(234, 88, 12),
        "unexpected" | "inconsistent-positions" => RGBColor(15, 23, 42),
        "failed-delivered" | "aborted-read" => RGBColor(147, 51, 234),
        "torn" => RGBColor(190, 24, 93),
        "order" => RGBColor(8, 145, 178),
        "skip" | "send-reordered" => RGBColor(161, 98, 7),
        _ => RGBColor(100, 116, 139),
    }
}

pub(crate) fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// One fault window, in seconds since the start.
#[derive(Debug, Clone)]
pub(crate) struct FaultBand {
    pub kind: String,
    /// Short label drawn at its start, e.g. `kill n0`.
    pub label: String,
    pub from: f64,
    /// When it was lifted (the `stop-X` invocation); the run's end when never.
    pub lifted: f64,
    /// When healing finished (a killed node running again); at least `lifted`.
    pub healed: f64,
}

/// One row of the event strip: an anomaly kind and when each proven case of it showed.
#[derive(Debug, Clone)]
pub(crate) struct AnomalyRow {
    pub kind: String,
    pub times: Vec<f64>,
}

fn plot_error<E: std::error::Error + Send + Sync>(
    what: &'static str,
) -> impl Fn(DrawingAreaErrorKind<E>) -> ReportError {
    move |e| ReportError::Plot {
        what,
        message: e.to_string(),
    }
}

/// Seconds as an axis label, as precise as a run of `end` seconds needs.
fn seconds_label(end: f64) -> impl Fn(&f64) -> String {
    move |s: &f64| {
        if end >= 3.0 * 3600.0 {
            format!("{:.1} h", s / 3600.0)
        } else if end >= 1200.0 {
            format!("{:.0} min", s / 60.0)
        } else if end >= 20.0 {
            format!("{s:.0} s")
        } else if end >= 2.0 {
            format!("{s:.1} s")
        } else {
            format!("{:.0} ms", s * 1000.0)
        }
    }
}

/// A round upper bound for an axis (1, 2 or 5 times a power of ten), with some headroom.
fn nice_ceiling(max: f64) -> f64 {
    let max = max.max(1.0) * 1.12;
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

/// Seconds per point of the plotted series: 1, or more for a run too long to plot per second.
pub(crate) fn bucket_seconds(t: &Timeline) -> u64 {
    (t.end / 1_000_000_000 + 1).div_ceil(MAX_POINTS).max(1)
}

/// The whole figure as an SVG document.
pub(crate) fn timeline_svg(
    t: &Timeline,
    faults: &[FaultBand],
    anomalies: &[AnomalyRow],
) -> Result<String, ReportError> {
    let end = (t.end as f64 / 1e9).max(1.0);
    let width = bucket_seconds(t);
    let buckets = t.bucketed(width);
    let drain = t.drain_started.map(|d| d as f64 / 1e9);
    // Rows: client crashes on top, then the anomalies.
    let rows = 1 + anomalies.len() as u32;
    let lanes_height = 24 + rows * LANE_HEIGHT;
    let height = THROUGHPUT_HEIGHT + lanes_height + LATENCY_HEIGHT;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error("figure"))?;
        let (top, rest) = root.split_vertically(THROUGHPUT_HEIGHT);
        let (middle, bottom) = rest.split_vertically(lanes_height);
        let context = Context {
            end,
            width: width as f64,
            faults,
            drain,
        };
        throughput(&top, &context, &buckets)?;
        lanes(&middle, &context, t, anomalies)?;
        latency(&bottom, &context, &buckets)?;
        root.present().map_err(plot_error("figure"))?;
    }
    Ok(svg)
}

/// What every panel shares.
struct Context<'a> {
    /// The run's end, in seconds.
    end: f64,
    /// Seconds per bucket.
    width: f64,
    faults: &'a [FaultBand],
    drain: Option<f64>,
}

type Chart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// The fault windows (in force, then healing, lighter) and the drain, behind a panel's data.
fn shade<Y>(
    chart: &mut Chart<'_, '_, Y>,
    c: &Context,
    y: (Y::ValueType, Y::ValueType),
    labels: bool,
) -> Result<(), ReportError>
where
    Y: Ranged,
    Y::ValueType: Clone + 'static,
{
    let (y0, y1) = y;
    let err = plot_error("fault windows");
    if let Some(d) = c.drain {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(d, y0.clone()), (c.end, y1.clone())],
                DRAIN.mix(0.08).filled(),
            )))
            .map_err(&err)?;
    }
    chart
        .draw_series(c.faults.iter().flat_map(|f| {
            let color = fault_color(&f.kind);
            [
                Rectangle::new([(f.from, y0.clone()), (f.lifted, y1.clone())], color.mix(0.16).filled()),
                Rectangle::new(
                    [(f.lifted, y0.clone()), (f.healed, y1.clone())],
                    color.mix(0.06).filled(),
                ),
            ]
        }))
        .map_err(&err)?;
    if labels {
        let style = TextStyle::from((FONT, 13).into_font()).color(&TEXT);
        // Two rows of labels, so that neighbouring faults do not write over each other.
        let colors: Vec<RGBColor> = c.faults.iter().map(|f| fault_color(&f.kind)).collect();
        chart
            .draw_series(c.faults.iter().zip(&colors).enumerate().map(|(i, (f, color))| {
                let style = style.color(color);
                EmptyElement::at((f.from, y1.clone())) + Text::new(f.label.clone(), (3, 4 + 14 * (i as i32 % 2)), style)
            }))
            .map_err(&err)?;
        if let Some(d) = c.drain {
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((d, y1.clone())) + Text::new("drain", (3, 4), style.clone()),
                ))
                .map_err(&err)?;
        }
    }
    Ok(())
}

fn throughput(
    area: &DrawingArea<SVGBackend, Shift>,
    c: &Context,
    buckets: &[(u64, super::timeline::Second)],
) -> Result<(), ReportError> {
    let err = plot_error("throughput");
    let per_second = |n: u64| n as f64 / c.width;
    let rate_max = buckets
        .iter()
        .map(|(_, s)| per_second(s.acked.max(s.delivered)))
        .fold(0.0, f64::max);
    let unknown_max = buckets.iter().map(|(_, s)| per_second(s.unknown)).fold(0.0, f64::max);
    let y_max = nice_ceiling(rate_max);
    // Unknown outcomes are rare: their own axis, so that a handful still shows.
    let unknown_top = nice_ceiling(unknown_max.max(4.0));
    let mut chart = ChartBuilder::on(area)
        .margin_top(34)
        .margin_right(8)
        .y_label_area_size(LEFT)
        .right_y_label_area_size(RIGHT)
        .x_label_area_size(24)
        .build_cartesian_2d(0f64..c.end, 0f64..y_max)
        .map_err(&err)?
        .set_secondary_coord(0f64..c.end, 0f64..unknown_top);
    shade(&mut chart, c, (0.0, y_max), true)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(GRID.mix(0.0))
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .label_style((FONT, 13).into_font().color(&TEXT))
        .axis_desc_style((FONT, 14).into_font().color(&TEXT))
        .y_desc("messages / s")
        .x_labels(12)
        .y_labels(6)
        .x_label_formatter(&seconds_label(c.end))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(&err)?;
    if unknown_max == 0.0 {
        // Nothing to show on the right axis: leave it out (its space keeps the panels aligned).
        return draw_rates(&mut chart, c, buckets);
    }
    chart
        .configure_secondary_axes()
        .axis_style(AXIS)
        .label_style((FONT, 13).into_font().color(&UNKNOWN))
        .axis_desc_style((FONT, 13).into_font().color(&UNKNOWN))
        .y_desc("unknown outcomes / s")
        .y_labels(5)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(&err)?;
    chart
        .draw_secondary_series(buckets.iter().filter(|(_, s)| s.unknown > 0).map(|(at, s)| {
            let x = *at as f64;
            Rectangle::new(
                [(x, 0.0), (x + c.width, per_second(s.unknown))],
                UNKNOWN.mix(0.45).filled(),
            )
        }))
        .map_err(&err)?;
    draw_rates(&mut chart, c, buckets)
}

/// The acknowledged and delivered messages per second, as lines.
fn draw_rates(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    c: &Context,
    buckets: &[(u64, super::timeline::Second)],
) -> Result<(), ReportError> {
    let err = plot_error("throughput");
    let per_second = |n: u64| n as f64 / c.width;
    let line = |f: fn(&super::timeline::Second) -> u64| {
        // A point per bucket, at its middle; seconds without events are zero.
        let mut points = Vec::with_capacity(buckets.len() + 2);
        let mut next = 0u64;
        for (at, s) in buckets {
            if *at > next {
                points.push((next as f64 + c.width / 2.0, 0.0));
                if *at > next + c.width as u64 {
                    points.push((*at as f64 - c.width / 2.0, 0.0));
                }
            }
            points.push((*at as f64 + c.width / 2.0, per_second(f(s))));
            next = at + c.width as u64;
        }
        points
    };
    chart
        .draw_series(LineSeries::new(line(|s| s.delivered), DELIVERED.stroke_width(2)))
        .map_err(&err)?;
    chart
        .draw_series(LineSeries::new(line(|s| s.acked), ACKED.stroke_width(2)))
        .map_err(&err)?;
    Ok(())
}

fn lanes(
    area: &DrawingArea<SVGBackend, Shift>,
    c: &Context,
    t: &Timeline,
    anomalies: &[AnomalyRow],
) -> Result<(), ReportError> {
    let err = plot_error("event strip");
    let rows = 1 + anomalies.len() as i32;
    let names: Vec<String> = std::iter::once("client crash".to_string())
        .chain(anomalies.iter().map(|a| a.kind.replace('-', " ")))
        .collect();
    // Row i is drawn at y = rows - 1 - i (the first on top), between -0.5 and rows - 0.5.
    let y_of = |row: usize| (rows - 1 - row as i32) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin_top(6)
        .margin_bottom(18)
        .margin_right(8 + RIGHT)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..c.end, -0.5f64..rows as f64 - 0.5)
        .map_err(&err)?;
    shade(&mut chart, c, (-0.5, rows as f64 - 0.5), false)?;
    let names_for_axis = names.clone();
    let label = move |y: &f64| {
        let row = rows - 1 - y.round() as i32;
        if (y - y.round()).abs() < 1e-6 && (0..rows).contains(&row) {
            names_for_axis[row as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(GRID.mix(0.0))
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .label_style((FONT, 13).into_font().color(&TEXT))
        .x_labels(0)
        .y_labels(rows as usize * 2 + 1)
        .y_label_formatter(&label)
        .draw()
        .map_err(&err)?;
    let crash_y = y_of(0);
    chart
        .draw_series(t.crashes.iter().map(|&at| {
            EmptyElement::at((at as f64 / 1e9, crash_y))
                + PathElement::new(vec![(0, -9), (0, 9)], CRASH.stroke_width(2))
        }))
        .map_err(&err)?;
    for (i, row) in anomalies.iter().enumerate() {
        let y = y_of(i + 1);
        let color = anomaly_color(&row.kind);
        chart
            .draw_series(row.times.iter().map(|&x| {
                EmptyElement::at((x, y))
                    + TriangleMarker::new((0, 0), 6, color.mix(0.55).filled())
                    + TriangleMarker::new((0, 0), 6, color.stroke_width(1))
            }))
            .map_err(&err)?;
    }
    Ok(())
}

fn latency(
    area: &DrawingArea<SVGBackend, Shift>,
    c: &Context,
    buckets: &[(u64, super::timeline::Second)],
) -> Result<(), ReportError> {
    let err = plot_error("latency");
    // One line per stretch of consecutive buckets with acknowledged sends: a second without
    // any has no latency, and a line drawn across it would invent some.
    let series = |q: Option<f64>| -> Vec<Vec<(f64, f64)>> {
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut previous: Option<u64> = None;
        for (at, s) in buckets.iter().filter(|(_, s)| !s.latency.is_empty()) {
            let v = match q {
                Some(q) => s.latency.quantile_millis(q),
                None => Some(s.latency.max_millis()),
            };
            let Some(v) = v else { continue };
            let point = (*at as f64 + c.width / 2.0, v.max(0.01));
            match (previous, runs.last_mut()) {
                (Some(p), Some(run)) if p + c.width as u64 == *at => run.push(point),
                _ => runs.push(vec![point]),
            }
            previous = Some(*at);
        }
        runs
    };
    let (p50, p99, max) = (series(Some(0.5)), series(Some(0.99)), series(None));
    let top = max.iter().flatten().map(|p| p.1).fold(1.0, f64::max);
    let bottom = p50.iter().flatten().map(|p| p.1).fold(top, f64::min).max(0.01);
    let (y0, y1) = (
        10f64.powf((bottom / 1.5).log10().floor()),
        10f64.powf((top * 1.5).log10().ceil()),
    );
    let mut chart = ChartBuilder::on(area)
        .margin_top(10)
        .margin_bottom(6)
        .margin_right(8 + RIGHT)
        .y_label_area_size(LEFT)
        .x_label_area_size(40)
        .build_cartesian_2d(0f64..c.end, (y0..y1).log_scale())
        .map_err(&err)?;
    shade(&mut chart, c, (y0, y1), false)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(GRID.mix(0.0))
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .label_style((FONT, 13).into_font().color(&TEXT))
        .axis_desc_style((FONT, 14).into_font().color(&TEXT))
        .y_desc("send latency")
        .x_desc("time since the run started")
        .x_labels(12)
        .x_label_formatter(&seconds_label(c.end))
        .y_label_formatter(&|v| match *v {
            v if v >= 1000.0 => format!("{:.0} s", v / 1000.0),
            v if v >= 1.0 => format!("{v:.0} ms"),
            v => format!("{v} ms"),
        })
        .draw()
        .map_err(&err)?;
    for (runs, style) in [
        (max, MAX.stroke_width(1)),
        (p99, P99.stroke_width(2)),
        (p50, P50.stroke_width(2)),
    ] {
        for run in runs {
            // A lone point would be an invisible line: give it a dot.
            if run.len() == 1 {
                chart
                    .draw_series(std::iter::once(Circle::new(run[0], 2, style.filled())))
                    .map_err(&err)?;
            } else {
                chart.draw_series(LineSeries::new(run, style)).map_err(&err)?;
            }
        }
    }
    if p50_is_empty(buckets) {
        let style = TextStyle::from((FONT, 14).into_font())
            .color(&TEXT)
            .pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .draw_series(std::iter::once(Text::new(
                "no acknowledged send: no latency to show",
                (c.end / 2.0, (y0 * y1).sqrt()),
                style,
            )))
            .map_err(&err)?;
    }
    Ok(())
}

fn p50_is_empty(buckets: &[(u64, super::timeline::Second)]) -> bool {
    buckets.iter().all(|(_, s)| s.latency.is_empty())
}

/// What one mark of a witness timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkKind {
    Invoke,
    Ok,
    Fail,
    Info,
    Crash,
    Nemesis,
}

/// One event of a witness timeline: its own row (labelled with its history index and process),
/// at its time, with what it did and where it put or found the message.
#[derive(Debug, Clone)]
pub(crate) struct WitnessMark {
    pub row: String,
    /// Seconds since the run started.
    pub at: f64,
    pub text: String,
    pub kind: MarkKind,
}

fn mark_color(kind: MarkKind) -> RGBColor {
    match kind {
        MarkKind::Invoke => AXIS,
        MarkKind::Ok => DELIVERED,
        MarkKind::Fail => RGBColor(220, 38, 38),
        MarkKind::Info => UNKNOWN,
        MarkKind::Crash => CRASH,
        MarkKind::Nemesis => RGBColor(147, 51, 234),
    }
}

/// The events behind one anomaly, one row each in history order, over the seconds `span`, with
/// the fault windows shaded behind them (the same shading as the run's figure).
pub(crate) fn witness_svg(
    title: &str,
    marks: &[WitnessMark],
    faults: &[FaultBand],
    span: (f64, f64),
) -> Result<String, ReportError> {
    let err = plot_error("witness timeline");
    let rows = marks.len().max(1) as i32;
    let height = 110 + rows as u32 * LANE_HEIGHT + 20;
    let (x0, x1) = (span.0, span.1.max(span.0 + 0.001));
    let clipped: Vec<FaultBand> = faults
        .iter()
        .filter(|f| f.healed > x0 && f.from < x1)
        .map(|f| FaultBand {
            from: f.from.max(x0),
            lifted: f.lifted.clamp(x0, x1),
            healed: f.healed.clamp(x0, x1),
            ..f.clone()
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let labels: Vec<String> = marks.iter().map(|m| m.row.clone()).collect();
        let y_of = |row: usize| (rows - 1 - row as i32) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 16).into_font().color(&TEXT))
            .margin(10)
            .margin_right(24)
            .y_label_area_size(LEFT + 40)
            .x_label_area_size(40)
            .build_cartesian_2d(x0..x1, -0.5f64..rows as f64 - 0.5)
            .map_err(&err)?;
        let context = Context {
            end: x1,
            width: 1.0,
            faults: &clipped,
            drain: None,
        };
        shade(&mut chart, &context, (-0.5, rows as f64 - 0.5), true)?;
        let label = move |y: &f64| {
            let row = rows - 1 - y.round() as i32;
            if (y - y.round()).abs() < 1e-6 && (0..rows).contains(&row) {
                labels.get(row as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let span_width = x1 - x0;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(GRID.mix(0.0))
            .bold_line_style(GRID)
            .axis_style(AXIS)
            .label_style((FONT, 13).into_font().color(&TEXT))
            .axis_desc_style((FONT, 14).into_font().color(&TEXT))
            .x_desc("time since the run started")
            .x_labels(10)
            .x_label_formatter(&|s: &f64| {
                if span_width < 2.0 {
                    format!("{s:.3} s")
                } else if span_width < 20.0 {
                    format!("{s:.1} s")
                } else {
                    format!("{s:.0} s")
                }
            })
            .y_labels(rows as usize * 2 + 1)
            .y_label_formatter(&label)
            .draw()
            .map_err(&err)?;
        let middle = (x0 + x1) / 2.0;
        let colors: Vec<RGBColor> = marks.iter().map(|m| mark_color(m.kind)).collect();
        chart
            .draw_series(marks.iter().zip(&colors).enumerate().map(|(i, (m, color))| {
                // Text beside the mark, towards the middle, so that it stays inside the figure.
                let (dx, anchor) = if m.at > middle {
                    (-10, HPos::Right)
                } else {
                    (10, HPos::Left)
                };
                let style = TextStyle::from((FONT, 13).into_font())
                    .color(color)
                    .pos(Pos::new(anchor, VPos::Center));
                EmptyElement::at((m.at, y_of(i)))
                    + Circle::new((0, 0), 5, color.filled())
                    + Text::new(m.text.clone(), (dx, 0), style)
            }))
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}
