#!/usr/bin/env bash
# Ferrobase object storage against the disk itself, on this machine. See bench/README.md.
#
# Starts a release server on a temporary data directory, runs `ferrobase-bench storage`
# (PUT/GET ops/s and p99 for 1 KiB objects, MB/s for 1 MiB and 64 MiB objects, each against
# fsync'd writes and cached reads of files on the same disk), CopyObject beside UploadPartCopy
# of a 64 MiB object through the S3 endpoint (bench/s3_copy.py), then times `dd` itself as the
# issue asks: `dd conv=fsync` for writes and `dd` of a cached file for reads.
#
# Environment (all optional):
#   FERROBASE_BIN        use this server binary instead of `cargo build --release -p ferrobase`
#   FERROBASE_BENCH_BIN  the load generator (default: ferrobase-bench beside the server binary)
#   BENCH_TMPDIR         parent of the temporary data dir (default <repo>/target)
#   BENCH_SMALL          requests per 1 KiB phase (default 5000)
#   BENCH_CONNECTIONS    connections for the 1 KiB phases (default 32)
#   BENCH_COPIES         runs per server-side copy phase of a 64 MiB object (default 3)
#   BENCH_ENFORCE        1 = exit 1 when a target ratio is missed
#   FERROBASE_STORAGE_ETAG  the server's ETag mode: auto (the default; BLAKE3-based ETags for
#                        bodies over 8 MiB) or md5 (every ETag an MD5), to compare the two
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[storage.sh] %s\n' "$*" >&2; }

BIN=${FERROBASE_BIN:-}
if [[ -z $BIN ]]; then
    log "building the release binary"
    (cd "$REPO" && cargo build --release -q -p ferrobase -p ferrobase-bench)
    BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/ferrobase"
