#!/usr/bin/env bash
# Runs the raftsched benchmark suite on this machine (method and results: BENCHMARKS.md).
#
# Usage: scripts/bench.sh [--short | --full | --soak [DURATION]] [--no-etcd] [--keep]
#
#   --short    (default) a few minutes: 2 s runs, 3 repeats, 5 failover trials
#   --full     5 s runs, 5 repeats, bigger end-to-end runs, 20 failover trials
#   --soak     only the soak: 1,000 no-op tasks/s for DURATION (default 30m; 90s, 2h...)
#              with a 2 min queue retention, on a fresh cluster; extra flags for
#              `raftsched-bench soak` in RAFTSCHED_SOAK_ARGS (e.g. "--rate 500 --retention 5m")
#   --no-etcd  skip the etcd comparison even when etcd is installed
#   --keep     keep the temporary directory (data dirs, logs, raw results)
#
# It starts a fresh three-node cluster with two shell workers in a temporary directory, on
# its own ports (RAFTSCHED_BENCH_PORT_BASE, default 31051), runs `raftsched-bench` against
# it, and — when `etcd` is installed (Debian: apt-get install etcd-server etcd-client) — a
# three-member etcd on loopback (RAFTSCHED_BENCH_ETCD_PORT_BASE, default 31379), measured
# with the same client counts and payload size. Nothing is ever run without fsync or
# replication. Everything it started is stopped on exit.
#
# Results: bench/results/<date>-<mode>.json (every result, the targets, the etcd ratios, the
# machine) and .txt (the same as tables); the soak writes bench/results/<date>-soak.{json,csv,png}.
#
# Environment: RAFTSCHED_BIN (binary to use instead of building one), the two port bases.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
MODE=short
USE_ETCD=1
KEEP=0
SOAK_DURATION=30m
while (($#)); do
    arg=$1
    shift
    case $arg in
        --short) MODE=short ;;
        --full) MODE=full ;;
        --soak)
            MODE=soak
            # An optional duration (humantime: 90s, 30m, 2h); checked by raftsched-bench.
            if (($#)) && [[ $1 =~ ^[0-9] ]]; then
                SOAK_DURATION=$1
                shift
            fi
            ;;
        --no-etcd) USE_ETCD=0 ;;
        --keep) KEEP=1 ;;
        -h | --help)
            sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench.sh: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done

# Below Linux's ephemeral range (32768-60999): the load generator's own connections
# cannot take these ports.
PORT_BASE=${RAFTSCHED_BENCH_PORT_BASE:-31051}
ETCD_PORT_BASE=${RAFTSCHED_BENCH_ETCD_PORT_BASE:-31379}
for p in "$PORT_BASE" "$ETCD_PORT_BASE"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1024 || p > 65000)); then
        echo "bench.sh: port bases must be numbers in 1024..65000, got '$p'" >&2
        exit 2
    fi
