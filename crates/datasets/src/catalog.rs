//! The datasets of the BossNAS protocols: accepted layouts and official archives.

use std::path::{Path, PathBuf};

/// An official archive: where it is published and its published MD5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteArchive {
    pub url: &'static str,
    pub md5: &'static str,
    /// File name the archive is saved under while it is downloaded and unpacked.
    pub file_name: &'static str,
}

/// A dataset one of the suites trains or rates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// CIFAR-10: the official binary batches or the JPEG class-folder tree.
    Cifar10,
    /// CIFAR-100: the official binaries.
    Cifar100,
    /// ImageNet-1k as class folders `train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`.
    ImageNet,
}

const CIFAR10_BIN: RemoteArchive = RemoteArchive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    file_name: "cifar-10-binary.tar.gz",
};

const CIFAR100_BIN: RemoteArchive = RemoteArchive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    file_name: "cifar-100-binary.tar.gz",
};

impl Dataset {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "CIFAR-10",
            Self::Cifar100 => "CIFAR-100",
            Self::ImageNet => "ImageNet",
        }
    }

    /// The official archive, for the datasets that may be downloaded.
    pub fn remote(self) -> Option<RemoteArchive> {
        match self {
            Self::Cifar10 => Some(CIFAR10_BIN),
            Self::Cifar100 => Some(CIFAR100_BIN),
            Self::ImageNet => None,
        }
    }

    /// The layouts accepted under a data directory `dir`, one line each.
    pub fn layouts(self, dir: &Path) -> Vec<String> {
        let d = dir.display();
        match self {
            Self::Cifar10 => vec![
                format!(
                    "{d}/cifar-10-batches-bin/{{data_batch_1..5,test_batch}}.bin (official binary \
                     version, also accepted directly in {d})"
                ),
                format!(
                    "{d}/cifar10_jpeg/{{train,test}}/<class>/*.jpg (image class folders, also \
                     accepted directly in {d})"
                ),
            ],
            Self::Cifar100 => vec![format!(
                "{d}/cifar-100-binary/{{train,test}}.bin (official binary version, also accepted \
                 directly in {d})"
            )],
            Self::ImageNet => vec![format!(
                "{d}/imagenet/{{train,val}}/<wnid>/*.JPEG (class folders, also accepted directly \
                 in {d})"
            )],
        }
    }

    /// The directory holding the dataset under `dir` (itself or a conventional sub-folder).
    pub fn find(self, dir: &Path) -> Option<PathBuf> {
        let candidates = |sub: &str| [dir.to_path_buf(), dir.join(sub)];
        match self {
            Self::Cifar10 => {
                let bins: Vec<String> = (1..=5)
                    .map(|i| format!("data_batch_{i}.bin"))
                    .chain(["test_batch.bin".to_string()])
                    .collect();
                candidates("cifar-10-batches-bin")
                    .into_iter()
                    .find(|b| bins.iter().all(|f| b.join(f).is_file()))
                    .or_else(|| {
                        candidates("cifar10_jpeg").into_iter().find(|b| {
                            has_class_folders(&b.join("train"))
                                && has_class_folders(&b.join("test"))
                        })
                    })
            }
            Self::Cifar100 => candidates("cifar-100-binary")
                .into_iter()
                .find(|b| b.join("train.bin").is_file() && b.join("test.bin").is_file()),
            Self::ImageNet => candidates("imagenet")
                .into_iter()
                .find(|b| has_class_folders(&b.join("train")) && has_class_folders(&b.join("val"))),
        }
    }

    /// The error text for a dataset that could not be found or fetched.
    pub(crate) fn missing_message(
        self,
        dir: &Path,
        tried: &[String],
        download_error: Option<&str>,
        download_allowed: bool,
    ) -> String {
        let mut m = format!(
            "{} not found in the data directory {}.\nAccepted layouts:\n",
            self.name(),
            dir.display()
        );
        for l in self.layouts(dir) {
            m.push_str(&format!("  - {l}\n"));
        }
        for t in tried {
            m.push_str(&format!("Tried the local archive {t}.\n"));
        }
        match (self.remote(), download_error) {
            (Some(r), Some(e)) => m.push_str(&format!(
                "Downloading the official archive failed ({e}).\nWithout network access, fetch \
                 {} on another machine, check its MD5 is {}, and unpack it into {} \
                 (`tar xzf {} -C {}`).\n",
                r.url,
                r.md5,
                dir.display(),
                r.file_name,
                dir.display()
            )),
            (Some(r), None) if !download_allowed => m.push_str(&format!(
                "Downloads are off: unpack {} (MD5 {}) into {}.\n",
                r.url,
                r.md5,
                dir.display()
            )),
            _ => {}
        }
        if self == Self::ImageNet {
            m.push_str(
                "ImageNet cannot be downloaded automatically (its licence requires a sign-up at \
                 image-net.org); arrange the ILSVRC-2012 train and val images in class folders.\n",
            );
        }
        m.push_str(
            "Choose another data directory with --data <dir> or the BOSSNAS_DATA environment \
             variable.",
        );
        m
    }
}

fn has_class_folders(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut it| it.any(|e| e.is_ok_and(|e| e.path().is_dir())))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_layout_and_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        assert_eq!(Dataset::Cifar10.find(d), None);
        let bin = d.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&bin).unwrap();
        for f in [
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
        ] {
            std::fs::write(bin.join(format!("{f}.bin")), b"").unwrap();
        }
        assert_eq!(Dataset::Cifar10.find(d), None, "test_batch.bin is missing");
        std::fs::write(bin.join("test_batch.bin"), b"").unwrap();
        assert_eq!(Dataset::Cifar10.find(d), Some(bin));

        let jpeg = d.join("j");
        for s in ["cifar10_jpeg/train/cat", "cifar10_jpeg/test/cat"] {
            std::fs::create_dir_all(jpeg.join(s)).unwrap();
        }
        assert_eq!(
            Dataset::Cifar10.find(&jpeg),
            Some(jpeg.join("cifar10_jpeg"))
        );

        assert_eq!(Dataset::Cifar100.find(d), None);
        assert_eq!(Dataset::ImageNet.find(d), None);
    }

    #[test]
    fn missing_message_names_layout_place_and_remedy() {
        let m = Dataset::Cifar100.missing_message(
            Path::new("/data/here"),
            &[],
            Some("connection refused"),
            true,
        );
        assert!(
            m.contains("CIFAR-100 not found in the data directory /data/here"),
            "{m}"
        );
        assert!(
            m.contains("/data/here/cifar-100-binary/{train,test}.bin"),
            "{m}"
        );
        assert!(m.contains("connection refused"), "{m}");
        assert!(m.contains("03b5dce01913d631647c71ecec9e9cb8"), "{m}");
        assert!(m.contains("BOSSNAS_DATA"), "{m}");
        let m = Dataset::ImageNet.missing_message(Path::new("/d"), &[], None, true);
        assert!(m.contains("/d/imagenet/{train,val}/<wnid>/*.JPEG"), "{m}");
        assert!(m.contains("cannot be downloaded automatically"), "{m}");
    }
}
