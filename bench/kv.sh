#!/usr/bin/env bash
# Ferrobase KV against Redis, side by side, on this machine. See bench/README.md.
#
# Environment (all optional):
#   FERROBASE_BIN         use this server binary instead of `cargo build --release -p ferrobase`
#   FERROBASE_BENCH_BIN   the load generator (default: ferrobase-bench beside the server binary)
#   BENCH_REQUESTS        requests per phase and per redis-benchmark test (default 100000)
#   BENCH_CONNECTIONS     concurrent connections, both systems (default 64)
#   BENCH_VALUE_SIZE      value size in bytes (default 1024)
#   BENCH_KEYS            distinct keys (default 10000)
#   BENCH_TMPDIR          parent of the temporary data dirs (default <repo>/target)
#   BENCH_START_TIMEOUT   seconds to wait for a server to come up (default 60)
#   BENCH_RUN_TIMEOUT     seconds allowed for one load run (default 900)
#   BENCH_SKIP_FERROBASE  1 = measure Redis only (no ratios)
#   BENCH_ENFORCE         1 = exit 1 when a ratio misses its target
#   BENCH_KEEP            1 = keep the temporary data dirs and logs
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUESTS=${BENCH_REQUESTS:-100000}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
VALUE_SIZE=${BENCH_VALUE_SIZE:-1024}
KEYS=${BENCH_KEYS:-10000}
START_TIMEOUT=${BENCH_START_TIMEOUT:-60}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-900}
NS=bench
GET_TARGET=0.5
PUT_TARGET=1.0

