//! A run config in JSON (`bossnas train --config <file>`, layered over a preset): parsed and
//! validated or refused, never a panic; a config that is accepted prints to TOML and parses back
//! to the same value (what `config.resolved.toml` and `--resume` rely on), and its JSON form is
//! accepted too. (Not equal to the bit: serde_json without its `float_roundtrip` feature may
//! read a float one ulp off; docs/reliability.md.)
#![no_main]

use bossnas_config::RunConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = RunConfig::from_json_str(text) {
        let toml =
            RunConfig::from_toml_str(&cfg.to_toml_string()).expect("resolved TOML reads back");
        assert_eq!(toml, cfg);
        RunConfig::from_json_str(&cfg.to_json_string()).expect("resolved JSON reads back");
    }
});
