//! Bucket CORS checks: rules are kept, replaced, removed, validated, and leave with their
//! bucket.

use super::*;
use crate::{CorsRule, matching_rule};

fn upload_rule() -> CorsRule {
    CorsRule {
        id: Some("uploads".to_owned()),
        allowed_origins: vec!["https://*.example.com".to_owned()],
        allowed_methods: vec!["PUT".to_owned(), "GET".to_owned()],
        allowed_headers: vec!["content-type".to_owned(), "x-amz-meta-*".to_owned()],
        expose_headers: vec!["ETag".to_owned()],
        max_age_seconds: Some(600),
    }
}

/// A bucket's CORS rules round-trip, match as S3 matches them, and go with the bucket.
pub async fn bucket_cors(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "web").await;
    assert_eq!(h.storage.bucket_cors(&a, "web").await.unwrap(), None);
    h.storage
        .put_bucket_cors(&a, "web", Some(vec![upload_rule()]))
        .await
        .unwrap();
    let rules = h.storage.bucket_cors(&a, "web").await.unwrap().unwrap();
    assert_eq!(rules, vec![upload_rule()]);
    assert!(
        matching_rule(
            &rules,
            "https://app.example.com",
            "PUT",
            &["Content-Type", "x-amz-meta-owner"]
        )
        .is_some()
    );
    assert!(matching_rule(&rules, "https://evil.test", "PUT", &[]).is_none());
    assert!(matching_rule(&rules, "https://app.example.com", "DELETE", &[]).is_none());
    assert!(matching_rule(&rules, "https://app.example.com", "PUT", &["authorization"]).is_none());
    // Objects still go in while the bucket has rules.
    put(&h, "a", "web", "k", "v").await;

    for invalid in [
        vec![],
        vec![CorsRule {
            allowed_methods: vec!["PATCH".to_owned()],
            ..upload_rule()
        }],
        vec![CorsRule {
            allowed_origins: vec![],
            ..upload_rule()
        }],
    ] {
        assert!(matches!(
            h.storage.put_bucket_cors(&a, "web", Some(invalid)).await,
            Err(StorageError::InvalidArgument(_))
        ));
    }
    h.storage.put_bucket_cors(&a, "web", None).await.unwrap();
    assert_eq!(h.storage.bucket_cors(&a, "web").await.unwrap(), None);

    h.storage
        .put_bucket_cors(&a, "web", Some(vec![upload_rule()]))
        .await
        .unwrap();
    h.storage
        .delete_object(&a, "web", "k", Causation::default())
        .await
        .unwrap();
    h.storage.delete_bucket(&a, "web").await.unwrap();
    assert!(matches!(
        h.storage.bucket_cors(&a, "web").await,
        Err(StorageError::NoSuchBucket(_))
    ));
    bucket(&h, "a", "web").await;
    assert_eq!(h.storage.bucket_cors(&a, "web").await.unwrap(), None);
}
