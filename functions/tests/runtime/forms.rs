//! Form bodies and streamed text the way functions meet them: FormData built and read back,
//! multipart/form-data and urlencoded bodies through `formData()`, a FormData `fetch` body as
//! the host receives it, and `TextDecoder` with `{stream: true}` (expected values are what
//! Node prints for the same calls).

use base64::Engine as _;

use crate::harness::*;

async fn run(f: &Fixture, name: &str, code: &str) -> Value {
    f.deploy(name, spec(code)).await;
    result(&f.invoke(name, json!({})).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_data_keeps_entries_in_order_and_round_trips_as_multipart() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "form",
        "export default async () => {\n\
           const fd = new FormData();\n\
           fd.append('a', '1'); fd.append('a', '2'); fd.append('f', new Blob(['x'], { type: 'text/plain' })); fd.append('b', 'keep');\n\
           fd.set('a', '3');\n\
           const order = [...fd].map(([k, v]) => [k, typeof v === 'string' ? v : `${v.name}:${v.type}`]);\n\
           const api = { get: fd.get('a'), missing: fd.get('zz'), has: fd.has('b'), all: fd.getAll('a'), keys: [...fd.keys()] };\n\
           fd.delete('b');\n\
           api.deleted = fd.has('b');\n\
           fd.append('upload', new File([new Uint8Array([0, 255, 10, 13])], 'orig.bin', { type: 'application/octet-stream' }), 'report \"q\".bin');\n\
           fd.append('text', 'line one\\nline two ✓');\n\
           const response = new Response(fd);\n\
           const type = response.headers.get('content-type');\n\
           const copy = await response.clone().formData();\n\
           const raw = await response.text();\n\
           const upload = copy.get('upload');\n\
           return { order, api, type, raw,\n\
             back: [...copy.keys()], text: copy.get('text'), fileName: upload.name, fileType: upload.type,\n\
             fileBytes: [...new Uint8Array(await upload.arrayBuffer())], isFile: upload instanceof File, blobName: copy.get('f').name };\n\
         };",
    )
    .await;
    assert_eq!(
        value["order"],
        json!([["a", "3"], ["f", "blob:text/plain"], ["b", "keep"]])
    );
    assert_eq!(
        value["api"],
        json!({"get": "3", "missing": null, "has": true, "all": ["3"], "keys": ["a", "f", "b"], "deleted": false})
    );
    let content_type = value["type"].as_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("a multipart content type with its boundary");
    let raw = value["raw"].as_str().unwrap();
    assert!(
        raw.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n3\r\n"
        )),
        "{raw}"
    );
    assert!(raw.contains("name=\"upload\"; filename=\"report %22q%22.bin\"\r\nContent-Type: application/octet-stream\r\n"), "{raw}");
    // Line breaks in text fields are normalised to CRLF, as browsers send them.
    assert!(raw.contains("line one\r\nline two ✓"), "{raw}");
    assert!(raw.ends_with(&format!("--{boundary}--\r\n")));
    assert_eq!(value["back"], json!(["a", "f", "upload", "text"]));
    assert_eq!(value["text"], "line one\r\nline two ✓");
    assert_eq!(value["fileName"], "report %22q%22.bin");
    assert_eq!(value["fileType"], "application/octet-stream");
    assert_eq!(value["fileBytes"], json!([0, 255, 10, 13]));
    assert_eq!(value["isFile"], true);
    assert_eq!(value["blobName"], "blob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_bodies_parse_from_curl_style_multipart_and_urlencoded_and_others_are_type_errors() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "parse",
        "const failure = async (p) => { try { await p; return 'resolved'; } catch (e) { return e.name; } };\n\
         export default async () => {\n\
           const body = '--XyZ\\r\\nContent-Disposition: form-data; name=\"name\"\\r\\n\\r\\nAda\\r\\n' +\n\
             '--XyZ\\r\\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\\r\\nContent-Type: image/png\\r\\n\\r\\n\\x89PNG\\r\\n--XyZ--\\r\\n';\n\
           const bytes = Uint8Array.from(body, (c) => c.charCodeAt(0));\n\
           const multi = await new Response(bytes, { headers: { 'content-type': 'multipart/form-data; boundary=XyZ' } }).formData();\n\
           const photo = multi.get('photo');\n\
           const form = await new Request('https://api.example.com/', { method: 'POST', body: new URLSearchParams('a=1&b=x+y&a=%E2%9C%93') }).formData();\n\
           return { name: multi.get('name'), photo: [photo.name, photo.type, [...new Uint8Array(await photo.arrayBuffer())]],\n\
             a: form.getAll('a'), b: form.get('b'),\n\
             plain: await failure(new Response('a=1').formData()),\n\
             broken: await failure(new Response('--XyZ\\r\\nnonsense', { headers: { 'content-type': 'multipart/form-data; boundary=XyZ' } }).formData()),\n\
             noBoundary: await failure(new Response('', { headers: { 'content-type': 'multipart/form-data' } }).formData()),\n\
             appendArgs: await failure((async () => new FormData().append('x'))()) };\n\
         };",
    )
    .await;
    assert_eq!(value["name"], "Ada");
    assert_eq!(
        value["photo"],
        json!(["a.png", "image/png", [0x89, 0x50, 0x4E, 0x47]])
    );
    assert_eq!(value["a"], json!(["1", "✓"]));
    assert_eq!(value["b"], "x y");
    for case in ["plain", "broken", "noBoundary", "appendArgs"] {
        assert_eq!(value[case], "TypeError", "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_data_fetch_body_reaches_the_host_as_multipart() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "post",
        "export default async () => {\n\
           const fd = new FormData();\n\
           fd.append('user', 'ada');\n\
           fd.append('avatar', new Blob([new Uint8Array([1, 2, 3])], { type: 'image/png' }), 'a.png');\n\
           const answer = await fetch(new Request('https://api.example.com/upload', { method: 'POST', body: fd }));\n\
           return answer.status;\n\
         };",
    )
    .await;
    assert_eq!(value, 200);
    let calls = f.host.calls.lock().unwrap();
    let (headers, body) = calls
        .iter()
        .find_map(|(_, op)| match op {
            HostOp::Fetch { headers, body, .. } => Some((headers.clone(), body.clone())),
            _ => None,
        })
        .expect("the fetch reached the host");
    let content_type = &headers["content-type"];
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap();
    let body = base64::engine::general_purpose::STANDARD
        .decode(body.expect("a body"))
        .unwrap();
    let mut expected = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nada\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    expected.extend([1, 2, 3]);
    expected.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    assert_eq!(body, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_decoders_stream_across_split_characters_like_node() {
    let f = fixture_with(config());
    let value = run(
        &f,
        "stream",
        "const u = (a) => new Uint8Array(a);\n\
         export default () => {\n\
           const d = new TextDecoder();\n\
           const split = [[0xEF], [0xBB, 0xBF, 0x41, 0xE2], [0x82], [0xAC, 0xF0, 0x9F], [0x98, 0x80]].map((p) => d.decode(u(p), { stream: true }));\n\
           split.push(d.decode());\n\
           const k = new TextDecoder('utf-8', { ignoreBOM: true });\n\
           const kept = [k.decode(u([0xEF, 0xBB]), { stream: true }), k.decode(u([0xBF, 0x42]))];\n\
           const t = new TextDecoder();\n\
           const truncated = [t.decode(u([0x41, 0xE2, 0x82]), { stream: true }), t.decode()];\n\
           const fatal = new TextDecoder('utf-8', { fatal: true });\n\
           fatal.decode(u([0x41, 0xE2]), { stream: true });\n\
           let error; try { fatal.decode(); } catch (e) { error = e.name; }\n\
           const after = fatal.decode(u([0x43]));\n\
           const m = new TextDecoder();\n\
           const bom = [m.decode(u([0xEF, 0xBB, 0xBF, 0x41]), { stream: true }), m.decode(u([0xEF, 0xBB, 0xBF, 0x42]), { stream: true }), m.decode()];\n\
           const invalid = [m.decode(u([0xE0, 0x80]), { stream: true }), m.decode(u([0xFF, 0x41]))];\n\
           return { split, kept, truncated, error, after, bom, invalid };\n\
         };",
    )
    .await;
    // Node v20 prints exactly these for the same calls.
    assert_eq!(value["split"], json!(["", "A", "", "€", "😀", ""]));
    assert_eq!(value["kept"], json!(["", "\u{FEFF}B"]));
    assert_eq!(value["truncated"], json!(["A", "\u{FFFD}"]));
    assert_eq!(value["error"], "TypeError");
    assert_eq!(value["after"], "C");
    assert_eq!(value["bom"], json!(["A", "\u{FEFF}B", ""]));
    assert_eq!(value["invalid"], json!(["\u{FFFD}\u{FFFD}", "\u{FFFD}A"]));
}
