//! Labelled images: the decoded pixel type, one sample, and the trait every image source
//! ([`crate::cifar::CifarBinary`], [`crate::folder::ImageFolder`], [`crate::split::Subset`])
//! implements.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::DataError;

/// An 8-bit RGB image in HWC (interleaved, row-major) order — the layout PIL/torchvision
/// augmentations work on, so our ops can mirror theirs pixel for pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes, `data[(y * width + x) * 3 + c]`.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Wraps HWC bytes; errors (instead of panicking later) if the length does not match.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self, DataError> {
        if data.len() != width * height * 3 {
            return Err(DataError::Config(format!(
                "RGB image {width}x{height} needs {} bytes, got {}",
                width * height * 3,
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A black image.
    pub fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    /// Pixel `[r, g, b]` at column `x`, row `y`.
    #[inline]
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let o = (y * self.width + x) * 3;
        [self.data[o], self.data[o + 1], self.data[o + 2]]
    }
}

/// One labelled image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub image: RgbImage,
    pub label: usize,
}

/// An indexable set of labelled images. Implementations decode lazily and must be usable from
/// many threads at once (the loader decodes a batch in parallel).
pub trait ImageSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn num_classes(&self) -> usize;
    /// Decodes item `index`. A bad file yields [`DataError::CorruptImage`] (which the loader may
    /// skip, per [`CorruptImagePolicy`]); never panics.
    fn get(&self, index: usize) -> Result<Sample, DataError>;
    /// One line for logs and reports (where the data came from, how many items).
    fn describe(&self) -> String;
}

impl<T: ImageSource + ?Sized> ImageSource for Arc<T> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        (**self).get(index)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// The shared data directory (`shared/data`, holding `cifar-exact/`, `cifar10-jpeg/`, ...):
/// `$BOSSNAS_SHARED_DATA` if set, else `<crate>/../../../shared/data`. Errors (never silently
/// skips) when it is missing, so tests that need real fixtures fail loudly.
pub fn shared_data_dir() -> Result<PathBuf, DataError> {
    let dir = match std::env::var_os("BOSSNAS_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(DataError::Layout {
            path: dir,
            reason: "shared data directory not found; set BOSSNAS_SHARED_DATA to the folder \
                     holding cifar-exact/ and cifar10-jpeg/"
                .into(),
        })
    }
}
