//! A CIFAR binary file (`data_batch_*.bin`, `train.bin`) in each of its three layouts: read or
//! refused with the file named, never a panic; every record that is read has a label inside
//! its layout's classes.
#![no_main]

use std::path::Path;

use bossnas_datasets::{Cifar100Label, CifarBinary, CifarLayout, ImageSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for layout in [
        CifarLayout::Cifar10,
        CifarLayout::Cifar100 {
            label: Cifar100Label::Fine,
        },
        CifarLayout::Cifar100 {
            label: Cifar100Label::Coarse,
        },
        CifarLayout::Cifar100FineOnly,
    ] {
        if let Ok(set) = CifarBinary::from_bytes(data, layout, Path::new("fuzz.bin")) {
            for i in 0..set.len().min(4) {
                let sample = set.get(i).expect("a record of a file that was read");
                assert!(sample.label < set.num_classes());
            }
        }
    }
});
