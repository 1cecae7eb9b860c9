//! `Intl` and the locale methods of Date, Number, BigInt and String print what Node v20 prints
//! for en-US: `fixtures/intl_cases.js` runs in an isolate and its answers are compared with
//! `fixtures/intl_node.json`, made once by running the same file in Node (the command is in
//! the file).

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intl_formats_dates_numbers_plurals_and_collation_as_node_does() {
    let f = fixture_with(config());
    f.deploy("intl", spec(include_str!("fixtures/intl_cases.js")))
        .await;
    let got = result(&f.invoke("intl", json!({})).await);
    let expected: Value =
        serde_json::from_str(include_str!("fixtures/intl_node.json")).expect("the fixture");
    let (got, expected) = (got.as_array().unwrap(), expected.as_array().unwrap());
    // Node's formatToParts keeps ICU's narrow no-break space before AM/PM, which its own
    // format() (and this one, in both) prints as a plain space.
    let plain = |value: &Value| value.to_string().replace('\u{202F}', " ");
    let differences: Vec<String> = expected
        .iter()
        .zip(got)
        .filter(|(want, have)| plain(want) != plain(have))
        .map(|(want, have)| format!("{}: node {} here {}", want[0], want[1], have[1]))
        .collect();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(got.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locale_methods_never_throw_on_ordinary_calls_and_intl_is_per_isolate() {
    let f = fixture_with(config());
    f.deploy(
        "locale",
        spec(
            "export default () => {\n\
               const d = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));\n\
               return {\n\
                 typeofIntl: typeof Intl, tag: Object.prototype.toString.call(Intl),\n\
                 plain: [d.toLocaleString(), d.toLocaleDateString(), d.toLocaleTimeString(), (1234.5).toLocaleString(), 'a'.localeCompare('b')],\n\
                 otherLocale: d.toLocaleDateString('de-DE', { dateStyle: 'long', timeZone: 'Europe/Berlin' }),\n\
                 resolved: new Intl.NumberFormat('fr').resolvedOptions().locale,\n\
                 arrays: [1234, 5678].toLocaleString(),\n\
                 zone: new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York' }).resolvedOptions().timeZone,\n\
               };\n\
             };",
        ),
    )
    .await;
    let value = result(&f.invoke("locale", json!({})).await);
    assert_eq!(value["typeofIntl"], "object");
    assert_eq!(value["tag"], "[object Intl]");
    // The default time zone is UTC, where functions run.
    assert_eq!(
        value["plain"],
        json!([
            "1/2/2026, 3:04:05 AM",
            "1/2/2026",
            "3:04:05 AM",
            "1,234.5",
            -1
        ])
    );
    // Every locale formats as en-US, and says so.
    assert_eq!(value["otherLocale"], "January 2, 2026");
    assert_eq!(value["resolved"], "en-US");
    assert_eq!(value["arrays"], "1,234,5,678");
    assert_eq!(value["zone"], "America/New_York");
}
