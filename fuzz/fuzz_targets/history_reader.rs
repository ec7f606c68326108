//! Arbitrary bytes as a history: the reader and the checker must answer with a verdict or an
//! error naming the line, never panic or hang.
#![no_main]

use ackcheck::checker::{self, CheckOptions};
use ackcheck::history::reader::HistoryReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reader = HistoryReader::from_bytes(data.to_vec());
    let options = CheckOptions {
        examples: 3,
        ..CheckOptions::default()
    };
    if let Ok(verdict) = checker::check_with(reader, &options) {
        let _ = ackcheck::report::human(&verdict);
        let _ = ackcheck::report::json(&verdict);
    }
});
