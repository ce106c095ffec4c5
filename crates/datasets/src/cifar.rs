//! CIFAR-10/100 in the official binary layout (the lossless source: the JPEG tree is lossy).
//!
//! A record is label byte(s) followed by 3072 pixel bytes: 1024 R, 1024 G, 1024 B, each plane
//! 32×32 row-major. The whole file set is held in memory (CIFAR-10 train is 150 MB) because
//! decoding is then a byte shuffle, far cheaper than any augmentation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{DataError, ImageSource, RgbImage, Sample, io_err};

/// Pixel bytes per record (3 planes of 32×32).
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR-100 label a 2-label record yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cifar100Label {
    /// 20 superclasses (first label byte).
    Coarse,
    /// 100 classes (second label byte): what NATS-Bench and BossNAS use.
    Fine,
}

/// The record's label layout, made explicit because the three variants have different record
/// sizes and reading one as another silently shifts every image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CifarLayout {
    /// Official CIFAR-10: 1 label byte (0..10) + 3072 → 3073-byte records.
    Cifar10,
    /// Official CIFAR-100: coarse byte (0..20), fine byte (0..100) + 3072 → 3074-byte records.
    Cifar100 { label: Cifar100Label },
    /// 1 fine-label byte (0..100) + 3072 → 3073-byte records, as in the fixture
    /// `cifar100_test_first20.bin`.
    Cifar100FineOnly,
}

impl CifarLayout {
    pub fn label_bytes(self) -> usize {
        match self {
            CifarLayout::Cifar10 | CifarLayout::Cifar100FineOnly => 1,
            CifarLayout::Cifar100 { .. } => 2,
        }
    }

    pub fn record_size(self) -> usize {
        self.label_bytes() + CIFAR_PIXELS
    }

    /// Byte offset of the selected label inside a record.
    fn label_offset(self) -> usize {
        match self {
            CifarLayout::Cifar100 {
                label: Cifar100Label::Fine,
            } => 1,
            _ => 0,
        }
    }

    pub fn num_classes(self) -> usize {
        match self {
            CifarLayout::Cifar10 => 10,
            CifarLayout::Cifar100 {
                label: Cifar100Label::Coarse,
            } => 20,
            CifarLayout::Cifar100 {
                label: Cifar100Label::Fine,
            }
            | CifarLayout::Cifar100FineOnly => 100,
        }
    }
}

/// Which official file set to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CifarFileSplit {
    /// CIFAR-10 `data_batch_1..5.bin`; CIFAR-100 `train.bin`. 50,000 images.
    Train,
    /// CIFAR-10 `test_batch.bin`; CIFAR-100 `test.bin`. 10,000 images.
    Test,
}

/// CIFAR records loaded from one or more binary files.
#[derive(Clone, Debug)]
pub struct CifarBinary {
    layout: CifarLayout,
    labels: Vec<u8>,
    /// `n * 3072` bytes, planar (CHW) exactly as in the files.
    pixels: Vec<u8>,
    files: Vec<PathBuf>,
}

impl CifarBinary {
    /// Reads and validates the given files, concatenated in order. Errors name the file:
    /// unreadable, empty, truncated final record, or a label out of range.
    pub fn from_files<P: AsRef<Path>>(paths: &[P], layout: CifarLayout) -> Result<Self, DataError> {
        let mut out = CifarBinary {
            layout,
            labels: Vec::new(),
            pixels: Vec::new(),
            files: Vec::new(),
        };
        for p in paths {
            let p = p.as_ref();
            let bytes = std::fs::read(p).map_err(io_err(p))?;
            out.append_bytes(&bytes, p)?;
            out.files.push(p.to_path_buf());
        }
        Ok(out)
    }

    /// Parses in-memory bytes; `origin` is only used to name the data in errors.
    pub fn from_bytes(bytes: &[u8], layout: CifarLayout, origin: &Path) -> Result<Self, DataError> {
        let mut out = CifarBinary {
            layout,
            labels: Vec::new(),
            pixels: Vec::new(),
            files: vec![origin.to_path_buf()],
        };
        out.append_bytes(bytes, origin)?;
        Ok(out)
    }

