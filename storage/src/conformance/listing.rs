//! Listing checks: prefixes, delimiters, cursors, start-after and paging.

use super::*;

/// Listing: prefix, delimiter, pagination with a cursor, start-after.
pub async fn listing(h: Harness) {
    let a = ns("a");
    bucket(&h, "a", "lst").await;
    let keys = ["a/1", "a/2", "a/b/3", "b", "c/x/y", "d", "e/"];
    for key in keys {
        put(&h, "a", "lst", key, key).await;
    }
    let list = |query: ListQuery| {
        let h = &h;
        let a = a.clone();
        async move { h.storage.list_objects(&a, "lst", &query).await.unwrap() }
    };
    let names = |page: &crate::ListPage| -> Vec<String> {
        page.objects.iter().map(|o| o.key.clone()).collect()
    };
    let all = list(ListQuery::default()).await;
    assert_eq!(names(&all), keys);
    assert_eq!(all.next, None);
    assert_eq!(all.objects[0].size, 3);

    let slash = Some("/".to_owned());
    let top = list(ListQuery {
        delimiter: slash.clone(),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(names(&top), ["b", "d"]);
    assert_eq!(top.common_prefixes, ["a/", "c/", "e/"]);

    let under_a = list(ListQuery {
        prefix: "a/".to_owned(),
        delimiter: slash.clone(),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(names(&under_a), ["a/1", "a/2"]);
    assert_eq!(under_a.common_prefixes, ["a/b/"]);

    // Pages of two, keys and prefixes counted alike, resumed from the cursor.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(ListQuery {
            delimiter: slash.clone(),
            after: after.clone(),
            max_keys: 2,
            ..ListQuery::default()
        })
        .await;
        assert!(page.objects.len() + page.common_prefixes.len() <= 2);
        seen.extend(names(&page));
        seen.extend(page.common_prefixes.clone());
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["a/", "b", "c/", "d", "e/"]);

    let start_after = list(ListQuery {
        after: Some("b".to_owned()),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(names(&start_after), ["c/x/y", "d", "e/"]);

    // Any UTF-8 is a prefix or a start-after key, as in S3, though no key holds a control
    // character: such a prefix matches nothing, and such a bound sorts where it would.
    let control = |prefix: &str, after: Option<&str>| ListQuery {
        prefix: prefix.to_owned(),
        after: after.map(str::to_owned),
        ..ListQuery::default()
    };
    assert_eq!(list(control("a\n", None)).await, crate::ListPage::default());
    assert_eq!(
        names(&list(control("", Some("b\n"))).await),
        ["c/x/y", "d", "e/"]
    );
    assert_eq!(
        names(&list(control("", Some("a/\u{7f}"))).await),
        ["b", "c/x/y", "d", "e/"]
    );
    assert_eq!(
        names(&list(control("a/", Some("a/1\u{85}x"))).await),
        ["a/2", "a/b/3"]
    );

    // Many keys, paged without loss or repetition.
    for i in 0..250 {
        put(&h, "a", "lst", &format!("many/{i:04}"), "x").await;
    }
    let mut count = 0;
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = list(ListQuery {
            prefix: "many/".to_owned(),
            after: after.clone(),
            max_keys: 100,
            ..ListQuery::default()
        })
        .await;
        pages += 1;
        for (i, object) in page.objects.iter().enumerate() {
            assert_eq!(object.key, format!("many/{:04}", count + i));
        }
        count += page.objects.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!((count, pages), (250, 3));
    assert!(matches!(
        h.storage
            .list_objects(
                &a,
                "lst",
                &ListQuery {
                    max_keys: 0,
                    ..ListQuery::default()
                }
            )
            .await,
        Err(StorageError::InvalidArgument(_))
    ));
}
