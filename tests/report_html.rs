//! `ackcheck report` in a real browser: the page of a real Kafka run (tests/data, with faults,
//! crashes and duplicates) renders in headless Chromium (Debian's `chromium`), its screenshot is
//! not blank (the verdict's colour and the plotted lines are there), and the page logs nothing
//! to the console. The page is self-contained: no script, nothing fetched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ackcheck, apt_install_if_missing};

const WEAK_RUN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/kafka-at-least-once-seed7-weak.jsonl"
);

/// Headless Chromium: a screenshot of `page` at 1280 × `height`, with the browser's log (console
/// messages included) on stderr.
fn screenshot(page: &Path, png: &Path, height: u32, profile: &Path) -> Output {
    apt_install_if_missing("chromium", "chromium");
    let url = format!("file://{}", page.display());
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
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The console messages in Chromium's log (`INFO:CONSOLE(12)] "…", source: …`).
fn console_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Pixels (RGB) of a PNG.
fn pixels(png: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (info.width, info.height, rgb)
}

/// Pixels within a small distance of `color` (anti-aliasing blurs edges, not line centres).
fn near(rgb: &[[u8; 3]], color: [u8; 3]) -> usize {
    rgb.iter()
        .filter(|p| p.iter().zip(color).all(|(a, b)| a.abs_diff(b) <= 24))
        .count()
}

fn out_dir() -> PathBuf {
    // Kept after the test, to look at: target/tmp/report_html/.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_html");
    std::fs::create_dir_all(&dir).expect("creating the output folder");
    dir
}

#[test]
fn the_console_check_sees_an_error_when_there_is_one() {
    // If Chromium's log format changed, the check below would pass on a broken page: prove it
    // catches a console error first.
    let dir = out_dir();
    let page = dir.join("probe.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><p>probe</p><script>console.error('probe-error')</script>",
    )
    .expect("writing the probe");
    let profile = tempfile::tempdir().expect("a temporary directory");
    let out = screenshot(&page, &dir.join("probe.png"), 300, profile.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = console_lines(&out);
    assert!(lines.iter().any(|l| l.contains("probe-error")), "{lines:?}");
}

#[test]
fn the_report_of_a_real_run_renders_in_chromium() {
    let dir = out_dir();
    let page = dir.join("kafka-at-least-once-seed7.html");
    let (code, out, err) = ackcheck(
        &["report", WEAK_RUN, "--out", page.to_str().expect("a UTF-8 path")],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let html = std::fs::read_to_string(&page).expect("the report was written");

    // Self-contained: no script, nothing to fetch, the plots inline.
    for fetch in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(
            !html.contains(fetch),
            "the page refers to something outside it: {fetch}"
        );
    }
    assert!(html.contains("<svg"), "no plot in the page");
    // What an engineer looks for first: the claim and its verdict, the evidence, the proofs.
    assert!(html.contains("claim at-least-once"), "no claim");
    assert!(html.contains("HOLDS"), "no verdict");
    assert!(html.contains("Evidence is <b>weak</b>"), "no evidence grade");
    assert!(
        html.contains("ackcheck run workloads/kafka-at-least-once.toml --seed 7 --duration 60s"),
        "no command to reproduce the run"
    );

    let png = dir.join("kafka-at-least-once-seed7.png");
    let profile = tempfile::tempdir().expect("a temporary directory");
    let out = screenshot(&page, &png, 1600, profile.path());
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = console_lines(&out);
    assert!(console.is_empty(), "the page logged to the console: {console:#?}");

    let (width, height, rgb) = pixels(&png);
    assert_eq!((width, height), (1280, 1600));
    let mut colors: Vec<[u8; 3]> = rgb.clone();
    colors.sort_unstable();
    colors.dedup();
    let background = [248u8, 250, 252];
    let drawn = rgb
        .iter()
        .filter(|p| **p != background && **p != [255, 255, 255])
        .count();
    println!(
        "screenshot {}: {} distinct colours, {:.1} % of pixels drawn",
        png.display(),
        colors.len(),
        100.0 * drawn as f64 / rgb.len() as f64
    );
    assert!(
        colors.len() > 200,
        "a nearly blank screenshot: {} colours",
        colors.len()
    );
    assert!(
        drawn * 20 > rgb.len(),
        "a nearly blank screenshot: {drawn} pixels drawn"
    );
    // The verdict's green (HOLDS), the acknowledged line's blue and the delivered line's green:
    // the page's styles applied and the SVG drew.
    let holds = near(&rgb, [21, 128, 61]);
    let acked = near(&rgb, [37, 99, 235]);
    let delivered = near(&rgb, [22, 163, 74]);
    println!("pixels: verdict green {holds}, acknowledged blue {acked}, delivered green {delivered}");
    assert!(holds > 500, "the verdict is not shown in its colour ({holds} pixels)");
    assert!(
        acked > 200,
        "the acknowledged-messages line is missing ({acked} pixels)"
    );
    assert!(
        delivered > 200,
        "the delivered-messages line is missing ({delivered} pixels)"
    );
}

#[test]
fn a_run_directory_gets_its_report_inside_with_the_command_that_made_the_run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let run = dir.path();
    std::fs::copy(WEAK_RUN, run.join("history.jsonl")).expect("copying the history");
    let history = run.join("history.jsonl");
    let (code, verdict, err) = ackcheck(&["check", "--json", history.to_str().expect("a UTF-8 path")], None);
    assert_eq!(code, 0, "{err}");
    std::fs::write(run.join("verdict.json"), &verdict).expect("writing verdict.json");
    std::fs::write(
        run.join("run.log"),
        "[    0.000] campaign kafka-at-least-once (my campaigns/kafka.toml), seed 7, run id 42683549\n",
    )
    .expect("writing run.log");
    let (code, out, err) = ackcheck(&["report", run.to_str().expect("a UTF-8 path")], None);
    assert_eq!(code, 0, "{out}{err}");
    let page = std::fs::read_to_string(run.join("report.html")).expect("DIR/report.html written");
    // The campaign file from run.log (quoted for the shell), the effective seed and duration.
    assert!(
        page.contains("ackcheck run &#39;my campaigns/kafka.toml&#39; --seed 7 --duration 60s"),
        "{page}"
    );
    assert!(!page.contains("checker changed since the run"), "the verdicts agree");

    // A verdict.json that says otherwise (an older checker): the page says which is which.
    let older = verdict.replace("\"claim_holds\": true", "\"claim_holds\": false");
    assert_ne!(older, verdict);
    std::fs::write(run.join("verdict.json"), older).expect("writing verdict.json");
    let (code, out, err) = ackcheck(&["report", run.to_str().expect("a UTF-8 path")], None);
    assert_eq!(code, 0, "{out}{err}");
    let page = std::fs::read_to_string(run.join("report.html")).expect("DIR/report.html written");
    assert!(
        page.contains("checker changed since the run"),
        "no note of the disagreement"
    );

    // Not a run directory and not a history: unusable input.
    let (code, _, err) = ackcheck(
        &["report", dir.path().join("nothing").to_str().expect("a UTF-8 path")],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("neither a run directory"), "{err}");
}
