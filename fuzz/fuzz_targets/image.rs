//! An image file of an image folder (JPEG or PNG, by content, whatever its extension): decoded
//! to RGB or refused as corrupt with the file named, never a panic.
#![no_main]

use bossnas_datasets::folder::decode_image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("img.jpg");
    std::fs::write(&path, data).expect("write");
    if let Ok(img) = decode_image(&path) {
        assert_eq!(img.data.len(), img.width * img.height * 3);
    }
});