done
# Fails early if another program uses one of the ports (listening or connected).
check_ports_free() {
    local p
    command -v ss >/dev/null || return 0
    for p in "$@"; do
        if [[ -n $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then
            echo "bench.sh: port $p is in use; choose other ports with RAFTSCHED_BENCH_PORT_BASE / RAFTSCHED_BENCH_ETCD_PORT_BASE" >&2
            exit 1
        fi
    done
}
check_ports_free "$PORT_BASE" $((PORT_BASE + 1)) $((PORT_BASE + 2))
# The nodes' HTTP ports (/metrics), clear of a development cluster's 8081-8083.
HTTP_PORT_BASE=$((PORT_BASE + 200))
check_ports_free "$HTTP_PORT_BASE" $((HTTP_PORT_BASE + 1)) $((HTTP_PORT_BASE + 2))

# --- Settings per mode ---------------------------------------------------------------------------

CLIENTS=1,10,100,1000
PAYLOAD=64
if [[ $MODE == soak ]]; then
    # The soak measures one steady load alone: no etcd, no other phase before it.
    USE_ETCD=0
elif [[ $MODE == short ]]; then
    DURATION_MS=2000 WARMUP_MS=500 REPEAT=3
    E2E_TASKS=5000 E2E_BATCH_TASKS=20000 E2E_COMMAND_TASKS=1000
    RATES="250 1000" RATE_DURATION_MS=5000
    FAILOVER_TRIALS=5
    RESTART_NODES="follower"
else
    DURATION_MS=5000 WARMUP_MS=1000 REPEAT=5
    E2E_TASKS=20000 E2E_BATCH_TASKS=100000 E2E_COMMAND_TASKS=3000
    RATES="250 1000 2000" RATE_DURATION_MS=15000
    FAILOVER_TRIALS=20
    RESTART_NODES="follower leader"
fi
FILL_TASKS=1000000
PHASE_TIMEOUT_S=900

# --- Work dir, binary, cleanup -------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftsched-bench.XXXXXX")
RAW="$WORK/results.jsonl"
NOTES=()
ETCD_PIDS=()

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

cleanup() {
    local status=$? pid
    set +e
    if [[ -d $WORK/cluster ]]; then
        log "stopping the raftsched cluster"
        "$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1
    fi
    for pid in "${ETCD_PIDS[@]}"; do
        # Only the etcd processes this run started (their command line names our work dir).
        if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$WORK/"; then
            kill -TERM "$pid" 2>/dev/null
        fi
    done
    for pid in "${ETCD_PIDS[@]}"; do
        for _ in $(seq 50); do
            [[ -e /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -e /proc/$pid ]] && tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$WORK/"; then
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    if ((KEEP)); then
        log "kept $WORK"
    else
        rm -rf -- "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${RAFTSCHED_BIN:-} ]]; then
    [[ -x $RAFTSCHED_BIN ]] || { echo "bench.sh: RAFTSCHED_BIN=$RAFTSCHED_BIN is not executable" >&2; exit 1; }
    BENCH_SRC=${RAFTSCHED_BENCH_BIN:-$(dirname -- "$RAFTSCHED_BIN")/raftsched-bench}
    [[ -x $BENCH_SRC ]] || { echo "bench.sh: no raftsched-bench beside RAFTSCHED_BIN; set RAFTSCHED_BENCH_BIN" >&2; exit 1; }
    cp -- "$RAFTSCHED_BIN" "$WORK/raftsched"
    cp -- "$BENCH_SRC" "$WORK/raftsched-bench"
else
    log "building raftsched and raftsched-bench (release)"
    (cd -- "$ROOT" && cargo build --release --quiet --bin raftsched --bin raftsched-bench)
    cp -- "${CARGO_TARGET_DIR:-$ROOT/target}/release/raftsched" "$WORK/raftsched"
    cp -- "${CARGO_TARGET_DIR:-$ROOT/target}/release/raftsched-bench" "$WORK/raftsched-bench"
fi
# Private copies: a rebuild during the run cannot change what is measured.
BIN="$WORK/raftsched"
BENCH_BIN="$WORK/raftsched-bench"

export RAFTSCHED_BIN="$BIN"
export RAFTSCHED_DATA="$WORK/cluster"
export RAFTSCHED_PORT_BASE="$PORT_BASE"
export RAFTSCHED_HTTP_PORT_BASE="$HTTP_PORT_BASE"
export RAFTSCHED_WORKERS=2
export RAFTSCHED_WORKER_SLOTS=4
export RAFTSCHED_CLUSTER="127.0.0.1:$PORT_BASE,127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2))"
# The credentials cluster.sh creates on its first start; RAFTSCHED_INSECURE=1: plaintext.
if [[ ${RAFTSCHED_INSECURE:-0} != 1 ]]; then
    export RAFTSCHED_TLS_DIR="$RAFTSCHED_DATA/certs"
    unset RAFTSCHED_TLS_IDENTITY RAFTSCHED_TLS_SERVER_NAME
fi
CLUSTER_SH="$ROOT/scripts/cluster.sh"

# Runs one benchmark phase, bounded in time; a failure is noted and the suite goes on.
phase() {
    local name=$1
    shift
    log "phase $name"
    if ! timeout "$PHASE_TIMEOUT_S" "$BENCH_BIN" "$@"; then
        log "phase $name FAILED"
        NOTES+=("phase $name failed (see the log above)")
    fi
}

# Every node of the cluster runs (a node may have been killed by a failover trial that did
# not finish); restarts any that does not, and says so in the report.
ensure_cluster() {
    local n pid missing=()
    for n in 1 2 3; do
        pid=$(cat "$RAFTSCHED_DATA/node$n.pid" 2>/dev/null || true)
        if [[ -z $pid ]] || ! tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$RAFTSCHED_DATA/node$n"; then
            missing+=("$n")
        fi
    done
    if ((${#missing[@]})); then
        log "nodes not running before phase $1: ${missing[*]}; starting them"
        NOTES+=("nodes ${missing[*]} were not running before phase $1 and were restarted")
        "$CLUSTER_SH" start >/dev/null
    fi
}

rs() { "$BIN" "$@"; }

# Replaces the cluster with a brand-new one (empty data dirs), so a phase does not inherit
# what earlier phases left behind.
fresh_cluster() {
    log "replacing the cluster with a fresh one for phase $1"
    "$CLUSTER_SH" clean >/dev/null 2>&1 || true
    "$CLUSTER_SH" start >"$WORK/cluster-start.log" 2>&1 || {
        cat "$WORK/cluster-start.log" >&2
        exit 1
    }
}

# --- Machine --------------------------------------------------------------------------------------

NOTES+=("mode: $MODE; raftsched $(rs --version | awk '{print $2}'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')")
NOTES+=("disk: $(df -hT "$WORK" | awk 'NR == 2 { print $1, $2, $3 " total" }')")
# One 4 KiB write + fsync (O_DSYNC) at a time: the floor under any durable commit here.
dd_out=$(LC_ALL=C dd if=/dev/zero of="$WORK/fsync-probe" bs=4k count=300 oflag=dsync 2>&1 | tail -n 1 || true)
rm -f -- "$WORK/fsync-probe"
secs=$(sed -n 's/.*copied, \([0-9.]*\) s,.*/\1/p' <<<"$dd_out")
if [[ $secs =~ ^[0-9.]+$ ]]; then
    NOTES+=("fsync probe: 300 x (4 KiB write + O_DSYNC) took ${secs} s, $(awk -v s="$secs" 'BEGIN { printf "%.2f", s * 1000 / 300 }') ms each")
fi
# The machine is shared (builds, other programs): wait a little for it to calm down, and
# say how busy it was. Each result also reports the CPU that other processes used during it.
for _ in $(seq 60); do
    awk '{ exit !($1 < 1.0) }' /proc/loadavg && break
    sleep 3
done
NOTES+=("load average at start: $(cut -d' ' -f1-3 /proc/loadavg)")
log "results will be in bench/results/; work dir $WORK"

# --- etcd ---------------------------------------------------------------------------------------

if ((USE_ETCD)) && command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
    check_ports_free $(seq "$ETCD_PORT_BASE" $((ETCD_PORT_BASE + 5)))
    mkdir -p "$WORK/etcd"
    initial=""
    endpoints=""
    for i in 1 2 3; do
        initial+="${initial:+,}e$i=http://127.0.0.1:$((ETCD_PORT_BASE + 2 * i - 1))"
        endpoints+="${endpoints:+,}127.0.0.1:$((ETCD_PORT_BASE + 2 * i - 2))"
    done
    for i in 1 2 3; do
        client_port=$((ETCD_PORT_BASE + 2 * i - 2))
        peer_port=$((ETCD_PORT_BASE + 2 * i - 1))
        # Default durability: the WAL is fsynced before a put is acknowledged.
        etcd --name "e$i" --data-dir "$WORK/etcd/etcd$i" \
            --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
            --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-cluster "$initial" --initial-cluster-token "bench-$$" --initial-cluster-state new \
            </dev/null >"$WORK/etcd/etcd$i.log" 2>&1 &
        ETCD_PIDS+=("$!")
        echo "$!" >"$WORK/etcd/etcd$i.pid"
    done
    log "etcd $(etcd --version | awk '/etcd Version/ { print $3 }') starting on $endpoints"
    ready=0
    for _ in $(seq 100); do
        if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --command-timeout=2s endpoint health >/dev/null 2>&1; then
            ready=1
            break
        fi
        for pid in "${ETCD_PIDS[@]}"; do
            [[ -e /proc/$pid ]] || break 2
        done
        sleep 0.2
    done
    if ((ready)); then
        NOTES+=("etcd $(etcd --version | awk '/etcd Version/ { print $3 }'): 3 members on loopback, default settings (fsync on), puts sent to the leader over gRPC by the same load generator")
        phase etcd-put etcd --endpoints "$endpoints" --clients "$CLIENTS" --duration-ms "$DURATION_MS" \
            --warmup-ms "$WARMUP_MS" --repeat "$REPEAT" --payload-bytes "$PAYLOAD" --pid-dir "$WORK/etcd" --save "$RAW"
    else
        log "etcd did not become healthy; skipping it (see $WORK/etcd/*.log)"
        NOTES+=("etcd was installed but did not become healthy: no comparison")
    fi
    # Stopped before raftsched runs: the two never share the machine.
    for pid in "${ETCD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${ETCD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ETCD_PIDS=()
else
    if ((USE_ETCD)); then
        log "etcd is not installed: no comparison (Debian: apt-get install etcd-server etcd-client)"
        NOTES+=("etcd not installed: no comparison")
    fi
fi

# --- soak ---------------------------------------------------------------------------------------

if [[ $MODE == soak ]]; then
    # The no-op workers run inside the load generator; shell workers would only add noise.
    export RAFTSCHED_WORKERS=0
    log "starting a fresh raftsched cluster on ports $PORT_BASE-$((PORT_BASE + 2)) for a $SOAK_DURATION soak"
    "$CLUSTER_SH" start >"$WORK/cluster-start.log" 2>&1 || {
        cat "$WORK/cluster-start.log" >&2
        exit 1
    }
    mkdir -p "$ROOT/bench/results"
    printf '%s\n' "${NOTES[@]}" >&2
    # shellcheck disable=SC2086 # RAFTSCHED_SOAK_ARGS is a list of flags, split on purpose.
    "$BENCH_BIN" soak --duration "$SOAK_DURATION" --pid-dir "$RAFTSCHED_DATA" \
        --save "$ROOT/bench/results/soak-summaries.jsonl" \
        --out-dir "$ROOT/bench/results" ${RAFTSCHED_SOAK_ARGS:-}
    exit 0
fi

# --- raftsched ----------------------------------------------------------------------------------

log "starting a fresh raftsched cluster on ports $PORT_BASE-$((PORT_BASE + 2)) with 2 workers"
"$CLUSTER_SH" start >"$WORK/cluster-start.log" 2>&1 || {
    cat "$WORK/cluster-start.log" >&2
    exit 1
}

COMMON=(--pid-dir "$RAFTSCHED_DATA" --save "$RAW")

ensure_cluster submit
phase submit submit --clients "$CLIENTS" --duration-ms "$DURATION_MS" --warmup-ms "$WARMUP_MS" \
    --repeat "$REPEAT" --payload-bytes "$PAYLOAD" "${COMMON[@]}"
# The cost of TLS: the same submit runs on a plaintext cluster (RAFTSCHED_INSECURE=1),
# reported beside the TLS ones (TLS COST); then a TLS cluster again for everything else.
RAFTSCHED_INSECURE=1 fresh_cluster submit-plaintext
RAFTSCHED_INSECURE=1 phase submit-plaintext submit --clients "$CLIENTS" --duration-ms "$DURATION_MS" \
    --warmup-ms "$WARMUP_MS" --repeat "$REPEAT" --payload-bytes "$PAYLOAD" "${COMMON[@]}"
fresh_cluster submit-batch
phase submit-batch submit --clients 10,100 --batch 100 --duration-ms "$DURATION_MS" \
    --warmup-ms "$WARMUP_MS" --repeat "$REPEAT" --payload-bytes "$PAYLOAD" "${COMMON[@]}"
ensure_cluster e2e
phase e2e e2e --tasks "$E2E_TASKS" --clients 100 "${COMMON[@]}"
phase e2e-batch e2e --tasks "$E2E_BATCH_TASKS" --clients 10 --batch 100 "${COMMON[@]}"
phase e2e-command e2e --command --tasks "$E2E_COMMAND_TASKS" --clients 10 "${COMMON[@]}"
for rate in $RATES; do
    ensure_cluster "rate-$rate"
    phase "rate-$rate" rate --rate "$rate" --duration-ms "$RATE_DURATION_MS" "${COMMON[@]}"
done
fresh_cluster failover
phase failover failover --trials "$FAILOVER_TRIALS" --cluster-script "$CLUSTER_SH" "${COMMON[@]}"
# A fresh cluster: the restart measures a node holding the million tasks and little else.
# A million is also the nodes' default cap on live tasks (cluster-wide and per namespace), and
# each restart phase submits one marker task on top: the fill's cluster gets room for them
# (exported, so a node the restart phase starts again keeps the same caps).
export RAFTSCHED_MAX_LIVE_TASKS=$((FILL_TASKS + 1000)) RAFTSCHED_MAX_LIVE_TASKS_PER_NAMESPACE=$((FILL_TASKS + 1000))
fresh_cluster fill
phase fill fill --tasks "$FILL_TASKS" --payload-bytes "$PAYLOAD" "${COMMON[@]}"
for node in $RESTART_NODES; do
    ensure_cluster "restart-$node"
    phase "restart-$node" restart --node "$node" --cluster-script "$CLUSTER_SH" "${COMMON[@]}"
done

# --- Report -------------------------------------------------------------------------------------

mkdir -p "$ROOT/bench/results"
name="$(date -u +%Y-%m-%d-%H%M)-$MODE"
note_args=()
for note in "${NOTES[@]}"; do note_args+=(--note "$note"); done
"$BENCH_BIN" report --input "$RAW" --out-json "$ROOT/bench/results/$name.json" "${note_args[@]}" \
    | tee "$ROOT/bench/results/$name.txt"
log "wrote bench/results/$name.json and bench/results/$name.txt"
