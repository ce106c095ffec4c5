//! ImageFolder layout: `root/<class>/*.{jpg,jpeg,png}`, class index = position of the class
//! folder in byte-wise sorted name order (torchvision's convention, so labels agree with
//! PyTorch runs on the same tree). Files are listed at construction and decoded on demand.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{DataError, ImageSource, RgbImage, Sample, io_err};

/// What to do with an image that cannot be decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CorruptImagePolicy {
    /// Stop with an error naming the file (default: silent data loss is worse than a stop).
    #[default]
    Fail,
    /// Drop the image, print a warning naming the file, and count it.
    Skip,
}

/// File extensions we decode (lower-cased comparison).
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Decodes a JPEG/PNG file to RGB8 (grey, alpha and 16-bit inputs are converted). The format is
/// sniffed from the content, so a misnamed file still decodes; any failure is
/// [`DataError::CorruptImage`] naming the path.
pub fn decode_image(path: &Path) -> Result<RgbImage, DataError> {
    let corrupt = |reason: String| DataError::CorruptImage {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(io_err(path))?
        .with_guessed_format()
        .map_err(|e| corrupt(e.to_string()))?;
    let img = reader.decode().map_err(|e| corrupt(e.to_string()))?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Ok(RgbImage {
        width: w as usize,
        height: h as usize,
        data: rgb.into_raw(),
    })
}

/// Images in class folders.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    items: Vec<(PathBuf, usize)>,
    skipped: Vec<PathBuf>,
}

