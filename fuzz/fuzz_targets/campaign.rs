//! Arbitrary text as a campaign file: parsing and validation answer with a campaign or one
//! clear error, and a campaign that validates can be scheduled without a panic (no duration
//! or count overflows when its faults are planned).
#![no_main]

use std::time::Duration;

use ackcheck::campaign::Campaign;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Campaign::parse("fuzz.toml", text) {
        Ok(campaign) => {
            let seed = campaign.seed.unwrap_or(1);
            let faults = ackcheck::faults::schedule(&campaign.nemesis, seed, campaign.nodes, campaign.duration);
            assert!(faults.len() < 10_000_000, "a schedule of {} faults", faults.len());
            // The runner turns these into timers: they must be finite, positive and bounded.
            let _ = Duration::from_secs_f64(campaign.drain.timeout);
            let _ = Duration::from_secs_f64(campaign.drain.quiet);
            let _ = Duration::from_secs_f64(campaign.crashes.interval);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty(), "an error without words");
        }
    }
});
