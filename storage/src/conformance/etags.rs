//! ETag checks: which bodies get their MD5 as ETag and which a BLAKE3-based one
//! (see [`crate::digest`]), and that either kind works wherever an ETag is used.

use super::*;
use crate::EtagPolicy;

/// Small enough that the check stays quick on a remote backend, large enough that bodies
/// over it take the local backend's pipelined path (over 1 MiB).
const LIMIT: u64 = 1536 * 1024;

fn chunked(data: &Bytes, chunk: usize) -> ByteStream {
    body(data.chunks(chunk).map(Bytes::copy_from_slice).collect())
}

/// Bodies up to the policy's limit, and bodies sent with Content-MD5, get their MD5 as ETag;
/// larger ones get `{blake3}-1`, the same however the body is chunked, and usable in
/// conditions and multipart completions like any ETag. Events carry the same ETag.
pub async fn etags_follow_the_policy(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "tags").await;
    let storage = h.storage.clone().with_etag_policy(EtagPolicy {
        md5_max_bytes: LIMIT,
    });
    let put = |key: &'static str, data: ByteStream, options: PutOptions| {
        let storage = storage.clone();
        let a = a.clone();
        async move { storage.put_object(&a, "tags", key, data, options).await }
    };

    let at_limit = pattern(LIMIT as usize, 1);
    let info = put(
        "at-limit",
        chunked(&at_limit, 64 * 1024),
        PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(info.etag, md5_hex(&at_limit));

    let over = pattern(LIMIT as usize * 2 + 1, 2);
    let fast = put("over", chunked(&over, 256 * 1024), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(fast.etag, blake3_etag(&over));
    let again = put(
        "over-again",
        chunked(&over, 1000 * 1000),
        PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.etag, fast.etag, "the ETag depends on the body only");
    let declared = |length: u64| PutOptions {
        checks: BodyChecks {
            content_length: Some(length),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    };
    let skipped_md5 = put(
        "declared",
        chunked(&over, 256 * 1024),
        declared(over.len() as u64),
    )
    .await
    .unwrap();
    assert_eq!(skipped_md5.etag, fast.etag);
    // A body of another length than declared is incomplete, whichever way it differs, and
    // leaves nothing.
    for length in [over.len() as u64 + 1, over.len() as u64 - 1, LIMIT] {
        assert!(matches!(
            put("short", chunked(&over, 256 * 1024), declared(length)).await,
            Err(StorageError::IncompleteBody(_))
        ));
    }
    let at_limit_declared = put(
        "at-limit-declared",
        chunked(&at_limit, 64 * 1024),
        declared(LIMIT),
    )
    .await
    .unwrap();
    assert_eq!(at_limit_declared.etag, md5_hex(&at_limit));
    let log = events(&h, "a").await;
    assert_eq!(log[1].data["etag"], fast.etag.as_str());

    // The BLAKE3 ETag is an ETag like any other in conditions.
    let quoted = format!("\"{}\"", fast.etag);
    let read = GetOptions {
        range: None,
        conditions: ReadConditions {
            if_match: Some(quoted.clone()),
            ..Default::default()
        },
    };
    assert_eq!(get(&h, "a", "tags", "over", read).await, over.to_vec());
    let replace_if_match = PutOptions {
        conditions: WriteConditions {
            if_match: Some(quoted.clone()),
            if_none_match: None,
        },
        ..PutOptions::default()
    };
    put("over", text("replaced"), replace_if_match.clone())
        .await
        .unwrap();
    assert!(matches!(
        put("over", text("again"), replace_if_match).await,
        Err(StorageError::PreconditionFailed(_))
    ));

    // With Content-MD5 every byte is hashed with MD5, checked, and the ETag is the MD5.
    let md5: [u8; 16] = Md5::digest(&over).into();
    let checked = PutOptions {
        checks: BodyChecks {
            content_md5: Some(md5),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    };
    let info = put("checked", chunked(&over, 256 * 1024), checked)
        .await
        .unwrap();
    assert_eq!(info.etag, md5_hex(&over));
    let wrong = PutOptions {
        checks: BodyChecks {
            content_md5: Some(Md5::digest(b"something else").into()),
            ..BodyChecks::default()
        },
        ..PutOptions::default()
    };
    assert!(matches!(
        put("wrong", chunked(&over, 256 * 1024), wrong).await,
        Err(StorageError::BadDigest)
    ));

    // The policy that gives every body an MD5 ETag.
    let always = h.storage.clone().with_etag_policy(EtagPolicy::always_md5());
    let info = always
        .put_object(
            &a,
            "tags",
            "md5",
            chunked(&over, 256 * 1024),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(info.etag, md5_hex(&over));

    // A part over the limit gets a BLAKE3 ETag too; the object's ETag hashes the parts'
    // digests as S3 does.
    let upload = storage
        .create_multipart(&a, "tags", "multi", PutOptions::default())
        .await
        .unwrap();
    let part1 = pattern(MIN_PART_BYTES as usize, 3);
    let part2 = pattern(1000, 4);
    let mut etags = Vec::new();
    for (number, data) in [(1, &part1), (2, &part2)] {
        let part = storage
            .upload_part(
                &a,
                "tags",
                "multi",
                &upload,
                number,
                chunked(data, 512 * 1024),
                // Declared, so that part 1 is never hashed with MD5: same ETag.
                BodyChecks {
                    content_length: Some(data.len() as u64),
                    ..BodyChecks::default()
                },
            )
            .await
            .unwrap();
        etags.push(part.etag);
    }
    assert_eq!(etags, [blake3_etag(&part1), md5_hex(&part2)]);
    let completed: Vec<CompletedPart> = etags
        .iter()
        .enumerate()
        .map(|(index, etag)| CompletedPart {
            part_number: index as u32 + 1,
            etag: format!("\"{etag}\""),
            ..CompletedPart::default()
        })
        .collect();
    let info = complete(&storage, "tags", "multi", &upload, &completed)
        .await
        .unwrap();
    let mut digests = Md5::new();
    digests.update(&blake3::hash(&part1).as_bytes()[..16]);
    digests.update(Md5::digest(&part2));
    assert_eq!(info.etag, format!("{}-2", hex::encode(digests.finalize())));

    for key in ["wrong", "short"] {
        assert!(matches!(
            h.storage
                .head_object(&a, "tags", key, &GetOptions::default())
                .await,
            Err(StorageError::NoSuchKey { .. })
        ));
    }
    assert_no_orphans(&h).await;
}
