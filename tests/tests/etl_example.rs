//! The ETL example of `examples/etl`, run the way its README says on the real binary: the
//! setup script deploys it, aws-cli uploads CSV files, and the test checks the final state
//! exactly — every order row in KV, the totals the queue-triggered aggregator computed, the
//! report the cron function wrote, the malformed file in the dead-letter list — once on a calm
//! run and once with a `kill -9` in the middle of processing (nothing lost, nothing applied
//! twice).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferrobase_tests::s3::{AccessKey, s3_options};
use ferrobase_tests::{Server, binary};
use serde_json::{Value, json};

const NS: &str = "etl";
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
/// Long enough for a summary leased when the server died to come back: the aggregator's
/// lease is its 5 s timeout plus 30 s.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(150);

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/etl")
}

/// One order as the ingest function stores it.
#[derive(Debug, Clone)]
struct Order {
    region: &'static str,
    amount_cents: u64,
    file: String,
}

/// CSV files written to disk, and what loading them must produce.
#[derive(Debug, Default)]
struct Dataset {
    orders: BTreeMap<String, Order>,
    files: usize,
}

impl Dataset {
    /// Writes `files` CSV files of `rows` orders each into `dir`, numbered from `first`.
    fn write_batch(&mut self, dir: &Path, first: usize, files: usize, rows: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for file_index in first..first + files {
            let name = format!("orders-{file_index:03}.csv");
            let mut csv = String::from("order_id,region,amount\n");
            for row in 0..rows {
                let id = format!("F{file_index:03}-{row:03}");
                let region = REGIONS[(file_index * 7 + row) % REGIONS.len()];
                let amount_cents = ((file_index * 131 + row * 17) % 9973 + 1) as u64;
                // Every spelling the parser accepts: "12", "12.5" and "12.50".
                let (whole, cents) = (amount_cents / 100, amount_cents % 100);
                let amount = if cents == 0 && row % 2 == 0 {
                    format!("{whole}")
                } else if cents % 10 == 0 && row % 2 == 1 {
                    format!("{whole}.{}", cents / 10)
                } else {
                    format!("{whole}.{cents:02}")
                };
                csv.push_str(&format!("{id},{region},{amount}\n"));
                self.orders.insert(
                    id,
                    Order {
                        region,
                        amount_cents,
                        file: name.clone(),
                    },
                );
            }
            std::fs::write(dir.join(&name), csv).unwrap();
            self.files += 1;
        }
    }

    fn expected_totals(&self) -> Value {
        let mut by_region: BTreeMap<&str, u64> = BTreeMap::new();
        for order in self.orders.values() {
            *by_region.entry(order.region).or_default() += order.amount_cents;
        }
        json!({
            "files": self.files,
            "rows": self.orders.len(),
            "total_cents": by_region.values().sum::<u64>(),
            "by_region": by_region,
        })
    }
}

/// A server with the example deployed, and the clients the README uses.
struct Example {
    server: Server,
    key: AccessKey,
    token: String,
    http: reqwest::Client,
}

impl Example {
    fn start() -> Example {
        let server = Server::start_with(s3_options()).unwrap();
        let key = server.s3_key(NS, "service").unwrap();
        let token = server.token("admin", Some(NS), "etl-test").unwrap();
        let example = Example {
            server,
            key,
            token,
            http: reqwest::Client::new(),
        };
        let mut setup = Command::new("bash");
        setup
            .arg(example_dir().join("setup.sh"))
            .env("FERROBASE_BIN", binary())
            .env("FERROBASE_URL", &example.server.url)
            .env("FERROBASE_TOKEN", &example.token)
            .env("ETL_NS", NS)
            .env("REPORT_SCHEDULE", "* * * * * *")
            .env("INGEST_MAX_ATTEMPTS", "2");
        example.run(setup);
        example
    }

