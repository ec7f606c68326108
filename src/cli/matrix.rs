//! `ackcheck matrix MATRIX.toml [--out DIR] [--junit FILE] [--min-evidence G] [--list]`: every
//! cell of a matrix, one after another, resumable, with one line of results per cell.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::matrix::{self, Cell};
use crate::plan::RunOptions;
use crate::runner;

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The matrix file: `seeds`, `duration`, and `[[cells]]` of campaign globs, each with an
    /// optional `variant`, `seeds` and `[cells.set]` overrides (see README).
    pub matrix: PathBuf,
    /// Where the cells' campaigns, runs and results.jsonl land (default: runs/matrix-<file name>).
    /// Cells already in its results.jsonl are skipped: run the same command again to resume.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write every cell's verdict as JUnit XML (one test suite per cell) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The evidence grade a holding claim needs: with weaker evidence the cell exits 3.
    #[arg(long, value_name = "GRADE", value_parser = ["strong", "weak"])]
    pub min_evidence: Option<String>,
    /// Print the cells (and which are done) and exit; run nothing.
    #[arg(long)]
    pub list: bool,
}

/// Exit 0 every cell ran and its claim held, 1 some claim was violated, 3 some held on weaker
/// evidence than asked, 4 some run failed; 130/143 the matrix was interrupted (the cell that
/// was running healed and drained; run the command again to resume).
pub fn run(args: MatrixArgs) -> anyhow::Result<i32> {
    let cells = matrix::cells(&args.matrix)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .matrix
            .file_stem()
            .map_or("matrix".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(format!("matrix-{stem}"))
    });
    let results = out.join("results.jsonl");
    let done = matrix::done_cells(&results);
    if args.list {
        for c in &cells {
            let mark = if done.contains(&c.name) { "done" } else { "to run" };
            println!("{:<8} {} ({}, seed {})", mark, c.name, c.source.display(), c.seed);
        }
        return Ok(0);
    }
    let campaigns = out.join("campaigns");
    std::fs::create_dir_all(&campaigns).with_context(|| format!("creating {}", campaigns.display()))?;
    for c in &cells {
        let path = campaigns.join(format!("{}.toml", c.name));
        std::fs::write(&path, &c.text).with_context(|| format!("writing {}", path.display()))?;
    }
    let todo = cells.iter().filter(|c| !done.contains(&c.name)).count();
    eprintln!(
        "ackcheck matrix: {} cells, {} done before, {todo} to run; results in {}",
        cells.len(),
        cells.len() - todo,
        results.display()
    );
    let bar = ProgressBar::new(cells.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("matrix [{bar:30}] cell {pos}/{len}  {elapsed} elapsed, ~{eta} left  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_position((cells.len() - todo) as u64);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let min_evidence = args.min_evidence.as_deref().and_then(|g| g.parse().ok());
    let started = Instant::now();
    let mut exits = Vec::new();
    // The cluster of the current segment (consecutive cells on one broker, size and settings)
    // and whether this matrix started it (then it stops it when the segment ends).
    let mut segment: Option<(String, bool)> = None;
    let mut interrupted = None;
    let mut last_broker = None;
    // A Ctrl-C or SIGTERM between two runs (while a segment's cluster stops, say) reaches no
    // run: the matrix notes it here and starts no further cell. During a run, the run takes it
    // too (it heals and drains), and the matrix stops after it.
    let signalled = Arc::new(AtomicI32::new(0));
    let _watcher = {
        let signalled = signalled.clone();
        let _guard = runtime.enter();
        tokio_util::task::AbortOnDropHandle::new(runtime.spawn(async move {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            let code = tokio::select! {
                _ = tokio::signal::ctrl_c() => 130,
                _ = term.recv() => 143,
            };
            signalled.store(code, Ordering::SeqCst);
        }))
    };
    for (i, cell) in cells.iter().enumerate() {
        if done.contains(&cell.name) {
            continue;
        }
        if let code @ 1.. = signalled.load(Ordering::SeqCst) {
            interrupted = Some(code);
            // The cluster kept for this cell is not needed any more.
            if let (Some((_, true)), Some(broker)) = (&segment, last_broker) {
                if let Err(e) = runtime.block_on(runner::stop_local_cluster(broker)) {
                    bar.suspend(|| eprintln!("warning: {e:#}"));
                }
            }
            break;
        }
        last_broker = Some(cell.broker);
        if segment.as_ref().is_none_or(|(key, _)| key != &cell.cluster_key) {
            segment = Some((cell.cluster_key.clone(), !runner::local_cluster_running(cell.broker)));
        }
        bar.set_message(cell.name.clone());
        // The bar is redrawn between runs; each run draws its own progress line meanwhile.
        bar.suspend(|| eprintln!("\n== matrix cell {} of {}: {}", i + 1, cells.len(), cell.name));
        let dir = out.join("cells").join(&cell.name);
        let options = RunOptions {
            out: Some(dir.clone()),
            seed: Some(cell.seed),
            // Kept for the next cell on the same cluster; stopped below when the segment ends.
            keep_cluster: true,
            min_evidence,
            ..RunOptions::for_campaign(&campaigns.join(format!("{}.toml", cell.name)))
        };
        let exit = bar.suspend(|| runtime.block_on(runner::run(options)));
        let exit = exit.map_err(|e| format!("{e:#}"));
        if let Err(e) = &exit {
            bar.suspend(|| eprintln!("cell {} failed: {e}", cell.name));
        }
        let signal = signalled.load(Ordering::SeqCst);
        match exit {
            // Cut short by a signal: not done (its verdict covers part of a run), also when
            // the part that ran violated its claim (the run then exits 1, not 130).
            _ if signal != 0 => interrupted = Some(signal),
            Ok(code @ (130 | 143)) => {
                interrupted = Some(code);
            }
            other => {
                let line = matrix::result_line(cell, &dir, other.clone());
                matrix::append_result(&results, &line)?;
                exits.push(other.unwrap_or(4));
            }
        }
        bar.inc(1);
        let next = cells[i + 1..].iter().find(|c| !done.contains(&c.name));
        let segment_ends = interrupted.is_some() || next.is_none_or(|n| n.cluster_key != cell.cluster_key);
        if segment_ends {
            if let Some((_, true)) = &segment {
                if let Err(e) = runtime.block_on(runner::stop_local_cluster(cell.broker)) {
                    bar.suspend(|| eprintln!("warning: {e:#}"));
                }
            }
            segment = None;
        }
        if interrupted.is_some() {
            break;
        }
    }
    bar.finish_and_clear();
    runtime.shutdown_timeout(Duration::from_secs(5));
    if let Some(junit) = &args.junit {
        let runs: Vec<_> = cells
            .iter()
            .map(|c| (c.name.clone(), out.join("cells").join(&c.name), min_evidence))
            .collect();
        crate::report::junit::write_runs(junit, &runs, None)
            .context("writing the matrix's JUnit XML; check that its folder exists and is writable")?;
        println!("JUnit XML: {}", junit.display());
    }
    let summary = summarize(&cells, &matrix::done_cells(&results), started.elapsed());
    println!("{summary}");
    if let Some(code) = interrupted {
        println!("interrupted: run the same command again to resume with the cells left");
        return Ok(code);
    }
    Ok(worst(&exits))
}

/// The exit code of the whole matrix from its cells': a violation first, then a failed run,
/// then weak evidence.
fn worst(exits: &[i32]) -> i32 {
    for code in [1, 4, 3, 2] {
        if exits.contains(&code) {
            return code;
        }
    }
    0
}

fn summarize(cells: &[Cell], done: &std::collections::BTreeSet<String>, took: Duration) -> String {
    let finished = cells.iter().filter(|c| done.contains(&c.name)).count();
    format!(
        "matrix: {finished} of {} cells done ({:.0} min this time); one line per cell in results.jsonl",
        cells.len(),
        took.as_secs_f64() / 60.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_cell_decides_the_exit_code() {
        assert_eq!(worst(&[0, 0]), 0);
        assert_eq!(worst(&[0, 3, 4]), 4);
        assert_eq!(worst(&[4, 1, 3]), 1);
        assert_eq!(worst(&[]), 0);
    }
}
