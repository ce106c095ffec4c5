//! A scores CSV (`bossnas nats correlate --scores`): loaded or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scores.csv");
    std::fs::write(&path, data).expect("write");
    if let Ok(s) = bench_nats::ScoresInput::from_csv(&path, None) {
        let _ = s.validate();
    }
});
