//! The real binary: event stream resume over a socket, graceful shutdown, configuration
//! precedence and the token command.

use std::time::Duration;

use ferrobase_sdk::{Error, PutOptions};
use ferrobase_tests::{Server, ServerOptions};
use futures::StreamExt;

async fn put(client: &ferrobase_sdk::Client, ns: &str, key: &str, value: &str) -> u64 {
    client
        .kv_put(ns, key, value.to_owned(), &PutOptions::default())
        .await
        .unwrap()
        .version
}

async fn next_seq(
    stream: &mut (impl futures::Stream<Item = Result<ferrobase_core::Event, Error>> + Unpin),
) -> u64 {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("stream still open")
        .expect("a well-formed event")
        .ferrobaseseq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_resumes_without_gaps_or_duplicates() {
    let server = Server::start().unwrap();
    let client = server.client("live").unwrap();
    for i in 0..5 {
        put(&client, "live", &format!("k{i}"), "v").await;
    }

    let mut stream = Box::pin(client.event_stream("live", 0).await.unwrap());
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_seq(&mut stream).await);
    }
    drop(stream); // the client goes away after event 3

    // Writes continue while nobody listens, and again while the new stream is open.
    for i in 5..8 {
        put(&client, "live", &format!("k{i}"), "v").await;
    }
    let mut stream = Box::pin(
        client
            .event_stream("live", *seen.last().unwrap())
            .await
            .unwrap(),
    );
    for _ in 0..5 {
        seen.push(next_seq(&mut stream).await);
    }
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 8..12 {
                put(&client, "live", &format!("k{i}"), "v").await;
            }
        })
    };
    for _ in 0..4 {
        seen.push(next_seq(&mut stream).await);
    }
    writer.await.unwrap();
    assert_eq!(seen, (1..=12).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_resume_with_last_event_id_and_a_query_token() {
    let server = Server::start().unwrap();
    let client = server.client("web").unwrap();
    for i in 0..4 {
        put(&client, "web", &format!("k{i}"), "v").await;
    }
    let token = server.token("admin", Some("web"), "browser").unwrap();
    // EventSource cannot set headers: the token rides in the query, the resume point in
    // Last-Event-ID (which wins over `after`).
    let response = reqwest::Client::new()
        .get(format!(
            "{}/v1/events/web/stream?after=0&access_token={token}",
            server.url
        ))
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("id: 4") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("data within 10 s")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !text.contains("id: 1\n") && !text.contains("id: 2\n"),
        "{text}"
    );
    assert!(text.contains("id: 3\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_ends_streams_and_exits_cleanly() {
    let mut server = Server::start().unwrap();
    let client = server.client("down").unwrap();
    let version = put(&client, "down", "before", "kept").await;
    // A live event stream must not hold shutdown open.
    let mut stream = Box::pin(client.event_stream("down", 0).await.unwrap());
    assert_eq!(next_seq(&mut stream).await, version);

    let status = server
        .terminate(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(
        matches!(end, Ok(None) | Ok(Some(Err(_)))),
        "the stream ended: {end:?}"
    );

    server.restart().unwrap();
    let client = server.client("down").unwrap();
    let value = client
        .kv_get("down", "before")
        .await
        .unwrap()
        .expect("write survives restart");
    assert_eq!(value.bytes, "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_beat_environment_beats_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferrobase.toml");
    std::fs::write(&file, "[kv]\nmax_value_bytes = 10\n").unwrap();
    let config = file.to_str().unwrap().to_owned();

    let accepts = |server: &Server, size: usize| {
        let client = server.client("cfg").unwrap();
        async move {
            match client
                .kv_put("cfg", "k", vec![b'x'; size], &PutOptions::default())
                .await
            {
                Ok(_) => true,
                Err(Error::Api { code, .. }) if code == "too_large" => false,
                Err(other) => panic!("unexpected error {other}"),
            }
        }
    };

    let file_only = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.clone()],
        ..Default::default()
    })
    .unwrap();
    assert!(accepts(&file_only, 10).await);
    assert!(!accepts(&file_only, 11).await, "the file's limit applies");

    let env = vec![("FERROBASE_KV_MAX_VALUE_BYTES".to_owned(), "20".to_owned())];
    let with_env = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.clone()],
        envs: env.clone(),
    })
    .unwrap();
    assert!(
        accepts(&with_env, 20).await,
        "the environment beats the file"
    );
    assert!(!accepts(&with_env, 21).await);

    let with_flag = Server::start_with(ServerOptions {
        args: vec![
            "--config".into(),
            config,
            "--kv-max-value-bytes".into(),
            "30".into(),
        ],
        envs: env,
    })
    .unwrap();
    assert!(
        accepts(&with_flag, 30).await,
        "the flag beats the environment"
    );
    assert!(!accepts(&with_flag, 31).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_mints_what_the_server_accepts_and_scopes_namespaces() {
    let server = Server::start().unwrap();
    // The secret was generated on first start; the CLI reads it from the same data directory.
    assert!(server.data_dir().join("auth/hs256.secret").exists());
    let shop = ferrobase_sdk::Client::new(
        &server.url,
        server.token("service", Some("shop"), "svc").unwrap(),
    );
    put(&shop, "shop", "k", "v").await;
    match shop.kv_get("other", "k").await {
        Err(Error::Api { code, .. }) => assert_eq!(code, "permission_denied"),
        other => panic!("a shop token must not reach another namespace: {other:?}"),
    }
    let anywhere =
        ferrobase_sdk::Client::new(&server.url, server.token("admin", None, "root").unwrap());
    assert!(anywhere.kv_get("shop", "k").await.unwrap().is_some());
    assert!(
        server.token("user", None, "alice").is_err(),
        "user tokens need a namespace"
    );

    let forged = ferrobase_sdk::Client::new(&server.url, "not-a-token");
    match forged.kv_get("shop", "k").await {
        Err(Error::Api { code, status, .. }) => {
            assert_eq!(code, "unauthenticated");
            assert_eq!(status, 401);
        }
        other => panic!("forged token accepted: {other:?}"),
    }
}