fi
BENCH_BIN=${FERROBASE_BENCH_BIN:-$(dirname "$BIN")/ferrobase-bench}
PARENT=${BENCH_TMPDIR:-$REPO/target}
mkdir -p "$PARENT"
WORK=$(mktemp -d "$PARENT/bench-storage.XXXXXX")
SERVER=""
cleanup() {
    if [[ -n $SERVER ]] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT

"$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 --s3-listen 127.0.0.1:0 \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER=$!
for _ in $(seq 1 300); do
    grep -q '^ferrobase listening on ' "$WORK/server.out" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
    sleep 0.1
done
URL=$(sed -n 's/^ferrobase listening on //p' "$WORK/server.out")
[[ -n $URL ]] || { log "the server did not start"; exit 1; }
TOKEN=$("$BIN" token --role admin --ns bench --data-dir "$WORK/data" | tail -n 1)

log "ferrobase-bench storage against $URL (ETag mode: ${FERROBASE_STORAGE_ETAG:-auto})"
"$BENCH_BIN" storage --url "$URL" --token "$TOKEN" --ns bench \
    --scratch-dir "$WORK/data/scratch" \
    --small-requests "${BENCH_SMALL:-5000}" --connections "${BENCH_CONNECTIONS:-32}" \
    | tee "$WORK/report.txt"

# Server-side copies through the S3 endpoint: CopyObject beside UploadPartCopy.
S3_URL=$(cat "$WORK/data/s3/address")
S3_KEY=$("$BIN" keys create --ns bench --role service --data-dir "$WORK/data" | tail -n 1)
python3 "$REPO/bench/s3_copy.py" "$S3_URL" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_key_id"])' "$S3_KEY")" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret_access_key"])' "$S3_KEY")" \
    64 "${BENCH_COPIES:-3}"

# dd itself, on the same disk, as the ceiling: each object-sized write is one
# `dd conv=fsync`, each read one `dd` of a file in the page cache (process start included,
# as for any client; the in-process columns above show raw syscalls without it).
dd_loop() { # count dd-args... → seconds for count runs
    local count=$1 start end i
    shift
    start=$(date +%s.%N)
    for ((i = 0; i < count; i++)); do dd "$@" status=none; done
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { print e - s }'
}
dd if=/dev/zero of="$WORK/dd-1k" bs=1K count=1 conv=fsync status=none
dd if=/dev/zero of="$WORK/dd-1m" bs=1M count=1 conv=fsync status=none
dd if=/dev/zero of="$WORK/dd-64m" bs=1M count=64 conv=fsync status=none
for f in dd-1k dd-1m dd-64m; do cat "$WORK/$f" >/dev/null; done
T_W1K=$(dd_loop 200 if=/dev/zero of="$WORK/dd-w" bs=1K count=1 conv=fsync)
T_R1K=$(dd_loop 200 if="$WORK/dd-1k" of=/dev/null bs=1K)
T_W1M=$(dd_loop 100 if=/dev/zero of="$WORK/dd-w" bs=1M count=1 conv=fsync)
T_R1M=$(dd_loop 100 if="$WORK/dd-1m" of=/dev/null bs=1M)
T_W64=$(dd_loop 6 if=/dev/zero of="$WORK/dd-w" bs=1M count=64 conv=fsync)
T_R64=$(dd_loop 20 if="$WORK/dd-64m" of=/dev/null bs=1M)
JSON=$(tail -n 1 "$WORK/report.txt")
python3 - "$JSON" "$T_W1K" "$T_R1K" "$T_W1M" "$T_R1M" "$T_W64" "$T_R64" "${BENCH_ENFORCE:-0}" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
w1k, r1k, w1m, r1m, w64, r64 = map(float, sys.argv[2:8])
enforce = sys.argv[8] == "1"
KIB, MIB = 1024, 1024 * 1024
rows = [  # phase, report key, bytes, dd runs, dd seconds, dd description
    ("PUT 1KiB", "put_1kib", KIB, 200, w1k, "dd bs=1K count=1 conv=fsync"),
    ("GET 1KiB", "get_1kib", KIB, 200, r1k, "dd of a cached 1 KiB file"),
    ("PUT 1MiB", "put_1mib", MIB, 100, w1m, "dd bs=1M count=1 conv=fsync"),
    ("GET 1MiB", "get_1mib", MIB, 100, r1m, "dd of a cached 1 MiB file"),
    ("PUT 64MiB", "put_64mib", 64 * MIB, 6, w64, "dd bs=1M count=64 conv=fsync"),
    ("GET 64MiB", "get_64mib", 64 * MIB, 20, r64, "dd of a cached 64 MiB file"),
]
print("\nagainst dd (the ceiling):")
print(f"{'phase':<10} {'ops/s':>9} {'MB/s':>8} {'p99 ms':>7} | {'dd ops/s':>9} {'dd MB/s':>8}  {'(how)':<30} | ratio")
ratios = {}
for name, key, size, runs, seconds, how in rows:
    ours = report[key]["ferrobase"]
    dd_ops = runs / seconds
    ratio = ours["ops_per_sec"] / dd_ops
    ratios[name] = ratio
    print(f"{name:<10} {ours['ops_per_sec']:9.1f} {ours['mb_per_sec']:8.1f} {ours['p99_ms']:7.2f} | "
          f"{dd_ops:9.1f} {dd_ops * size / 1e6:8.1f}  {how:<30} | {ratio:5.2f}x")
get_ok = ratios["GET 1MiB"] >= 0.5
put_ok = ratios["PUT 64MiB"] >= 0.7
print(f"\ntargets: GET 1MiB >= 0.5x dd cached read: {ratios['GET 1MiB']:.2f}x ({'met' if get_ok else 'MISSED'}); "
      f"PUT 64MiB >= 0.7x dd conv=fsync: {ratios['PUT 64MiB']:.2f}x ({'met' if put_ok else 'MISSED'})")
sys.exit(1 if enforce and not (get_ok and put_ok) else 0)
PY