    fn append_bytes(&mut self, bytes: &[u8], path: &Path) -> Result<(), DataError> {
        let rs = self.layout.record_size();
        if bytes.is_empty() {
            return Err(DataError::Layout {
                path: path.to_path_buf(),
                reason: "empty CIFAR binary file".into(),
            });
        }
        if !bytes.len().is_multiple_of(rs) {
            return Err(DataError::TruncatedRecord {
                path: path.to_path_buf(),
                record: bytes.len() / rs,
                len: bytes.len() as u64,
                record_size: rs,
            });
        }
        let n = bytes.len() / rs;
        let (lo, lb, nc) = (
            self.layout.label_offset(),
            self.layout.label_bytes(),
            self.layout.num_classes(),
        );
        self.labels.reserve(n);
        self.pixels.reserve(n * CIFAR_PIXELS);
        for (r, rec) in bytes.chunks_exact(rs).enumerate() {
            // Validate every label byte present (a coarse byte ≥ 20 means the wrong layout).
            for (k, &b) in rec[..lb].iter().enumerate() {
                let limit = match (lb, k) {
                    (2, 0) => 20,
                    (2, _) => 100,
                    _ => nc,
                };
                if b as usize >= limit {
                    return Err(DataError::BadLabel {
                        path: path.to_path_buf(),
                        record: r,
                        label: b,
                        num_classes: limit,
                    });
                }
            }
            self.labels.push(rec[lo]);
            self.pixels.extend_from_slice(&rec[lb..]);
        }
        Ok(())
    }

    /// The official CIFAR-10 binary files under `dir` (or `dir/cifar-10-batches-bin/`).
    pub fn cifar10(dir: &Path, split: CifarFileSplit) -> Result<Self, DataError> {
        let names: Vec<String> = match split {
            CifarFileSplit::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            CifarFileSplit::Test => vec!["test_batch.bin".into()],
        };
        let base = resolve_dir(dir, "cifar-10-batches-bin", &names[0]);
        let paths: Vec<PathBuf> = names.iter().map(|n| base.join(n)).collect();
        Self::from_files(&paths, CifarLayout::Cifar10)
    }

    /// The official CIFAR-100 binary file under `dir` (or `dir/cifar-100-binary/`).
    pub fn cifar100(
        dir: &Path,
        split: CifarFileSplit,
        label: Cifar100Label,
    ) -> Result<Self, DataError> {
        let name = match split {
            CifarFileSplit::Train => "train.bin",
            CifarFileSplit::Test => "test.bin",
        };
        let base = resolve_dir(dir, "cifar-100-binary", name);
        Self::from_files(&[base.join(name)], CifarLayout::Cifar100 { label })
    }

    pub fn layout(&self) -> CifarLayout {
        self.layout
    }

    /// All labels, without decoding any pixels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}

/// Accepts both the directory holding the files and its parent (the tarballs unpack into a
/// named subfolder).
fn resolve_dir(dir: &Path, sub: &str, probe: &str) -> PathBuf {
    if !dir.join(probe).exists() && dir.join(sub).join(probe).exists() {
        dir.join(sub)
    } else {
        dir.to_path_buf()
    }
}

impl ImageSource for CifarBinary {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn num_classes(&self) -> usize {
        self.layout.num_classes()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let len = self.len();
        if index >= len {
            return Err(DataError::IndexOutOfRange { index, len });
        }
        let planes = &self.pixels[index * CIFAR_PIXELS..(index + 1) * CIFAR_PIXELS];
        let mut data = vec![0u8; CIFAR_PIXELS];
        for i in 0..1024 {
            data[i * 3] = planes[i];
            data[i * 3 + 1] = planes[1024 + i];
            data[i * 3 + 2] = planes[2048 + i];
        }
        Ok(Sample {
            image: RgbImage {
                width: 32,
                height: 32,
                data,
            },
            label: self.labels[index] as usize,
        })
    }

