//! ReadableStream the way functions meet it: reading a Response's `body` chunk by chunk,
//! building a Response from a stream (and sending one with `fetch`), async iteration, tee,
//! `Blob.stream()`, and the errors of a locked or already read body.

use base64::Engine as _;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_readable_streams_both_ways() {
    let f = fixture_with(config());
    f.deploy(
        "streams",
        spec(
            "const failure = async (p) => { try { await p; return 'resolved'; } catch (e) { return e.name + ': ' + e.message; } };\n\
             export default async () => {\n\
               const enc = new TextEncoder();\n\
               const response = new Response('hello stream');\n\
               const reader = response.body.getReader();\n\
               const first = await reader.read();\n\
               const end = await reader.read();\n\
               const used = response.bodyUsed;\n\
               const again = await failure(response.text());\n\
               let pulls = 0;\n\
               const source = new ReadableStream({ pull(c) { pulls++; if (pulls <= 3) c.enqueue(enc.encode(`part${pulls};`)); else c.close(); } });\n\
               const built = await new Response(source, { headers: { 'content-type': 'text/plain' } }).text();\n\
               const chunks = [];\n\
               for await (const chunk of ReadableStream.from(['a', 'b', 'c'])) chunks.push(chunk);\n\
               const [left, right] = ReadableStream.from([enc.encode('x'), enc.encode('y')]).tee();\n\
               const tee = [await new Response(left).text(), await new Response(right).text()];\n\
               const blob = await new Response(new Blob(['blob bytes']).stream()).text();\n\
               const locked = ReadableStream.from([1]); locked.getReader();\n\
               const clone = new Response(ReadableStream.from([enc.encode('cloned')]));\n\
               const copy = clone.clone();\n\
               const erroring = new ReadableStream({ start(c) { c.error(new RangeError('broken source')); } });\n\
               const sent = await fetch('https://api.example.com/up', { method: 'POST', body: ReadableStream.from([enc.encode('streamed '), enc.encode('upload')]) });\n\
               return { first: new TextDecoder().decode(first.value), firstDone: first.done, endDone: end.done, used, again, built, pulls, chunks, tee, blob,\n\
                 locked: [locked.locked, await failure(locked.cancel()), (() => { try { locked.getReader(); return 'no'; } catch (e) { return e.name; } })()],\n\
                 clone: [await clone.text(), await copy.text()],\n\
                 erroring: await failure(new Response(erroring).text()),\n\
                 empty: new Response(null).body, sent: sent.status };\n\
             };",
        ),
    )
    .await;
    let value = result(&f.invoke("streams", json!({})).await);
    assert_eq!(value["first"], "hello stream");
    assert_eq!(value["firstDone"], false);
    assert_eq!(value["endDone"], true);
    assert_eq!(value["used"], true);
    assert_eq!(value["again"], "TypeError: the body has already been read");
    assert_eq!(value["built"], "part1;part2;part3;");
    assert_eq!(value["chunks"], json!(["a", "b", "c"]));
    assert_eq!(value["tee"], json!(["xy", "xy"]));
    assert_eq!(value["blob"], "blob bytes");
    assert_eq!(
        value["locked"],
        json!([
            true,
            "TypeError: ReadableStream: a locked stream cannot be cancelled",
            "TypeError"
        ])
    );
    assert_eq!(value["clone"], json!(["cloned", "cloned"]));
    assert_eq!(value["erroring"], "RangeError: broken source");
    assert_eq!(value["empty"], Value::Null);
    assert_eq!(value["sent"], 200);
    let calls = f.host.calls.lock().unwrap();
    let body = calls
        .iter()
        .find_map(|(_, op)| match op {
            HostOp::Fetch { body, .. } => body.clone(),
            _ => None,
        })
        .expect("the upload reached the host");
    let body = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    assert_eq!(body, b"streamed upload");
}
