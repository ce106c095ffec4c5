//! Architecture values of the three spaces, read from the forms the rest of the tool writes.
//!
//! Accepted by [`ArchSpec::parse`] (`bossnas retrain --arch`):
//! - a file path: `search.json` written by `bossnas search` (has `space` and `arch`), the
//!   bare `arch.json` value, or a file holding any form below;
//! - `{"space": "nats"|"mbconv"|"hytra", "arch": <value>}` (what [`ArchSpec::to_json`] writes);
//! - a HyTra network object `{"encoding": [[…],…], "options": {…}}`;
//! - a HyTra name: `bossnet-t0`, `bossnet-t1`, `r50-t`, …;
//! - a NATS width string `64:40:48:64:56`;
//! - an MBConv code `00-1111-2222-3333-0123`;
//! - a HyTra search path `[[5,4,3,3],…]` / `5433-3230-0010-0000` or a retraining encoding
//!   `[[1,1],[0,1],…]`;
//! - any of the strings above with a `nats:` / `mbconv:` / `hytra:` prefix to force the space.

use std::path::Path;

use hytra_space::hytra::HytraNet;
use hytra_space::mbconv::MbconvArch;
use hytra_space::nats::NatsArch;
use serde_json::{Value, json};

use crate::RetrainError;

/// One architecture of one of the spaces.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchSpec {
    /// A HyTra network (BossNet).
    Hytra(HytraNet),
    /// An MBConv network.
    Mbconv(MbconvArch),
    /// A NATS-Bench SSS network.
    Nats(NatsArch),
}

fn bad(text: &str, reason: impl std::fmt::Display) -> RetrainError {
    let shown: String = text.chars().take(120).collect();
    RetrainError::Arch(format!("{shown:?}: {reason}"))
}

impl ArchSpec {
    /// The space name (`hytra`, `mbconv`, `nats`).
    pub fn space(&self) -> &'static str {
        match self {
            ArchSpec::Hytra(_) => "hytra",
            ArchSpec::Mbconv(_) => "mbconv",
            ArchSpec::Nats(_) => "nats",
        }
    }

    /// `{"space": .., "arch": ..}`; [`ArchSpec::parse`] reads it back.
    pub fn to_json(&self) -> Value {
        let arch = match self {
            ArchSpec::Hytra(net) => serde_json::to_value(net).unwrap_or(Value::Null),
            ArchSpec::Mbconv(a) => Value::String(a.to_string()),
            ArchSpec::Nats(a) => Value::String(a.to_string()),
        };
        json!({"space": self.space(), "arch": arch})
    }

    /// Reads an architecture (see the [module documentation](self) for the forms). A path to
    /// an existing file is read first.
    pub fn parse(text: &str) -> Result<Self, RetrainError> {
        let t = text.trim();
        if !t.is_empty() && !t.starts_with(['{', '[']) && Path::new(t).is_file() {
            let body = std::fs::read_to_string(t)
                .map_err(|e| RetrainError::Arch(format!("{t}: cannot read: {e}")))?;
            return Self::parse_inline(body.trim())
                .map_err(|e| RetrainError::Arch(format!("{t}: {e}")));
        }
        Self::parse_inline(t)
    }

    fn parse_inline(t: &str) -> Result<Self, RetrainError> {
        if t.is_empty() {
            return Err(bad(t, "empty architecture"));
        }
        if let Some((space, rest)) = t.split_once(':')
            && matches!(space, "nats" | "mbconv" | "hytra")
        {
            return Self::parse_in(space, &Value::String(rest.to_string()), t);
        }
        if t.starts_with('{') {
            let v: Value = serde_json::from_str(t).map_err(|e| bad(t, e))?;
            if let (Some(space), Some(arch)) = (v.get("space"), v.get("arch")) {
                let space = space
                    .as_str()
                    .ok_or_else(|| bad(t, "`space` must be a string"))?;
                return Self::parse_in(space, arch, t);
            }
            return HytraNet::parse_json(t)
                .map(ArchSpec::Hytra)
                .map_err(|e| bad(t, e));
        }
        if t.starts_with('"') {
            let s: String = serde_json::from_str(t).map_err(|e| bad(t, e))?;
            return Self::parse_inline(&s);
        }
        if t.contains(':') {
            return t
                .parse::<NatsArch>()
                .map(ArchSpec::Nats)
                .map_err(|e| bad(t, format!("not a NATS width string: {e}")));
        }
        let data_like = t.starts_with('[') || t.starts_with(|c: char| c.is_ascii_digit());
        if !data_like {
            return HytraNet::named(t)
                .map(ArchSpec::Hytra)
                .map_err(|e| bad(t, format!("not a known network name: {e}")));
        }
        if !t.starts_with('[')
            && let Ok(a) = t.parse::<MbconvArch>()
        {
            return Ok(ArchSpec::Mbconv(a));
        }
        Self::parse_hytra_data(t)
    }

    fn parse_hytra_data(t: &str) -> Result<Self, RetrainError> {
        match HytraNet::parse_data(t) {
            Ok((net, _)) => Ok(ArchSpec::Hytra(net)),
            Err([search_err, enc_err]) => Err(bad(
                t,
                format!(
                    "neither an MBConv code, a HyTra search path ({search_err}) nor a \
                     retraining encoding ({enc_err})"
                ),
            )),
        }
    }

    fn parse_in(space: &str, arch: &Value, whole: &str) -> Result<Self, RetrainError> {
        let as_text = || match arch {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match space {
            "nats" => as_text()
                .trim()
                .parse::<NatsArch>()
                .map(ArchSpec::Nats)
                .map_err(|e| bad(whole, e)),
            "mbconv" => MbconvArch::parse_data(&arch.to_string())
                .map(ArchSpec::Mbconv)
                .map_err(|e| bad(whole, e)),
            "hytra" => {
                if arch.is_object() {
                    serde_json::from_value::<HytraNet>(arch.clone())
                        .map(ArchSpec::Hytra)
                        .map_err(|e| bad(whole, e))
                } else {
                    let text = as_text();
                    let text = text.trim();
                    if text.starts_with(['[']) || text.starts_with(|c: char| c.is_ascii_digit()) {
                        Self::parse_hytra_data(text)
                    } else {
                        HytraNet::named(text)
                            .map(ArchSpec::Hytra)
                            .map_err(|e| bad(whole, e))
                    }
                }
            }
            other => Err(bad(
                whole,
                format!("unknown space `{other}` (expected nats, mbconv or hytra)"),
            )),
        }
    }
}

