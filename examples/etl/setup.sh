#!/usr/bin/env bash
# Sets up the ETL example on a running Ferrobase server: two buckets, a queue, three functions,
# their triggers and the rules binding them. Safe to run again (everything is create-or-replace).
#
# Needs: FERROBASE_TOKEN (an admin token of the namespace), AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY (a key from `ferrobase keys create`), `aws` and `curl`.
# Optional: FERROBASE_URL, S3_ENDPOINT, ETL_NS, FERROBASE_BIN, REPORT_SCHEDULE, REPORT_TZ,
# INGEST_MAX_ATTEMPTS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

: "${FERROBASE_TOKEN:?set FERROBASE_TOKEN to an admin token (ferrobase token --role admin --ns etl)}"
export FERROBASE_URL="${FERROBASE_URL:-http://127.0.0.1:8080}"
S3_ENDPOINT="${S3_ENDPOINT:-http://127.0.0.1:9000}"
NS="${ETL_NS:-etl}"
FERROBASE_BIN="${FERROBASE_BIN:-ferrobase}"
# Daily at 06:00; the tests run it every second ("* * * * * *", six fields with seconds).
REPORT_SCHEDULE="${REPORT_SCHEDULE:-0 6 * * *}"
REPORT_TZ="${REPORT_TZ:-UTC}"
# Attempts of the ingest rule before a file goes to the dead-letter list.
INGEST_MAX_ATTEMPTS="${INGEST_MAX_ATTEMPTS:-5}"

fb() { "$FERROBASE_BIN" "$@" --ns "$NS" >/dev/null; }
s3() { aws --endpoint-url "$S3_ENDPOINT" --region us-east-1 "$@"; }
api_put() {
  curl -fsS -X PUT "$FERROBASE_URL$1" -H "authorization: Bearer $FERROBASE_TOKEN" \
    -H 'content-type: application/json' --data "$2" >/dev/null
}

echo "buckets: uploads, reports"
for bucket in uploads reports; do
  s3 s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 || s3 s3 mb "s3://$bucket" >/dev/null
done

echo "queue: summaries"
# A handler's publish is recorded once accepted; the dedup window covers a crash between the
# publish and that record, so a handler retried after a restart publishes once.
api_put "/v1/queues/$NS/summaries" '{"max_deliver": 5, "dedup_window_s": 3600}'

echo "functions: ingest, aggregate, report"
fb fn deploy "$here/functions/ingest.js" --name ingest --timeout-ms 30000
# A short timeout keeps the queue lease short: a summary whose run died with the server is
# delivered again soon after a restart (lease = timeout + 30 s).
fb fn deploy "$here/functions/aggregate.js" --name aggregate --timeout-ms 5000
fb fn deploy "$here/functions/report.js" --name report --timeout-ms 10000

echo "triggers: csv-uploads, summaries, daily-report, report-now"
fb trigger put csv-uploads \
  --source '{"kind": "storage", "bucket": "uploads", "suffix": ".csv", "ops": ["created"]}'
fb trigger put summaries --source '{"kind": "queue", "queue": "summaries", "group": "aggregator"}'
fb trigger put daily-report \
  --source "{\"kind\": \"cron\", \"schedule\": \"$REPORT_SCHEDULE\", \"tz\": \"$REPORT_TZ\"}"
fb trigger put report-now --source '{"kind": "manual"}'

echo "rules: ingest, aggregate, daily-report, report-now"
fb rule put ingest --trigger csv-uploads --function ingest --max-attempts "$INGEST_MAX_ATTEMPTS"
fb rule put aggregate --trigger summaries --function aggregate
fb rule put daily-report --trigger daily-report --function report
fb rule put report-now --trigger report-now --function report

echo "ready: upload CSV files to s3://uploads (namespace $NS)"
