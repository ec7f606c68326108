//! `ackcheck check FILE [--claim MODE] [--group GROUP]... [--json] [--examples N] [--junit FILE]`.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use crate::checker;
use crate::history::reader::HistoryReader;
use crate::history::Guarantee;
use crate::report;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The history (JSON Lines, format v1); `-` reads standard input.
    pub file: PathBuf,
    /// The guarantee to judge against (overrides the header's claim).
    #[arg(long, value_enum)]
    pub claim: Option<Guarantee>,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Judge only this consumer group (repeat for several); overrides the header's
    /// `claim_groups`. The per-group counts still show every group.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Examples to show per anomaly.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// The evidence grade a holding claim needs: with weaker evidence, exit 3 (for CI gates).
    #[arg(long, value_name = "GRADE", value_parser = ["strong", "weak"])]
    pub min_evidence: Option<String>,
    /// Also write the verdict as JUnit XML (one test case per claim) to this file, for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Exit codes: 0 claim holds (or none), 1 claim violated, 2 unusable input, 3 the claim holds
/// but the evidence is weaker than `--min-evidence`, 4 the JUnit file cannot be written.
pub fn run(args: CheckArgs) -> i32 {
    let reader = match HistoryReader::open(&args.file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let options = checker::CheckOptions {
        claim: args.claim,
        examples: args.examples,
        groups: (!args.groups.is_empty()).then_some(args.groups),
        min_evidence: args.min_evidence.as_deref().and_then(|g| g.parse().ok()),
    };
    let verdict = match checker::check_with(reader, &options) {
        Ok(v) => v,
        Err(checker::CheckError::History(e)) => {
            eprintln!("error: {} is not a usable history: {e}", args.file.display());
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Some(path) = &args.junit {
        let name = match args.file.as_os_str() == "-" {
            true => "stdin".to_string(),
            false => args
                .file
                .file_stem()
                .map_or_else(|| "history".into(), |s| s.to_string_lossy().into_owned()),
        };
        let header = report::read_header(&args.file);
        let suite = report::junit::Suite::new(header.as_ref(), &name, Some(&args.file), &verdict);
        if let Err(e) = report::junit::write(path, &[suite]) {
            eprintln!("error: {e}; check that its folder exists and is writable");
            return 4;
        }
    }
    let text = if args.json {
        format!("{}\n", report::json(&verdict))
    } else {
        report::human(&verdict)
    };
    match write_stdout(&text) {
        Ok(()) => verdict.exit_code(),
        // The reader went away (`ackcheck check … | head -1`): nothing left to tell anyone.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => verdict.exit_code(),
        Err(e) => {
            eprintln!("error: cannot write the verdict to standard output ({e}); check where it is redirected");
            2
        }
    }
}

/// Write and flush, returning the error instead of panicking as `print!` does.
fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
