#!/usr/bin/env bash
# The JetStream queue engine against plain async-nats on one nats-server. See bench/README.md.
#
# Environment (all optional):
#   FERROBASE_BIN         use this server binary instead of `cargo build --release -p ferrobase`
#   FERROBASE_BENCH_BIN   the load generator (default: ferrobase-bench beside the server binary)
#   BENCH_MESSAGES        messages per run (default 50000)
#   BENCH_ROUNDS          rounds of engine-then-plain; medians are reported (default 3)
#   BENCH_BATCH           messages per publish and most per pull (default 100)
#   BENCH_MESSAGE_SIZE    message size in bytes (default 128)
#   BENCH_TMPDIR          parent of the temporary NATS store (default <repo>/target)
#   BENCH_START_TIMEOUT   seconds to wait for nats-server to come up (default 30)
#   BENCH_ENFORCE         1 = exit 1 when the throughput ratio misses 0.7
#   BENCH_KEEP            1 = keep the NATS store and log
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MESSAGES=${BENCH_MESSAGES:-50000}
ROUNDS=${BENCH_ROUNDS:-3}
BATCH=${BENCH_BATCH:-100}
MESSAGE_SIZE=${BENCH_MESSAGE_SIZE:-128}
START_TIMEOUT=${BENCH_START_TIMEOUT:-30}
TARGET=0.7

log() { printf '[queue.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

NATS_PID=""
WORK=""

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    if [[ -n $NATS_PID ]] && kill -0 "$NATS_PID" 2>/dev/null; then
        kill -TERM "$NATS_PID" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$NATS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$NATS_PID" 2>/dev/null || true
        wait "$NATS_PID" 2>/dev/null || true
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${BENCH_KEEP:-0} == 1 ]]; then
            log "kept $WORK"
        else
            rm -rf -- "$WORK"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! command -v nats-server >/dev/null 2>&1; then
    log "installing nats-server (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
fi

if [[ -n ${FERROBASE_BIN:-} ]]; then
    BIN=$FERROBASE_BIN
else
    log "building the release binary"
    (cd "$REPO" && cargo build --release -q -p ferrobase -p ferrobase-bench)
    BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/ferrobase
fi
BENCH_BIN=${FERROBASE_BENCH_BIN:-$(dirname "$BIN")/ferrobase-bench}

# The store goes under target/, not /tmp, which is often a tmpfs where fsync costs nothing.
TMP_PARENT=${BENCH_TMPDIR:-$REPO/target}
mkdir -p "$TMP_PARENT"
WORK=$(mktemp -d "$TMP_PARENT/bench-queue.XXXXXX")

# `-p -1`: the server takes a free port and logs it, so nothing can race us for it.
: >"$WORK/nats.log"
nats-server -js -a 127.0.0.1 -p -1 -sd "$WORK/nats" >>"$WORK/nats.log" 2>&1 &
NATS_PID=$!
URL=""
deadline=$((SECONDS + START_TIMEOUT))
until [[ -n $URL ]]; do
    kill -0 "$NATS_PID" 2>/dev/null || {
        tail -n 20 "$WORK/nats.log" >&2
        die "nats-server exited before it was ready"
    }
    ((SECONDS < deadline)) || die "nats-server not ready after ${START_TIMEOUT}s"
    address=$(sed -n 's/.*Listening for client connections on \([0-9.:]*\).*/\1/p' "$WORK/nats.log")
    if [[ -n $address ]]; then
        URL="nats://$address"
    else
        sleep 0.1
    fi
done
log "nats-server $(nats-server --version | awk '{print $2}') at $URL, store in $WORK"
log "$(nproc) cores; other work on this machine shows in the figures"

OUT=$WORK/bench.out
"$BENCH_BIN" queue --target jetstream --nats-url "$URL" --rounds "$ROUNDS" \
    --jetstream-messages "$MESSAGES" --batch "$BATCH" --message-size "$MESSAGE_SIZE" | tee "$OUT"

ratio=$(sed -n 's/.*engine\/plain consumed_per_sec=\([0-9.]*\).*/\1/p' "$OUT")
[[ -n $ratio ]] || die "no ratio in the bench output"
if awk -v r="$ratio" -v t="$TARGET" 'BEGIN { exit !(r >= t) }'; then
    log "publish→ack throughput engine/plain = $ratio (target >= $TARGET): met"
else
    log "publish→ack throughput engine/plain = $ratio (target >= $TARGET): MISSED"
    [[ ${BENCH_ENFORCE:-0} == 1 ]] && exit 1
fi
