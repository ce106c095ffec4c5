//! Architecture text and JSON of the three spaces: every parser returns a value or an error,
//! never panics, and a parsed value prints back to text that parses to the same value.
#![no_main]

use hytra_space::hytra::{HytraNet, RetrainEncoding, SearchPath};
use hytra_space::mbconv::MbconvArch;
use hytra_space::nats::NatsArch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = text.parse::<NatsArch>() {
        assert_eq!(a.to_string().parse::<NatsArch>().ok(), Some(a));
    }
    if let Ok(a) = text.parse::<MbconvArch>() {
        assert_eq!(a.to_string().parse::<MbconvArch>().ok(), Some(a));
    }
    let _ = SearchPath::parse(text);
    let _ = RetrainEncoding::parse(text);
    let _ = HytraNet::parse_json(text);
    let _ = serde_json::from_str::<NatsArch>(text);
    let _ = serde_json::from_str::<MbconvArch>(text);
});