impl ImageFolder {
    /// Lists `root/<class>/*.{jpg,jpeg,png}` (sub-folders sorted, files sorted within a class;
    /// other files are ignored). Nothing is decoded yet, so opening the 60k-image CIFAR tree is
    /// instant; use [`ImageFolder::verify`] to check every file up front.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, DataError> {
        let root = root.as_ref().to_path_buf();
        let mut class_dirs: Vec<(String, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(io_err(&root))? {
            let entry = entry.map_err(io_err(&root))?;
            let path = entry.path();
            if path.is_dir() {
                class_dirs.push((entry.file_name().to_string_lossy().into_owned(), path));
            }
        }
        class_dirs.sort();
        if class_dirs.is_empty() {
            return Err(DataError::Layout {
                path: root,
                reason: "no class sub-folders (expected root/<class>/*.jpg|png)".into(),
            });
        }
        let mut items = Vec::new();
        for (label, (_, dir)) in class_dirs.iter().enumerate() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
                let path = entry.map_err(io_err(dir))?.path();
                let is_img = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
                if is_img && path.is_file() {
                    files.push(path);
                }
            }
            files.sort();
            items.extend(files.into_iter().map(|p| (p, label)));
        }
        if items.is_empty() {
            return Err(DataError::Layout {
                path: root,
                reason: "class folders contain no .jpg/.jpeg/.png files".into(),
            });
        }
        Ok(Self {
            root,
            classes: class_dirs.into_iter().map(|(n, _)| n).collect(),
            items,
            skipped: Vec::new(),
        })
    }

    /// Decodes every image once, in parallel. Under [`CorruptImagePolicy::Fail`] the first bad
    /// file (in index order, so the message is deterministic) is returned as an error; under
    /// `Skip` bad files are removed from the listing (warning on stderr) and remembered in
    /// [`ImageFolder::skipped`]. Returns the number of files removed.
    pub fn verify(&mut self, policy: CorruptImagePolicy) -> Result<usize, DataError> {
        let bad = Mutex::new(Vec::new());
        self.items.par_iter().enumerate().for_each(|(i, (p, _))| {
            if let Err(e) = decode_image(p) {
                bad.lock().expect("poisoned").push((i, e));
            }
        });
        let mut bad = bad.into_inner().expect("poisoned");
        bad.sort_by_key(|(i, _)| *i);
        if bad.is_empty() {
            return Ok(0);
        }
        if policy == CorruptImagePolicy::Fail {
            return Err(bad.swap_remove(0).1);
        }
        let n = bad.len();
        for (i, e) in bad.iter().rev() {
            eprintln!("warning: skipping image: {e}");
            let (p, _) = self.items.remove(*i);
            self.skipped.push(p);
        }
        self.skipped.reverse();
        Ok(n)
    }

    /// Class names in label order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Path of item `index`, if in range.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.items.get(index).map(|(p, _)| p.as_path())
    }

    /// Label of item `index` without decoding it.
    pub fn label(&self, index: usize) -> Option<usize> {
        self.items.get(index).map(|(_, l)| *l)
    }

    /// Files removed by [`ImageFolder::verify`] with the `Skip` policy.
    pub fn skipped(&self) -> &[PathBuf] {
        &self.skipped
    }
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let (path, label) = self.items.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.items.len(),
        })?;
        Ok(Sample {
            image: decode_image(path)?,
            label: *label,
        })
    }

    fn describe(&self) -> String {
        format!(
            "ImageFolder {}: {} images, {} classes{}",
            self.root.display(),
            self.len(),
            self.classes.len(),
            if self.skipped.is_empty() {
                String::new()
            } else {
                format!(", {} corrupt files skipped", self.skipped.len())
            }
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `root/{b_cls,a_cls}/` with 2 + 1 valid PNG/JPEG images, a `notes.txt`, and (if
    /// `corrupt`) `b_cls/z_bad.jpg` holding garbage. Returns the pixels of each valid image.
    pub(crate) fn write_tree(root: &Path, corrupt: bool) -> Vec<(String, RgbImage)> {
        let mk = |w: usize, h: usize, seed: u8| {
            let data = (0..w * h * 3)
                .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
                .collect();
            RgbImage::new(w, h, data).unwrap()
        };
        let save = |rel: &str, img: &RgbImage| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
                .unwrap()
                .save(&p)
                .unwrap();
        };
        let imgs = vec![
            ("a_cls/0.png".to_string(), mk(5, 4, 1)),
            ("b_cls/1.png".to_string(), mk(3, 3, 2)),
            ("b_cls/2.PNG".to_string(), mk(4, 6, 3)),
        ];
        for (rel, img) in &imgs {
            // `image` picks the encoder from the extension; save lower-case then rename.
            let lower = rel.to_lowercase();
            save(&lower, img);
            if lower != *rel {
                std::fs::rename(root.join(&lower), root.join(rel)).unwrap();
            }
        }
        save("b_cls/3.jpg", &mk(8, 8, 4));
        std::fs::write(root.join("b_cls/notes.txt"), "not an image").unwrap();
        if corrupt {
            std::fs::write(root.join("b_cls/z_bad.jpg"), b"\xff\xd8garbage").unwrap();
        }
        imgs
    }

    #[test]
    fn lists_sorted_classes_and_decodes_png_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let imgs = write_tree(tmp.path(), false);
        let mut ds = ImageFolder::new(tmp.path()).unwrap();
        assert_eq!(ds.classes(), ["a_cls", "b_cls"]);
        assert_eq!(ds.len(), 4); // 0.png | 1.png 2.PNG 3.jpg (txt ignored)
        assert_eq!(ds.num_classes(), 2);
        for (i, (_, img)) in imgs.iter().enumerate() {
            let s = ds.get(i).unwrap();
            assert_eq!(s.label, usize::from(i > 0));
            assert_eq!(&s.image, img, "item {i}");
        }
        let jpg = ds.get(3).unwrap();
        assert_eq!((jpg.image.width, jpg.image.height, jpg.label), (8, 8, 1));
        assert_eq!(
            ds.verify(CorruptImagePolicy::Fail)
                .map_err(|e| e.to_string()),
            Ok(0)
        );
    }

    #[test]
    fn corrupt_image_fails_or_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        write_tree(tmp.path(), true);
        let mut ds = ImageFolder::new(tmp.path()).unwrap();
        assert_eq!(ds.len(), 5);
        let bad = ds.get(4).unwrap_err();
        assert!(matches!(bad, DataError::CorruptImage { .. }));
        assert!(bad.to_string().contains("z_bad.jpg"), "{bad}");

        let e = ds.clone().verify(CorruptImagePolicy::Fail).unwrap_err();
        assert!(e.to_string().contains("z_bad.jpg"), "{e}");

        assert_eq!(ds.verify(CorruptImagePolicy::Skip).unwrap(), 1);
        assert_eq!(ds.len(), 4);
        assert!(ds.skipped()[0].ends_with("b_cls/z_bad.jpg"));
        assert!(ds.describe().contains("1 corrupt"));
    }

    /// Needs the unpacked JPEG tree: `tar xzf shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz -C D`
    /// then `BOSSNAS_CIFAR10_JPEG=D/cifar10_jpeg cargo test -p ensemble-bootstrap -- --ignored`.
    #[test]
    #[ignore = "needs the unpacked CIFAR-10 JPEG tree (BOSSNAS_CIFAR10_JPEG)"]
    fn cifar10_jpeg_tree_matches_official_labels() {
        use crate::{CifarBinary, CifarLayout, shared_data_dir};
        let root = std::env::var_os("BOSSNAS_CIFAR10_JPEG")
            .map(PathBuf::from)
            .expect("set BOSSNAS_CIFAR10_JPEG to the unpacked cifar10_jpeg/ folder");
        let mut ds = ImageFolder::new(root.join("test")).unwrap();
        assert_eq!(ds.len(), 10_000);
        assert_eq!(ds.classes()[0], "airplane");
        assert_eq!(ds.classes()[9], "truck");
        assert_eq!(ds.verify(CorruptImagePolicy::Fail).unwrap(), 0);
        // Test image 0 is the first cat (label 3): lossy, so compare the mean error.
        let cat0 = ds.get(3 * 1000).unwrap();
        assert_eq!(cat0.label, 3);
        let exact = CifarBinary::from_files(
            &[shared_data_dir()
                .unwrap()
                .join("cifar-exact/cifar10_test_first20.bin")],
            CifarLayout::Cifar10,
        )
        .unwrap()
        .get(0)
        .unwrap();
        let mae: f64 = cat0
            .image
            .data
            .iter()
            .zip(&exact.image.data)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum::<f64>()
            / 3072.0;
        assert!(mae < 12.0, "mean abs error {mae}");
    }

    #[test]
    fn empty_or_missing_root_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(ImageFolder::new(tmp.path()).is_err());
        std::fs::create_dir(tmp.path().join("c")).unwrap();
        assert!(ImageFolder::new(tmp.path()).is_err());
        let e = ImageFolder::new(tmp.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
