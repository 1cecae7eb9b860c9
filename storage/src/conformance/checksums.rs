//! Additional checksum checks (`x-amz-checksum-*`): computed as bodies stream, checked
//! against what the client sent, and kept with objects and parts.

use std::sync::Arc;

use super::*;
use crate::{Checksum, ChecksumAlgorithm, ChecksumCheck, ExpectedChecksum};

fn with_checksum(algorithm: ChecksumAlgorithm, expected: ExpectedChecksum) -> PutOptions {
    PutOptions {
        checks: BodyChecks {
            checksum: Some(ChecksumCheck {
                algorithm,
                expected,
            }),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    }
}

fn crc32(value: &str) -> Checksum {
    Checksum {
        algorithm: ChecksumAlgorithm::Crc32,
        value: value.to_owned(),
    }
}

/// A body sent with a checksum is stored only if it matches, whether the value came before
/// the body or after it; the checksum is kept with the object, its copies and its parts.
pub async fn checksums_are_checked_and_kept(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "sums").await;
    let put = |key: &'static str, data: ByteStream, options: PutOptions| {
        let h = &h;
        let a = a.clone();
        async move { h.storage.put_object(&a, "sums", key, data, options).await }
    };
    // CRC32 of "hello world" is 0x0d4a1185.
    let right = || ExpectedChecksum::Value("DUoRhQ==".to_owned());
    let info = put(
        "checked",
        text("hello world"),
        with_checksum(ChecksumAlgorithm::Crc32, right()),
    )
    .await
    .unwrap();
    assert_eq!(info.checksum, Some(crc32("DUoRhQ==")));
    let head = h
        .storage
        .head_object(&a, "sums", "checked", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(head.checksum, info.checksum);

    // Only asked for: computed and kept. Not asked for: none.
    let sha256 = put(
        "computed",
        text("hello world"),
        with_checksum(ChecksumAlgorithm::Sha256, ExpectedChecksum::Unknown),
    )
    .await
    .unwrap();
    assert_eq!(
        sha256.checksum.map(|checksum| checksum.value),
        Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=".to_owned())
    );
    let plain = put("plain", text("hello world"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(plain.checksum, None);

    // A value sent after the body (a trailer) is read once the body has ended.
    let trailer =
        |value: &'static str| ExpectedChecksum::AfterBody(Arc::new(move || Some(value.to_owned())));
    let large = pattern(3 * 1024 * 1024 + 1, 5);
    let chunks = || {
        body(
            large
                .chunks(256 * 1024)
                .map(Bytes::copy_from_slice)
                .collect(),
        )
    };
    let computed = put(
        "large",
        chunks(),
        with_checksum(ChecksumAlgorithm::Crc64Nvme, ExpectedChecksum::Unknown),
    )
    .await
    .unwrap()
    .checksum
    .unwrap();
    let value: &'static str = computed.value.clone().leak();
    let info = put(
        "large-trailer",
        chunks(),
        with_checksum(ChecksumAlgorithm::Crc64Nvme, trailer(value)),
    )
    .await
    .unwrap();
    assert_eq!(info.checksum, Some(computed));

    // Mismatches, small and large, before and after the body, leave nothing behind.
    let wrong = [
        (
            "wrong",
            text("hello world"),
            with_checksum(
                ChecksumAlgorithm::Crc32,
                ExpectedChecksum::Value("AAAAAA==".to_owned()),
            ),
        ),
        (
            "wrong",
            text("hello world!"),
            with_checksum(ChecksumAlgorithm::Crc32, right()),
        ),
        (
            "wrong",
            chunks(),
            with_checksum(
                ChecksumAlgorithm::Sha1,
                trailer("AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ),
        ),
    ];
    for (key, data, options) in wrong {
        assert!(matches!(
            put(key, data, options).await,
            Err(StorageError::BadChecksum { .. })
        ));
    }
    assert!(matches!(
        h.storage
            .head_object(&a, "sums", "wrong", &GetOptions::default())
            .await,
        Err(StorageError::NoSuchKey { .. })
    ));

    // A copy holds the same bytes, so the same checksum.
    let copy = h
        .storage
        .copy_object(
            &a,
            "sums",
            "checked",
            &ReadConditions::default(),
            "sums",
            "copy",
            None,
            Causation::default(),
        )
        .await
        .unwrap();
    assert_eq!(copy.checksum, Some(crc32("DUoRhQ==")));

    // Parts are checked and keep their checksums; the object they make has none of its own.
    let upload = h
        .storage
        .create_multipart(&a, "sums", "multi", PutOptions::default())
        .await
        .unwrap();
    let part_checks = |expected| BodyChecks {
        checksum: Some(ChecksumCheck {
            algorithm: ChecksumAlgorithm::Crc32,
            expected,
        }),
        ..BodyChecks::default()
    };
    assert!(matches!(
        h.storage
            .upload_part(
                &a,
                "sums",
                "multi",
                &upload,
                1,
                text("hello world"),
                part_checks(ExpectedChecksum::Value("AAAAAA==".to_owned())),
            )
            .await,
        Err(StorageError::BadChecksum { .. })
    ));
    let part = h
        .storage
        .upload_part(
            &a,
            "sums",
            "multi",
            &upload,
            1,
            text("hello world"),
            part_checks(right()),
        )
        .await
        .unwrap();
    assert_eq!(part.checksum, Some(crc32("DUoRhQ==")));
    let (parts, _) = h
        .storage
        .list_parts(&a, "sums", "multi", &upload, None, 10)
        .await
        .unwrap();
    assert_eq!(parts[0].checksum, Some(crc32("DUoRhQ==")));
    let object = complete(
        &h.storage,
        "sums",
        "multi",
        &upload,
        &[CompletedPart {
            part_number: 1,
            etag: part.etag,
            ..CompletedPart::default()
        }],
    )
    .await
    .unwrap();
    assert_eq!(object.checksum, None);

    // An upload created with an algorithm: every part gets that checksum, a part with
    // another is refused, the completion's part checksums must be the stored ones, and the
    // object gets S3's composite checksum.
    let crc32_upload = PutOptions {
        checks: BodyChecks {
            checksum: Some(ChecksumCheck {
                algorithm: ChecksumAlgorithm::Crc32,
                expected: ExpectedChecksum::Unknown,
            }),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    };
    let upload = h
        .storage
        .create_multipart(&a, "sums", "composite", crc32_upload)
        .await
        .unwrap();
    let sha1_part = BodyChecks {
        checksum: Some(ChecksumCheck {
            algorithm: ChecksumAlgorithm::Sha1,
            expected: ExpectedChecksum::Unknown,
        }),
        ..BodyChecks::default()
    };
    assert!(matches!(
        h.storage
            .upload_part(&a, "sums", "composite", &upload, 1, text("x"), sha1_part)
            .await,
        Err(StorageError::InvalidArgument(_))
    ));
    let data = [pattern(MIN_PART_BYTES as usize, 1), pattern(1000, 2)];
    let mut completed = Vec::new();
    let mut raw = Vec::new();
    for (index, data) in data.iter().enumerate() {
        let part = h
            .storage
            .upload_part(
                &a,
                "sums",
                "composite",
                &upload,
                index as u32 + 1,
                body(
                    data.chunks(1024 * 1024)
                        .map(Bytes::copy_from_slice)
                        .collect(),
                ),
                BodyChecks::default(),
            )
            .await
            .unwrap();
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32;
        raw.extend_from_slice(&crc.to_be_bytes());
        let checksum = part.checksum.expect("the upload's algorithm applies");
        assert_eq!(checksum, crc32(&base64_of(&crc.to_be_bytes())));
        completed.push(CompletedPart {
            part_number: index as u32 + 1,
            etag: part.etag,
            checksum: Some(checksum),
        });
    }
    let mut wrong = completed.clone();
    wrong[1].checksum = Some(crc32("AAAAAA=="));
    assert!(matches!(
        complete(&h.storage, "sums", "composite", &upload, &wrong).await,
        Err(StorageError::InvalidPart(_))
    ));
    let object = complete(&h.storage, "sums", "composite", &upload, &completed)
        .await
        .unwrap();
    let composite = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &raw) as u32;
    assert_eq!(
        object.checksum,
        Some(crc32(&format!("{}-2", base64_of(&composite.to_be_bytes()))))
    );
    assert_no_orphans(&h).await;
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
