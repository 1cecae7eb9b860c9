//! A minimal Server-Sent Events reader for the change-log stream: it splits the byte stream
//! into events at blank lines and decodes each `data:` payload as a change event.

use bytes::Bytes;
use ferrobase_core::Event;
use futures::{Stream, StreamExt};

use crate::Error;

pub(crate) fn events(
    bytes: impl Stream<Item = Result<Bytes, reqwest::Error>> + Unpin,
) -> impl Stream<Item = Result<Event, Error>> {
    futures::stream::unfold(
        (bytes, String::new()),
        |(mut bytes, mut buffer)| async move {
            loop {
                if let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let data: Vec<&str> = block
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .collect();
                    if data.is_empty() {
                        continue; // a keep-alive comment or an id-only block
                    }
                    let payload = data
                        .iter()
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                        .collect::<Vec<_>>()
                        .join("\n");
                    let event = serde_json::from_str::<Event>(&payload)
                        .map_err(|error| Error::Decode(format!("bad event in stream: {error}")));
                    return Some((event, (bytes, buffer)));
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => {
                        buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"))
                    }
                    Some(Err(error)) => {
                        return Some((Err(Error::Transport(error)), (bytes, buffer)));
                    }
                    None => return None,
                }
            }
        },
    )
}