    /// Runs `command` with the S3 endpoint and key, failing with its output when it fails.
    fn run(&self, mut command: Command) -> String {
        command
            .env("S3_ENDPOINT", self.server.s3_url().unwrap())
            .env("AWS_ACCESS_KEY_ID", &self.key.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.key.secret_access_key)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        let output = command.output().expect("the command starts");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{command:?} failed: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `aws s3 cp DIR s3://uploads/ --recursive`, as the README does it.
    fn upload(&self, dir: &Path) {
        let mut aws = Command::new("aws");
        aws.args(["--endpoint-url", &self.server.s3_url().unwrap()])
            .args(["--region", "us-east-1", "s3", "cp"])
            .arg(dir)
            .args(["s3://uploads/", "--recursive", "--only-show-errors"]);
        self.run(aws);
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.server.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        match self.get(path).await {
            (200, text) => Some(serde_json::from_str(&text).unwrap()),
            (404, _) => None,
            (status, text) => panic!("GET {path}: {status} {text}"),
        }
    }

    async fn totals(&self) -> Option<Value> {
        self.get_json(&format!("/v1/kv/{NS}/totals")).await
    }

    /// Waits until the aggregator has counted `files` files, failing at once if it ever counts
    /// more (a summary applied twice).
    async fn wait_for_files(&self, files: usize) -> Value {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Some(totals) = self.totals().await {
                let counted = totals["files"].as_u64().unwrap() as usize;
                assert!(
                    counted <= files,
                    "more files counted than uploaded: {totals}"
                );
                if counted == files {
                    return totals;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the totals never reached {files} files: {:?}",
                self.totals().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every `orders/` record, by order id.
    async fn stored_orders(&self) -> BTreeMap<String, Value> {
        let client = self.server.client(NS).unwrap();
        let mut orders = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = client
                .kv_list(NS, "orders/", after.as_deref(), 1000)
                .await
                .unwrap();
            for item in &page.items {
                let value = client.kv_get(NS, &item.key).await.unwrap().unwrap();
                let id = item.key.strip_prefix("orders/").unwrap().to_owned();
                orders.insert(id, serde_json::from_slice(&value.bytes).unwrap());
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return orders,
            }
        }
    }

    /// The final state, exactly: rows, totals, the report, and the dead letters.
    async fn check_final_state(&self, data: &Dataset) {
        let expected_totals = data.expected_totals();
        let totals = self.wait_for_files(data.files).await;
        assert_eq!(totals, expected_totals, "totals");

        let stored = self.stored_orders().await;
        assert_eq!(stored.len(), data.orders.len(), "one record per row");
        for (id, order) in &data.orders {
            assert_eq!(
                stored.get(id),
                Some(&json!({
                    "order_id": id,
                    "region": order.region,
                    "amount_cents": order.amount_cents,
                    "file": order.file,
                })),
                "order {id}"
            );
        }

        // The cron function (every second here) files the totals as today's report.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(report) = self.latest_report().await {
                let mut fields = report.clone();
                let map = fields.as_object_mut().unwrap();
                let day = map.remove("day").unwrap();
                let generated_for = map.remove("generated_for").unwrap();
                if fields == expected_totals {
                    assert_eq!(
                        day.as_str().unwrap(),
                        &generated_for.as_str().unwrap()[..10],
                        "{report}"
                    );
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no report with the final totals: {:?}",
                self.latest_report().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The malformed file is a dead letter of the ingest rule, with the parser's error;
        // nothing else failed for good.
        let deadline = Instant::now() + Duration::from_secs(30);
        let letters = loop {
            let dlq = self.get_json(&format!("/v1/dlq/{NS}")).await.unwrap();
            let letters = dlq["dead_letters"].as_array().unwrap().clone();
            if !letters.is_empty() {
                break letters;
            }
            assert!(
                Instant::now() < deadline,
                "the malformed file never dead-lettered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0]["rule"], "ingest");
        assert_eq!(letters[0]["event"]["subject"], "uploads/malformed.csv");
        // INGEST_MAX_ATTEMPTS=2 per delivery; a delivery repeated after the kill adds its two.
        let attempts = letters[0]["attempts"].as_array().unwrap();
        assert!(
            attempts.len() >= 2 && attempts.len() % 2 == 0,
            "{attempts:?}"
        );
        let error = attempts[attempts.len() - 1]["error"].as_str().unwrap();
        assert!(
            error.contains("malformed.csv line 3") && error.contains("not a number"),
            "{error}"
        );
        let queue_dlq = self
            .get_json(&format!("/v1/queues/{NS}/summaries/dlq?group=aggregator"))
            .await
            .unwrap();
        assert_eq!(queue_dlq["messages"], json!([]), "no summary dead-lettered");
    }

    /// The newest `daily/` report in the `reports` bucket.
    async fn latest_report(&self) -> Option<Value> {
        let listing = self
            .get_json(&format!("/v1/storage/{NS}/reports?prefix=daily/"))
            .await?;
        let key = listing["items"]
            .as_array()?
            .iter()
            .filter_map(|object| object["key"].as_str())
            .max()?
            .to_owned();
        self.get_json(&format!("/v1/storage/{NS}/reports/{key}"))
            .await
    }
}

/// A file the ingest function refuses: line 3 has an amount that is not a number.
fn write_malformed(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("malformed.csv"),
        "order_id,region,amount\nBAD-1,north,1.00\nBAD-2,south,lots\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_uploads_flow_through_ingest_aggregate_and_report() {
    let example = Example::start();
    let files = tempfile::tempdir().unwrap();
    let mut data = Dataset::default();
    data.write_batch(files.path(), 0, 6, 25);
    write_malformed(files.path());
    example.upload(files.path());
    example.check_final_state(&data).await;

    // A second upload of new files adds to the totals; the report follows.
    let more = tempfile::tempdir().unwrap();
    data.write_batch(more.path(), 6, 2, 10);
    example.upload(more.path());
    example.check_final_state(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_in_the_middle_of_processing_loses_nothing_and_applies_nothing_twice() {
    let mut example = Example::start();
    let files = tempfile::tempdir().unwrap();
    let mut data = Dataset::default();
    let first = files.path().join("first");
    data.write_batch(&first, 0, 4, 30);
    write_malformed(&first);
    example.upload(&first);
    // Processing is under way...
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while example.totals().await.is_none() {
        assert!(Instant::now() < deadline, "nothing was ever aggregated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and more files arrive: every upload aws-cli saw acknowledged must be processed.
    let second = files.path().join("second");
    data.write_batch(&second, 4, 30, 30);
    example.upload(&second);
    let counted = example.totals().await.unwrap()["files"].as_u64().unwrap() as usize;
    example.server.kill_hard();
    assert!(
        counted < data.files,
        "the kill came after processing had finished ({counted} files counted)"
    );

    example.server.restart().unwrap();
    example.check_final_state(&data).await;
}
