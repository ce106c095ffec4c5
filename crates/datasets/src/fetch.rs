//! Verified download and atomic extraction.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::{DataError, io_err};

/// Downloads `url` to `dest`, verifying the MD5 of the bytes as they stream in.
///
/// The bytes go to `<dest>.part` first; only a complete download with the expected checksum
/// is renamed to `dest`. On any failure the partial file is removed, so `dest` either does not
/// exist or is exactly the published archive. Returns the number of bytes.
pub fn download_verified(url: &str, md5_hex: &str, dest: &Path) -> Result<u64, DataError> {
    download_checked::<Md5>(url, "MD5", md5_hex, dest)
}

/// [`download_verified`] with a SHA-256 digest (files pinned by this project, e.g. the
/// NATS-Bench tables of the BossNAS repository).
pub fn download_sha256(url: &str, sha256_hex: &str, dest: &Path) -> Result<u64, DataError> {
    download_checked::<Sha256>(url, "SHA-256", sha256_hex, dest)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn download_checked<H: Digest>(
    url: &str,
    algorithm: &'static str,
    expected_hex: &str,
    dest: &Path,
) -> Result<u64, DataError> {
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        reason,
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(120)));
    if is_loopback(url) {
        // A proxy from the environment never serves this machine's own addresses.
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config.build().into();
    eprintln!("downloading {url} -> {}", dest.display());
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut body = response.into_body().into_reader();

    let part = part_path(dest);
    let result = (|| {
        let file = File::create(&part).map_err(io_err(&part))?;
        let mut out = BufWriter::new(file);
        let mut hasher = H::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let n = body.read(&mut buf).map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(&part))?;
            bytes += n as u64;
        }
        out.into_inner()
            .map_err(|e| io_err(&part)(e.into_error()))?
            .sync_all()
            .map_err(io_err(&part))?;
        let actual = hex(&hasher.finalize());
        if !actual.eq_ignore_ascii_case(expected_hex) {
            return Err(DataError::Checksum {
                url: url.to_string(),
                algorithm,
                expected: expected_hex.to_string(),
                actual,
                bytes,
            });
        }
        std::fs::rename(&part, dest).map_err(io_err(dest))?;
        Ok(bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// Unpacks a `.tar.gz` archive into `dir`.
///
/// Entries are unpacked into a fresh temporary folder inside `dir` and each top-level entry is
/// then renamed into place, so a corrupt archive leaves `dir` as it was. Entries that would
/// escape the folder (`..`, absolute paths) are refused by the `tar` crate.
pub fn extract_tar_gz(archive: &Path, dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let staging = staging_dir(dir)?;
    let result = (|| {
        let file = File::open(archive).map_err(io_err(archive))?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        tar.unpack(&staging).map_err(|e| DataError::Archive {
            path: archive.to_path_buf(),
            reason: e.to_string(),
        })?;
        for entry in std::fs::read_dir(&staging).map_err(io_err(&staging))? {
            let entry = entry.map_err(io_err(&staging))?;
            let target = dir.join(entry.file_name());
            if target.exists() {
                return Err(DataError::Archive {
                    path: archive.to_path_buf(),
                    reason: format!(
                        "{} already exists; remove it or choose another data directory",
                        target.display()
                    ),
                });
            }
            std::fs::rename(entry.path(), &target).map_err(io_err(&target))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|h| rest.starts_with(h))
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// A fresh hidden folder inside `dir` for files that are not ready yet.
pub(crate) fn staging_dir(dir: &Path) -> Result<PathBuf, DataError> {
    for i in 0..1000u32 {
        let p = dir.join(format!(".unpacking-{}-{i}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&p)(e)),
        }
    }
    Err(DataError::Missing(format!(
        "cannot create a staging folder in {}",
        dir.display()
    )))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_known_strings() {
        // RFC 1321 test suite.
        assert_eq!(hex(&Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(&Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn sha256_of_known_strings() {
        // FIPS 180-2 example.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