    fn describe(&self) -> String {
        let files: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        format!(
            "CIFAR binary {:?}: {} images, {} classes, from [{}]",
            self.layout,
            self.len(),
            self.num_classes(),
            files.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{folder::decode_image, shared_data_dir};

    fn exact_dir() -> PathBuf {
        shared_data_dir()
            .expect("shared data is required for this test")
            .join("cifar-exact")
    }

    /// Compares the binary fixture with the lossless PNGs `png/<prefix>_NN_L.png`.
    fn check_against_pngs(ds: &CifarBinary, prefix: &str) {
        let dir = exact_dir().join("png");
        assert_eq!(ds.len(), 20);
        for i in 0..20 {
            let s = ds.get(i).unwrap();
            let png = dir.join(format!("{prefix}_{i:02}_{}.png", s.label));
            assert!(
                png.exists(),
                "label mismatch or missing fixture: {}",
                png.display()
            );
            let img = decode_image(&png).unwrap();
            assert_eq!((img.width, img.height), (32, 32));
            assert!(
                img.data == s.image.data,
                "pixels differ for {}",
                png.display()
            );
        }
    }

    #[test]
    fn cifar10_fixture_matches_pngs_byte_exact() {
        let ds = CifarBinary::from_files(
            &[exact_dir().join("cifar10_test_first20.bin")],
            CifarLayout::Cifar10,
        )
        .unwrap();
        // Official CIFAR-10 test labels start 3 (cat), 8 (ship), 8, 0 (airplane).
        assert_eq!(&ds.labels()[..4], &[3, 8, 8, 0]);
        check_against_pngs(&ds, "cifar10");
    }

    #[test]
    fn cifar100_fine_only_fixture_matches_pngs() {
        let ds = CifarBinary::from_files(
            &[exact_dir().join("cifar100_test_first20.bin")],
            CifarLayout::Cifar100FineOnly,
        )
        .unwrap();
        check_against_pngs(&ds, "cifar100");
    }

    #[test]
    fn cifar100_two_label_layout_selects_label() {
        let mut rec = vec![7u8, 42];
        rec.extend((0..CIFAR_PIXELS).map(|i| (i % 251) as u8));
        let p = Path::new("mem.bin");
        let fine = CifarBinary::from_bytes(
            &rec,
            CifarLayout::Cifar100 {
                label: Cifar100Label::Fine,
            },
            p,
        )
        .unwrap();
        let coarse = CifarBinary::from_bytes(
            &rec,
            CifarLayout::Cifar100 {
                label: Cifar100Label::Coarse,
            },
            p,
        )
        .unwrap();
        assert_eq!(fine.get(0).unwrap().label, 42);
        assert_eq!(coarse.get(0).unwrap().label, 7);
        // Planar → interleaved: pixel 1's G is plane byte 1024 + 1.
        assert_eq!(
            fine.get(0).unwrap().image.pixel(1, 0)[1],
            ((1024 + 1) % 251) as u8
        );
    }

    #[test]
    fn errors_name_file_and_problem() {
        let p = Path::new("bad.bin");
        let mut rec = vec![3u8; 3073 + 10];
        let e = CifarBinary::from_bytes(&rec, CifarLayout::Cifar10, p).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, DataError::TruncatedRecord { record: 1, .. }),
            "{msg}"
        );
        assert!(
            msg.contains("bad.bin") && msg.contains("truncated"),
            "{msg}"
        );

        rec.truncate(3073);
        rec[0] = 10;
        let e = CifarBinary::from_bytes(&rec, CifarLayout::Cifar10, p).unwrap_err();
        assert!(matches!(e, DataError::BadLabel { label: 10, .. }), "{e}");

        let e =
            CifarBinary::cifar10(Path::new("/nonexistent-dir"), CifarFileSplit::Test).unwrap_err();
        assert!(e.to_string().contains("test_batch.bin"), "{e}");
        assert!(CifarBinary::from_bytes(&[], CifarLayout::Cifar10, p).is_err());
        assert!(matches!(
            CifarBinary::from_bytes(&rec[..3073], CifarLayout::Cifar100FineOnly, p)
                .unwrap()
                .get(1),
            Err(DataError::IndexOutOfRange { index: 1, len: 1 })
        ));
    }
}