impl std::fmt::Display for ArchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchSpec::Hytra(net) => write!(f, "hytra:{}", net.encoding),
            ArchSpec::Mbconv(a) => write!(f, "mbconv:{a}"),
            ArchSpec::Nats(a) => write!(f, "nats:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_and_round_trips() {
        let nats = ArchSpec::parse("64:40:48:64:56").unwrap();
        assert_eq!(nats.to_string(), "nats:64:40:48:64:56");
        assert_eq!(ArchSpec::parse(&nats.to_json().to_string()).unwrap(), nats);
        assert_eq!(ArchSpec::parse("\"8:8:8:8:8\"").unwrap().space(), "nats");

        let t0 = ArchSpec::parse("bossnet-t0").unwrap();
        assert_eq!(t0.space(), "hytra");
        assert_eq!(ArchSpec::parse(&t0.to_json().to_string()).unwrap(), t0);

        let mb = ArchSpec::parse("00-1111-2222-3333-0123").unwrap();
        assert_eq!(mb.space(), "mbconv");
        assert_eq!(ArchSpec::parse(&mb.to_json().to_string()).unwrap(), mb);

        // search.json as written by `bossnas search`.
        let summary = r#"{"space": "nats", "method": "greedy", "arch": "8:16:24:32:40"}"#;
        assert_eq!(
            ArchSpec::parse(summary).unwrap(),
            ArchSpec::Nats("8:16:24:32:40".parse().unwrap())
        );
        assert_eq!(ArchSpec::parse("nats:8:8:8:8:8").unwrap().space(), "nats");
    }

    #[test]
    fn bad_values_are_errors_that_quote_the_input() {
        for bad in [
            "",
            "9:8:8:8:8",
            "no-such-net",
            "[[1,2]]",
            "{\"space\": \"cnn\", \"arch\": 1}",
            "{",
        ] {
            let err = ArchSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains("architecture"), "{bad}: {err}");
        }
    }

    #[test]
    fn reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search.json");
        std::fs::write(&path, r#"{"space": "nats", "arch": "16:16:16:16:16"}"#).unwrap();
        let a = ArchSpec::parse(path.to_str().unwrap()).unwrap();
        assert_eq!(a, ArchSpec::Nats("16:16:16:16:16".parse().unwrap()));
    }
}