log() { printf '[kv.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- cleanup: every process we start is tracked and stopped on exit, whatever the cause ---

PIDS=()
WORK=""

# stop_process PID NAME: SIGTERM, wait up to 30 s, then SIGKILL. Returns the exit status.
stop_process() {
    local pid=$1 name=$2 i status=0
    kill -0 "$pid" 2>/dev/null || {
        wait "$pid" 2>/dev/null || status=$?
        return "$status"
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

untrack() {
    local pid=$1 kept=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_process "$pid" "pid $pid" || true; done
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

# --- helpers ---

# run_tracked OUT CMD...: runs CMD with stdout to OUT, in the background so that a signal to
# this script is handled at once (bash defers traps until a foreground command ends) and the
# cleanup stops CMD too.
run_tracked() {
    local out=$1 pid status=0
    shift
    "$@" >"$out" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || status=$?
    untrack "$pid"
    return "$status"
}

# A loopback port that nothing listens on right now. A race with another process remains
# possible; the server then fails to start and the readiness wait reports it.
free_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 40000))
        if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free loopback port found"
}

# wait_until PID NAME LOG CMD...: polls CMD until it succeeds, the process dies or the
# start timeout passes.
wait_until() {
    local pid=$1 name=$2 logfile=$3
    shift 3
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            local status=0
            wait "$pid" || status=$?
            untrack "$pid"
            tail -n 30 "$logfile" >&2 || true
            die "$name exited with status $status before it was ready"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$logfile" >&2 || true
            die "$name not ready after ${START_TIMEOUT}s"
        fi
        sleep 0.1
    done
}

# field LINE NAME: the value of NAME=value in a `kv PUT ops_per_sec=... ` line.
field() {
    local line=$1 name=$2 word
    for word in $line; do
        if [[ $word == "$name="* ]]; then
            echo "${word#*=}"
            return 0
        fi
    done
    die "no $name in: $line"
}

# csv_field CSV TEST COLUMN: a column of redis-benchmark --csv output, found by header name.
csv_field() {
    awk -F, -v test="\"$2\"" -v col="\"$3\"" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        $1 == test && c { gsub(/"/, "", $c); print $c; found = 1 }
        END { exit !found }' <<<"$1" || die "no $3 for $2 in redis-benchmark output"
}

ms_to_us() { awk -v ms="$1" 'BEGIN { printf "%d", ms * 1000 + 0.5 }'; }

rps() { awk -v r="$1" 'BEGIN { printf "%.1f", r }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

meets() { awk -v r="$1" -v t="$2" 'BEGIN { exit !(r != "n/a" && r + 0 >= t + 0) }'; }

# --- prerequisites ---

install_redis() {
    command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null &&
        command -v redis-cli >/dev/null && command -v curl >/dev/null && return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "redis-server is missing and we are not root"
        sudo=(sudo)
    fi
    log "installing redis-server (and curl) with apt-get"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq redis-server curl >&2
}

ferrobase_binary() {
    if [[ -n ${FERROBASE_BIN:-} ]]; then
        [[ -x $FERROBASE_BIN ]] || die "FERROBASE_BIN=$FERROBASE_BIN is not executable"
        echo "$FERROBASE_BIN"
        return 0
    fi
    log "building ferrobase and ferrobase-bench (cargo build --release)"
    (cd "$REPO" && cargo build --release -p ferrobase -p ferrobase-bench >&2) || die "cargo build failed"
    local bin=${CARGO_TARGET_DIR:-$REPO/target}/release/ferrobase
    [[ -x $bin ]] || die "no binary at $bin"
    echo "$bin"
}

# --- Ferrobase ---

FB_PUT=""
FB_GET=""

bench_ferrobase() {
    local bin=$1 dir=$WORK/ferrobase port pid token out status
    local bench_bin=${FERROBASE_BENCH_BIN:-$(dirname "$bin")/ferrobase-bench}
    [[ -x $bench_bin ]] || die "no load generator at $bench_bin (set FERROBASE_BENCH_BIN)"
    mkdir -p "$dir/data"
    port=$(free_port)
    log "ferrobase serve on 127.0.0.1:$port, data in $dir/data"
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/serve.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_until "$pid" "ferrobase serve" "$dir/serve.log" \
        curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz"

    out=$("$bin" token --role admin --ns "$NS" --data-dir "$dir/data" 2>"$dir/token.log") ||
        die "ferrobase token failed: $(tail -n 5 "$dir/token.log")"
    token=$(printf '%s\n' "$out" | awk 'NF { last = $0 } END { print last }')
    [[ -n $token ]] || die "ferrobase token printed nothing"

    log "ferrobase-bench kv: $CONNECTIONS connections, $VALUE_SIZE-byte values, $REQUESTS requests"
    status=0
    FERROBASE_TOKEN=$token run_tracked "$dir/bench.out" timeout "$RUN_TIMEOUT" "$bench_bin" kv \
        --url "http://127.0.0.1:$port" --ns "$NS" --connections "$CONNECTIONS" \
        --value-size "$VALUE_SIZE" --requests "$REQUESTS" --keys "$KEYS" || status=$?
    cat "$dir/bench.out" >&2
    ((status == 0)) || die "ferrobase-bench kv failed with status $status"
    FB_PUT=$(grep '^kv PUT ' "$dir/bench.out") || die "no PUT line in bench output"
    FB_GET=$(grep '^kv GET ' "$dir/bench.out") || die "no GET line in bench output"

    status=0
    stop_process "$pid" "ferrobase serve" || status=$?
    untrack "$pid"
    ((status == 0)) || log "warning: ferrobase serve exited with status $status on SIGTERM"
}

# --- Redis ---

# run_redis NAME CSV_VAR TESTS SERVER_ARGS...: one redis-server, one redis-benchmark run.
run_redis() {
    local name=$1 var=$2 tests=$3
    shift 3
    local dir=$WORK/$name port pid csv
    mkdir -p "$dir"
    port=$(free_port)
    log "redis-server ($name) on 127.0.0.1:$port, dir $dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize no \
        --logfile "$dir/redis.log" "$@" &
    pid=$!
    PIDS+=("$pid")
    wait_until "$pid" "redis-server ($name)" "$dir/redis.log" \
        redis-cli -h 127.0.0.1 -p "$port" ping
    run_tracked "$dir/benchmark.csv" timeout "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 \
        -p "$port" -c "$CONNECTIONS" -d "$VALUE_SIZE" -n "$REQUESTS" -r "$KEYS" -t "$tests" \
        --csv || die "redis-benchmark ($name) failed"
    csv=$(<"$dir/benchmark.csv")
    printf '%s\n' "$csv" >&2
    printf -v "$var" '%s' "$csv"
    stop_process "$pid" "redis-server ($name)" ||
        log "warning: redis-server ($name) exited with status $? on SIGTERM"
    untrack "$pid"
}

# --- main ---

install_redis
FB_BIN=""
if [[ ${BENCH_SKIP_FERROBASE:-0} != 1 ]]; then
    FB_BIN=$(ferrobase_binary)
fi

# Both servers keep their files under one directory, so that their fsyncs hit the same
# filesystem. The default is the repo's target/ rather than /tmp, which is often a tmpfs
# where fsync costs nothing and durable numbers would mean nothing.
parent=${BENCH_TMPDIR:-$REPO/target}
mkdir -p "$parent"
WORK=$(mktemp -d "$parent/kvbench.XXXXXX")
FS=$(df --output=fstype,source "$WORK" | awk 'NR == 2 { print $1 " on " $2 }')
log "data under $WORK ($FS)"

if [[ -n $FB_BIN ]]; then
    bench_ferrobase "$FB_BIN"
fi

REDIS_DEFAULT="" REDIS_ALWAYS=""
run_redis redis-default REDIS_DEFAULT set,get --save '' --appendonly no
run_redis redis-always REDIS_ALWAYS set --save '' --appendonly yes --appendfsync always

r_set_rps=$(csv_field "$REDIS_DEFAULT" SET rps)
r_get_rps=$(csv_field "$REDIS_DEFAULT" GET rps)
r_dur_rps=$(csv_field "$REDIS_ALWAYS" SET rps)

echo
echo "KV benchmark: $CONNECTIONS connections, $VALUE_SIZE-byte values, $REQUESTS requests," \
    "$KEYS keys; $(nproc) cores; data on $FS"
echo "Redis: $(redis-server --version | awk '{ print $3 }' | sed 's/^v=//')," \
    "redis-benchmark (one client thread)"
echo
printf '%-38s %-4s %12s %9s %9s %7s\n' system op ops/s p50_us p99_us errors
row() { printf '%-38s %-4s %12s %9s %9s %7s\n' "$@"; }
if [[ -n $FB_BIN ]]; then
    for line in "$FB_PUT" "$FB_GET"; do
        op=$(awk '{ print $2 }' <<<"$line")
        label="ferrobase"
        [[ $op == PUT ]] && label="ferrobase (durable, group commit)"
        row "$label" "$op" "$(rps "$(field "$line" ops_per_sec)")" "$(field "$line" p50_us)" \
            "$(field "$line" p99_us)" "$(field "$line" errors)"
    done
fi
for test in SET GET; do
    row "redis (no persistence)" "$test" "$(rps "$(csv_field "$REDIS_DEFAULT" "$test" rps)")" \
        "$(ms_to_us "$(csv_field "$REDIS_DEFAULT" "$test" p50_latency_ms)")" \
        "$(ms_to_us "$(csv_field "$REDIS_DEFAULT" "$test" p99_latency_ms)")" -
done
row "redis (appendfsync always)" SET "$(rps "$r_dur_rps")" \
    "$(ms_to_us "$(csv_field "$REDIS_ALWAYS" SET p50_latency_ms)")" \
    "$(ms_to_us "$(csv_field "$REDIS_ALWAYS" SET p99_latency_ms)")" -
echo
echo "redis SET no-persistence/appendfsync-always = $(ratio "$r_set_rps" "$r_dur_rps")"

if [[ -z $FB_BIN ]]; then
    echo "ferrobase skipped (BENCH_SKIP_FERROBASE=1): no ratios"
    exit 0
fi

get_ratio=$(ratio "$(field "$FB_GET" ops_per_sec)" "$r_get_rps")
put_ratio=$(ratio "$(field "$FB_PUT" ops_per_sec)" "$r_dur_rps")
verdict() { if meets "$1" "$2"; then echo ok; else echo MISSED; fi; }
echo "GET ferrobase/redis = $get_ratio (target >= $GET_TARGET: $(verdict "$get_ratio" "$GET_TARGET"))"
echo "durable PUT ferrobase/redis-always = $put_ratio" \
    "(target >= $PUT_TARGET: $(verdict "$put_ratio" "$PUT_TARGET"))"

failed=0
for line in "$FB_PUT" "$FB_GET"; do
    if [[ $(field "$line" errors) != 0 ]]; then
        log "ferrobase answered errors: $line"
        failed=1
    fi
done
if [[ ${BENCH_ENFORCE:-0} == 1 ]]; then
    meets "$get_ratio" "$GET_TARGET" || failed=1
    meets "$put_ratio" "$PUT_TARGET" || failed=1
fi
exit "$failed"
