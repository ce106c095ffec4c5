//! The download path end to end against an HTTP server on 127.0.0.1 serving a small CIFAR-10
//! shaped archive: checksum verified, unpacked atomically, corrupt downloads discarded, an
//! unreachable address explained.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;

use bossnas_datasets::{DataError, Dataset, FetchPolicy, download_verified, ensure};
use md5::{Digest, Md5};

/// A `.tar.gz` holding `cifar-10-batches-bin/` with six tiny files (one 3073-byte record each).
fn tiny_cifar10_archive() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (i, name) in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]
    .iter()
    .enumerate()
    {
        let mut record = vec![(i % 10) as u8];
        record.extend((0..3072).map(|p| (p % 251) as u8));
        let mut header = tar::Header::new_gnu();
        header.set_size(record.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{name}.bin"),
            &record[..],
        )
        .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Serves `body` with status 200 (or 404 for any path ending in `/missing`) to `n` requests.
fn serve(body: Vec<u8>, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut s = stream.unwrap();
            let mut req = [0u8; 4096];
            let len = s.read(&mut req).unwrap_or(0);
            let line = String::from_utf8_lossy(&req[..len]).to_string();
            if line.lines().next().unwrap_or("").contains("/missing ") {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

fn md5_hex(b: &[u8]) -> String {
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn downloads_verifies_and_unpacks_cifar10() {
    let archive = tiny_cifar10_archive();
    let url = format!("{}/cifar-10-binary.tar.gz", serve(archive.clone(), 1));
    let dir = tempfile::tempdir().unwrap();
    let policy = FetchPolicy {
        download: true,
        url_override: Some(url.clone()),
        md5_override: Some(md5_hex(&archive)),
        ..FetchPolicy::default()
    };
    let found = ensure(Dataset::Cifar10, dir.path(), &policy).unwrap();
    assert_eq!(found.root, dir.path().join("cifar-10-batches-bin"));
    assert_eq!(found.how, format!("downloaded {url}"));
    let test_batch = std::fs::read(found.root.join("test_batch.bin")).unwrap();
    assert_eq!(test_batch.len(), 3073);
    assert_eq!(test_batch[0], 5);
    assert_eq!(test_batch[1 + 300], (300 % 251) as u8);
    // Only the dataset is left: no archive, no .part, no staging folder.
    assert_eq!(entries(dir.path()), vec!["cifar-10-batches-bin"]);

    // A second call finds it without the network (the server only answered once).
    let again = ensure(Dataset::Cifar10, dir.path(), &policy).unwrap();
    assert_eq!(again.how, "present");
}

#[test]
fn checksum_mismatch_discards_the_download() {
    let archive = tiny_cifar10_archive();
    let url = format!("{}/cifar-10-binary.tar.gz", serve(archive.clone(), 1));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("a.tar.gz");
    let err = download_verified(&url, "00000000000000000000000000000000", &dest).unwrap_err();
    match &err {
        DataError::Checksum {
            expected,
            actual,
            bytes,
            ..
        } => {
            assert_eq!(expected, "00000000000000000000000000000000");
            assert_eq!(actual, &md5_hex(&archive));
            assert_eq!(*bytes, archive.len() as u64);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn http_error_and_unreachable_server_explain_how_to_provide_the_files() {
    let base = serve(Vec::new(), 1);
    let dir = tempfile::tempdir().unwrap();
    let policy = FetchPolicy {
        download: true,
        url_override: Some(format!("{base}/missing")),
        ..FetchPolicy::default()
    };
    let msg = ensure(Dataset::Cifar10, dir.path(), &policy)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("404"), "{msg}");
    assert!(
        msg.contains("cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin"),
        "{msg}"
    );
    assert!(msg.contains("c32a1d4ab5d03f1284b67883e8d87530"), "{msg}");

    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let policy = FetchPolicy {
        download: true,
        url_override: Some(format!("http://{closed}/cifar-100-binary.tar.gz")),
        ..FetchPolicy::default()
    };
    let msg = ensure(Dataset::Cifar100, dir.path(), &policy)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("Downloading the official archive failed"),
        "{msg}"
    );
    assert!(msg.contains("Without network access"), "{msg}");
    assert!(msg.contains("cifar-100-binary/{train,test}.bin"), "{msg}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn local_archive_is_used_before_the_network_and_corrupt_ones_are_refused() {
    let src = tempfile::tempdir().unwrap();
    let good = src.path().join("c10.tar.gz");
    std::fs::write(&good, tiny_cifar10_archive()).unwrap();
    let bad = src.path().join("bad.tar.gz");
    std::fs::write(&bad, b"not gzip at all").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let err = ensure(
        Dataset::Cifar10,
        dir.path(),
        &FetchPolicy {
            local_archives: vec![bad.clone()],
            ..FetchPolicy::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, DataError::Archive { .. }), "{err}");
    assert!(err.to_string().contains("bad.tar.gz"), "{err}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));

    let found = ensure(
        Dataset::Cifar10,
        dir.path(),
        &FetchPolicy {
            local_archives: vec![src.path().join("absent.tar.gz"), good.clone()],
            ..FetchPolicy::default()
        },
    )
    .unwrap();
    assert_eq!(found.how, format!("unpacked {}", good.display()));
    assert_eq!(found.root, dir.path().join("cifar-10-batches-bin"));
}
