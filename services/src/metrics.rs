//! Prometheus metrics: HTTP requests and latencies per route, KV operations, change-log size.
//!
//! Each server owns its registry (no process-global recorder), so several servers can run in
//! one test process without sharing counters.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    op: &'static str,
}

/// KV operations counted by `ferrobase_kv_operations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOperation {
    Get,
    Put,
    Delete,
    List,
    Txn,
}

impl KvOperation {
    fn label(self) -> &'static str {
        match self {
            KvOperation::Get => "get",
            KvOperation::Put => "put",
            KvOperation::Delete => "delete",
            KvOperation::List => "list",
            KvOperation::Txn => "txn",
        }
    }
}

/// The server's metrics and the registry they are exposed from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    kv_operations: Family<OperationLabels, Counter>,
    changelog_events: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // 100 µs to ~13 s in powers of two: covers a cached GET and a slow fsync alike.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let kv_operations = Family::<OperationLabels, Counter>::default();
        let changelog_events = Gauge::default();
        registry.register(
            "ferrobase_http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "ferrobase_http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        registry.register(
            "ferrobase_kv_operations",
            "KV operations that reached the engine, by operation",
            kv_operations.clone(),
        );
        registry.register(
            "ferrobase_changelog_events",
            "Events retained in the change logs of all namespaces",
            changelog_events.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            kv_operations,
            changelog_events,
        }
    }
}

impl Metrics {
    pub fn count_kv(&self, operation: KvOperation) {
        self.kv_operations
            .get_or_create(&OperationLabels {
                op: operation.label(),
            })
            .inc();
    }

    /// Renders the registry in the Prometheus text format, after sampling the gauges.
    pub fn render(&self, changelog_events: u64) -> String {
        self.changelog_events.set(changelog_events as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a string");
        out
    }
}

/// Middleware recording every request's count and latency under its route pattern (not the
/// concrete path, which would explode the label set).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Appends the function runtime's metrics to an OpenMetrics exposition (before `# EOF`):
/// invocations by outcome, a duration histogram and GB-seconds per namespace, starts by kind,
/// and pool sizes.
pub fn append_function_metrics(
    text: &mut String,
    functions: &ferrobase_functions::FunctionService,
) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;

    use ferrobase_functions::service::DURATION_BUCKETS;

    let eof = text.rfind("# EOF").unwrap_or(text.len());
    let tail = text.split_off(eof);
    let usage = functions.usage();
    let mut namespaces: Vec<_> = usage.iter().collect();
    namespaces.sort_by(|a, b| a.0.cmp(b.0));
    // Writing into a String cannot fail.
    let out = text;
    let _ = writeln!(
        out,
        "# HELP ferrobase_function_invocations Function activations by namespace and outcome."
    );
    let _ = writeln!(out, "# TYPE ferrobase_function_invocations counter");
    for (ns, counters) in &namespaces {
        for (outcome, count) in counters.outcomes.iter() {
            let _ = writeln!(
                out,
                "ferrobase_function_invocations_total{{namespace=\"{ns}\",outcome=\"{}\"}} {count}",
                outcome.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP ferrobase_function_duration_seconds Activation durations by namespace."
    );
    let _ = writeln!(out, "# TYPE ferrobase_function_duration_seconds histogram");
    for (ns, counters) in &namespaces {
        let mut cumulative = 0;
        for (index, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += counters.duration_buckets.get(index).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "ferrobase_function_duration_seconds_bucket{{namespace=\"{ns}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let total: u64 = counters.duration_buckets.iter().sum();
        let _ = writeln!(
            out,
            "ferrobase_function_duration_seconds_bucket{{namespace=\"{ns}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "ferrobase_function_duration_seconds_sum{{namespace=\"{ns}\"}} {}",
            counters.duration_seconds_sum
        );
        let _ = writeln!(
            out,
            "ferrobase_function_duration_seconds_count{{namespace=\"{ns}\"}} {total}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP ferrobase_function_gb_seconds Billed GB-seconds (memory_mb/1024 x duration) by namespace."
    );
    let _ = writeln!(out, "# TYPE ferrobase_function_gb_seconds counter");
    for (ns, counters) in &namespaces {
        let _ = writeln!(
            out,
            "ferrobase_function_gb_seconds_total{{namespace=\"{ns}\"}} {}",
            counters.gb_seconds
        );
    }
    let stats = functions.pool_stats();
    let _ = writeln!(
        out,
        "# HELP ferrobase_function_starts Activations by how they got their isolate."
    );
    let _ = writeln!(out, "# TYPE ferrobase_function_starts counter");
    for (kind, counter) in [
        ("cold", &stats.cold),
        ("prewarmed", &stats.prewarmed),
        ("warm", &stats.warm),
    ] {
        let _ = writeln!(
            out,
            "ferrobase_function_starts_total{{kind=\"{kind}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP ferrobase_function_pool_isolates Idle isolates in the pool."
    );
    let _ = writeln!(out, "# TYPE ferrobase_function_pool_isolates gauge");
    let _ = writeln!(
        out,
        "ferrobase_function_pool_isolates{{state=\"warm\"}} {}",
        stats.warm_idle.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "ferrobase_function_pool_isolates{{state=\"prewarmed\"}} {}",
        stats.stems.load(Ordering::Relaxed)
    );
    let unlabelled = [
        (
            "ferrobase_function_pool_idle_memory_bytes",
            "gauge",
            "Heap held by idle warm isolates.",
            stats.idle_memory_bytes.load(Ordering::Relaxed) as u64,
        ),
        (
            "ferrobase_function_evictions",
            "counter",
            "Idle isolates evicted (TTL, memory budget, redeploy).",
            stats.evicted.load(Ordering::Relaxed),
        ),
        (
            "ferrobase_function_abandoned_threads",
            "counter",
            "Executor threads abandoned past a deadline (stuck in native code).",
            stats.abandoned.load(Ordering::Relaxed),
        ),
        (
            "ferrobase_function_abandoned_threads_running",
            "gauge",
            "Abandoned executor threads that have not exited yet.",
            stats.abandoned_running.load(Ordering::Relaxed) as u64,
        ),
    ];
    for (name, kind, help, value) in unlabelled {
        // OpenMetrics names a counter's sample `{name}_total`.
        let sample = if kind == "counter" { "_total" } else { "" };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{sample} {value}");
    }
    out.push_str(&tail);
}

/// Appends rule delivery counters to an OpenMetrics exposition (before `# EOF`).
pub fn append_trigger_metrics(
    text: &mut String,
    stats: &ferrobase_functions::triggers::TriggerStats,
) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;

    let eof = text.rfind("# EOF").unwrap_or(text.len());
    let tail = text.split_off(eof);
    let rows = [
        (
            "delivered",
            "Events delivered to functions by rules.",
            &stats.delivered,
        ),
        (
            "retried",
            "Delivery attempts that failed and were retried.",
            &stats.retried,
        ),
        (
            "dead_lettered",
            "Events moved to a dead-letter list.",
            &stats.dead_lettered,
        ),
        (
            "loop_cut",
            "Events not delivered because their chain was too deep.",
            &stats.loop_cut,
        ),
    ];
    for (name, help, counter) in rows {
        // Writing into a String cannot fail.
        let _ = writeln!(text, "# HELP ferrobase_trigger_{name} {help}");
        let _ = writeln!(text, "# TYPE ferrobase_trigger_{name} counter");
        let _ = writeln!(
            text,
            "ferrobase_trigger_{name}_total {}",
            counter.load(Ordering::Relaxed)
        );
    }
    text.push_str(&tail);
}
