#!/usr/bin/env bash
# A/B of one lever: the same short load on a fresh cluster of each build, in alternation, so
# both see the same machine. Usage:
#
#   scripts/bench-ab.sh [--rounds N] [--clients N] LABEL=BIN_DIR LABEL=BIN_DIR ...
#
# BIN_DIR holds `raftsched` and `raftsched-bench` (a release build: `cargo build --release
# -p raftsched -p raftsched-bench`, copied away before the other build). Each round starts a
# fresh three-node cluster per build with scripts/cluster.sh (2 shell workers, 4 slots), runs
# single submits from --clients clients (default 1000, where both cores saturate; 3 runs of
# 3 s), then submit→start at 250/s and 1000/s offered (5 s each), and counts the leader's
# quorum losses in the node logs ("no majority has answered": writes failed as "outcome
# unknown") and the worker streams it closed for them. Results: bench/results/<date>-ab-<label>-<round>.jsonl, and a summary on
# stdout. Ports: RAFTSCHED_BENCH_PORT_BASE (default 32051) and the two hundreds above it.
# RAFTSCHED_AB_KEEP=1 keeps each run's data dirs and node logs (their path is printed).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=1
CLIENTS=1000
BUILDS=()
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --clients) CLIENTS=$2; shift ;;
        *=*) BUILDS+=("$1") ;;
        *) echo "bench-ab.sh: unknown argument $1 (want LABEL=BIN_DIR, --rounds N or --clients N)" >&2; exit 2 ;;
    esac
    shift
done
((${#BUILDS[@]})) || { echo "usage: scripts/bench-ab.sh [--rounds N] [--clients N] LABEL=BIN_DIR ..." >&2; exit 2; }
PORT_BASE=${RAFTSCHED_BENCH_PORT_BASE:-32051}
STAMP=$(date -u +%Y-%m-%d-%H%M)
mkdir -p "$ROOT/bench/results"

one_run() {
    local label=$1 dir=$2 round=$3 work out
    work=$(mktemp -d "${TMPDIR:-/tmp}/raftsched-ab.XXXXXX")
    out="$ROOT/bench/results/$STAMP-ab-$label-$round.jsonl"
    (
        export RAFTSCHED_BIN=$dir/raftsched RAFTSCHED_DATA=$work/cluster
        export RAFTSCHED_PORT_BASE=$PORT_BASE RAFTSCHED_PEER_PORT_BASE=$((PORT_BASE + 100))
        export RAFTSCHED_HTTP_PORT_BASE=$((PORT_BASE + 200)) RAFTSCHED_WORKERS=2 RAFTSCHED_WORKER_SLOTS=4
        export RAFTSCHED_CLUSTER="127.0.0.1:$PORT_BASE,127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2))"
        export RAFTSCHED_TLS_DIR=$work/cluster/certs
        unset RAFTSCHED_TLS_IDENTITY RAFTSCHED_TLS_SERVER_NAME RAFTSCHED_INSECURE
        if [[ ${RAFTSCHED_AB_KEEP:-0} == 1 ]]; then
            trap '"$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true; echo "kept $work" >&2' EXIT
        else
            trap '"$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true; rm -rf -- "$work"' EXIT
        fi
        "$ROOT/scripts/cluster.sh" start >"$work/start.log" 2>&1 || { cat "$work/start.log" >&2; exit 1; }
        local bench=$dir/raftsched-bench
        for _ in 1 2 3; do
            "$bench" submit --clients "$CLIENTS" --duration-ms 3000 --warmup-ms 500 --repeat 1 --payload-bytes 64 \
                --pid-dir "$work/cluster" --save "$out" >/dev/null 2>&1 || echo "$label: a submit run failed" >&2
        done
        for rate in 250 1000; do
            "$bench" rate --rate "$rate" --duration-ms 5000 --pid-dir "$work/cluster" --save "$out" >/dev/null 2>&1 ||
                echo "$label: the $rate/s run failed" >&2
        done
        local losses closed
        losses=$(cat "$work"/cluster/node*.log | grep -c 'no majority has answered' || true)
        closed=$(cat "$work"/cluster/node*.log | grep -c 'closing worker streams' || true)
        printf '{"mode":"ab-logs","label":"%s","quorum_loss_lines":%s,"worker_streams_closed":%s}\n' \
            "$label" "$losses" "$closed" >>"$out"
    )
    python3 - "$label" "$round" "$out" <<'PY'
import json, sys
label, round_, path = sys.argv[1:]
subs, rates, logs = [], {}, {}
for line in open(path):
    r = json.loads(line)
    if r.get("mode") == "ab-logs":
        logs = r
    elif "submit_to_start" in r.get("latencies", {}):
        rates[round(r["ops_per_s"])] = r["latencies"]["submit_to_start"]
    else:
        subs.append(r)
ops = "/".join(f"{r['ops_per_s']:.0f}" for r in subs)
p99 = "/".join(f"{r['latencies']['ack']['p99_ms']:.0f}" for r in subs)
elections = sum(r.get("extra", {}).get("leader_elections", 0) for r in subs)
rate_text = "  ".join(f"{k}/s p50 {v['p50_ms']:.1f} p99 {v['p99_ms']:.1f} ms" for k, v in sorted(rates.items()))
print(f"{label} #{round_}: {subs[0]['clients'] if subs else '?'} clients {ops} submits/s (ack p99 {p99} ms), elections {elections:.0f}, "
      f"quorum-loss lines {logs.get('quorum_loss_lines')}, streams closed {logs.get('worker_streams_closed')}; "
      f"submit→start {rate_text}")
PY
}

for round in $(seq "$ROUNDS"); do
    for build in "${BUILDS[@]}"; do
        one_run "${build%%=*}" "${build#*=}" "$round"
    done
done
