//! `ackcheck generate` (hidden): a synthetic history with planted anomalies, for tests and
//! benchmarks. The planted truth goes to `--truth FILE` (JSON).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::history::Guarantee;
use crate::synth::{self, Plan};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write the history (`-` for standard output).
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
    /// Where to write the planted truth as JSON.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    #[arg(long, default_value_t = 16)]
    pub producers: u64,
    #[arg(long, default_value_t = 1)]
    pub groups: u64,
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    #[arg(long, value_enum)]
    pub claim: Option<Guarantee>,
    /// Leave out the final drain.
    #[arg(long)]
    pub no_drain: bool,
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    #[arg(long, default_value_t = 0.0)]
    pub written_twice: f64,
    #[arg(long, default_value_t = 0.0)]
    pub redelivered: f64,
    #[arg(long, default_value_t = 0.0)]
    pub indeterminate: f64,
    #[arg(long, default_value_t = 0.0)]
    pub failed: f64,
    #[arg(long, default_value_t = 0.0)]
    pub unexpected: f64,
    #[arg(long, default_value_t = 0.0)]
    pub reordered: f64,
    #[arg(long, default_value_t = 0.0)]
    pub atomic: f64,
    #[arg(long, default_value_t = 0.0)]
    pub aborted: f64,
    #[arg(long, default_value_t = 0.0)]
    pub torn: f64,
    #[arg(long)]
    pub pipeline: bool,
    /// Declare log positions in the header (the checker then runs its log checks too).
    #[arg(long)]
    pub log_positions: bool,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<i32> {
    let plan = Plan {
        seed: a.seed,
        messages: a.messages,
        producers: a.producers,
        groups: a.groups,
        batch: a.batch,
        drain: !a.no_drain,
        claim: a.claim,
        loss: a.loss,
        written_twice: a.written_twice,
        redelivered: a.redelivered,
        indeterminate: a.indeterminate,
        failed: a.failed,
        unexpected: a.unexpected,
        reordered: a.reordered,
        atomic: a.atomic,
        aborted: a.aborted,
        torn: a.torn,
        pipeline: a.pipeline,
        log_positions: a.log_positions,
    };
    let mut out: Box<dyn Write> = if a.out.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(
            File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?,
        ))
    };
    let truth = synth::generate(&plan, &mut out).context("writing the history")?;
    out.flush().context("writing the history")?;
    if let Some(path) = a.truth {
        std::fs::write(&path, serde_json::to_string_pretty(&truth)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}
