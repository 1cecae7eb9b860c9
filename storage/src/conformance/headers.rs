//! Kept headers: the standard headers a writer sets are returned by every read, follow a
//! copy's directive and survive a multipart upload.

use super::*;
use crate::ObjectHeaders;

fn download_headers() -> ObjectHeaders {
    ObjectHeaders {
        cache_control: Some("public, max-age=3600".to_owned()),
        content_disposition: Some("attachment; filename=\"report.txt\"".to_owned()),
        content_encoding: Some("gzip".to_owned()),
        content_language: Some("en-GB".to_owned()),
        expires: Some("Thu, 01 Dec 2044 16:00:00 GMT".to_owned()),
    }
}

/// Put, head, get, copy (kept or replaced) and multipart all carry the object's headers.
pub async fn headers_are_kept(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "site").await;
    let put = h
        .storage
        .put_object(
            &a,
            "site",
            "report.txt",
            text("payload"),
            PutOptions {
                headers: download_headers(),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(put.headers, download_headers());
    let head = h
        .storage
        .head_object(&a, "site", "report.txt", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(head.headers, download_headers());
    let got = h
        .storage
        .get_object(&a, "site", "report.txt", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(got.info.headers, download_headers());

    // An object written without them has none.
    put_plain(&h, "plain.txt").await;
    let plain = h
        .storage
        .head_object(&a, "site", "plain.txt", &GetOptions::default())
        .await
        .unwrap();
    assert!(plain.headers.is_empty());

    let kept = h
        .storage
        .copy_object(
            &a,
            "site",
            "report.txt",
            &ReadConditions::default(),
            "site",
            "copy.txt",
            None,
            Causation::default(),
        )
        .await
        .unwrap();
    assert_eq!(kept.headers, download_headers());
    let replaced_headers = ObjectHeaders {
        cache_control: Some("no-store".to_owned()),
        ..ObjectHeaders::default()
    };
    let replaced = h
        .storage
        .copy_object(
            &a,
            "site",
            "report.txt",
            &ReadConditions::default(),
            "site",
            "replaced.txt",
            Some(PutOptions {
                headers: replaced_headers.clone(),
                ..PutOptions::default()
            }),
            Causation::default(),
        )
        .await
        .unwrap();
    assert_eq!(replaced.headers, replaced_headers);
    let read_back = h
        .storage
        .head_object(&a, "site", "replaced.txt", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(read_back.headers, replaced_headers);

    let upload_id = h
        .storage
        .create_multipart(
            &a,
            "site",
            "big.bin",
            PutOptions {
                headers: download_headers(),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    let part = h
        .storage
        .upload_part(
            &a,
            "site",
            "big.bin",
            &upload_id,
            1,
            text("only part"),
            BodyChecks::default(),
        )
        .await
        .unwrap();
    let completed = h
        .storage
        .complete_multipart(
            &a,
            "site",
            "big.bin",
            &upload_id,
            &[CompletedPart {
                part_number: 1,
                etag: part.etag,
                checksum: None,
            }],
            &WriteConditions::default(),
            Causation::default(),
        )
        .await
        .unwrap();
    assert_eq!(completed.headers, download_headers());
    let head = h
        .storage
        .head_object(&a, "site", "big.bin", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(head.headers, download_headers());
}

async fn put_plain(h: &Harness, key: &str) {
    h.storage
        .put_object(&ns("a"), "site", key, text("plain"), PutOptions::default())
        .await
        .unwrap();
}
