//! The anomaly timelines of `analysis/` (SVG drawn by `ackcheck analyze` from real histories of
//! the matrix) open in headless Chromium (Debian's `chromium`): each screenshot is not blank, the
//! events' marks are drawn in their colours, their labels (history index, position) are in the
//! file, and the browser logs nothing to the console. Every timeline that `guarantees.md` shows
//! must exist.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::apt_install_if_missing;

const ANALYSIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/analysis");

fn screenshot(page: &Path, png: &Path, profile: &Path) -> Output {
    apt_install_if_missing("chromium", "chromium");
    Command::new("chromium")
        .args([
            "--headless",
            // Root (CI, containers) cannot use Chromium's sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1160,700",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs")
}

/// Pixels (RGB) of a PNG.
fn pixels(png: &Path) -> Vec<[u8; 3]> {
    let file = std::fs::File::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect()
}

fn near(rgb: &[[u8; 3]], color: [u8; 3]) -> usize {
    rgb.iter()
        .filter(|p| p.iter().zip(color).all(|(a, b)| a.abs_diff(b) <= 24))
        .count()
}

/// The timelines `guarantees.md` embeds (`![…](timelines/NAME.svg)`).
fn shown_timelines() -> Vec<PathBuf> {
    let text =
        std::fs::read_to_string(Path::new(ANALYSIS).join("guarantees.md")).expect("analysis/guarantees.md exists");
    text.lines()
        .filter_map(|l| l.strip_prefix("!["))
        .filter_map(|l| l.split_once("](timelines/"))
        .filter_map(|(_, rest)| rest.split_once(')'))
        .map(|(file, _)| Path::new(ANALYSIS).join("timelines").join(file))
        .collect()
}

#[test]
fn every_timeline_of_the_analysis_renders_in_chromium() {
    let timelines = shown_timelines();
    assert!(!timelines.is_empty(), "guarantees.md shows no timeline");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("analysis_timelines");
    std::fs::create_dir_all(&out).expect("making the output folder");
    for svg in timelines {
        let text = std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
        assert!(text.starts_with("<svg"), "{} is not an SVG", svg.display());
        // The events' history indices label the rows (`#3377 p1`), positions follow an `@`.
        let index_label = text.lines().any(|l| {
            l.strip_prefix('#')
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        });
        assert!(index_label, "{}: no history index in the labels", svg.display());
        assert!(text.contains(" @ "), "{}: no position in the labels", svg.display());
        let png = out.join(svg.file_name().expect("a file name")).with_extension("png");
        let profile = tempfile::tempdir().expect("a temporary directory");
        let run = screenshot(&svg, &png, profile.path());
        assert!(
            run.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let console: Vec<String> = String::from_utf8_lossy(&run.stderr)
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect();
        assert!(console.is_empty(), "{}: the browser logged {console:#?}", svg.display());
        let rgb = pixels(&png);
        let mut colors = rgb.clone();
        colors.sort_unstable();
        colors.dedup();
        let drawn = rgb.iter().filter(|p| **p != [255, 255, 255]).count();
        // An ok event's green (a send acknowledged or a delivery) is on every timeline.
        let green = near(&rgb, [22, 163, 74]);
        println!(
            "{}: {} colours, {drawn} pixels drawn, {green} green",
            png.display(),
            colors.len()
        );
        assert!(colors.len() > 30, "{}: a nearly blank screenshot", svg.display());
        assert!(
            drawn > 5_000,
            "{}: a nearly blank screenshot ({drawn} pixels)",
            svg.display()
        );
        assert!(
            green > 30,
            "{}: no acknowledged or delivered event drawn",
            svg.display()
        );
    }
}
