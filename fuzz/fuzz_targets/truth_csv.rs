//! A NATS-Bench ground-truth CSV (`--truth`): loaded or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("truth.csv");
    std::fs::write(&path, data).expect("write");
    let _ = bench_nats::GroundTruth::load(&path);
});
