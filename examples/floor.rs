//! The benchmark floor for `ackcheck check`: only parse each line into the typed event structs
//! with serde_json, single-threaded, and keep a set of message ids. A checker cannot be much
//! cheaper than this; BENCHMARKS.md compares against it.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};

use ackcheck::history::Event;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: floor HISTORY.jsonl"))?;
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let mut ids: HashSet<String> = HashSet::new();
    let mut events = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if n == 0 && line.contains("\"history\"") {
            continue;
        }
        let event: Event = serde_json::from_str(&line)?;
        events += 1;
        if let Some(value) = event.value {
            for m in value.messages {
                ids.insert(m.id);
            }
        }
    }
    println!("{events} events, {} distinct messages", ids.len());
    Ok(())
}
