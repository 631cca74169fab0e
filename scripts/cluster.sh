#!/usr/bin/env bash
# Runs a local three-node raftsched cluster on 127.0.0.1, and workers for it, for development,
# demos and tests.
#
# Usage: scripts/cluster.sh COMMAND [ARGS]   (scripts/cluster.sh help for the list)
#
# Environment:
#   RAFTSCHED_PORT_BASE        client port of node 1; nodes 2 and 3 use the next two (default 50051)
#   RAFTSCHED_PEER_PORT_BASE   peer (Raft) port of node 1, likewise (default: RAFTSCHED_PORT_BASE
#                              + 100, the node's own default: 50151)
#   RAFTSCHED_HTTP_PORT_BASE   HTTP port of node 1 (/healthz, /readyz, /metrics), likewise
#                              (default 8081)
#   RAFTSCHED_DATA             data, logs and pid files (default: data/ in the repository)
#   RAFTSCHED_BIN              raftsched binary to run; when set, nothing is built
#   RAFTSCHED_BUILD_PROFILE    cargo profile to build and run: release (default) or debug
#   RAFTSCHED_WORKERS          workers `start` runs (default 2; 0 for none)
#   RAFTSCHED_WORKER_SLOTS     attempts each worker runs at once (default 4)
#   RAFTSCHED_WORKER_LEASE_MS  a worker not heard from for this long loses its attempts (default 5000)
#   RAFTSCHED_WORKER_DRAIN_MS  on stop, how long a worker may finish running attempts before it
#                              hands them back (default 10000)
#   RAFTSCHED_INSECURE         1: plaintext, no credentials (every node warns that anyone who reaches
#                              a port may make any call). Default: mutual TLS with the credentials
#                              `raftsched certs init` creates in $RAFTSCHED_DATA/certs on the first start
#   RAFTSCHED_MAX_LIVE_TASKS, RAFTSCHED_MAX_LIVE_TASKS_PER_NAMESPACE, RAFTSCHED_MAX_STATE_BYTES,
#   RAFTSCHED_MEMORY_HIGH_WATER, RAFTSCHED_DATA_DIR_HIGH_WATER
#                              when set, passed to every node as --max-live-tasks,
#                              --max-live-tasks-per-namespace, --max-state-bytes,
#                              --memory-high-water, --data-dir-high-water
#                              (sizes like 2GiB; unset: the node's defaults)
#
# Layout of $RAFTSCHED_DATA: cluster-id (generated on the first start, reused after),
# certs/ (the cluster's CA and credentials: node-1..3, admin, client, reader, prometheus, workerN),
# node1/ node2/ node3/ (data dirs), node1.log ... (each node's stderr), node1.pid ...,
# worker1.log worker1.pid ... (worker N runs as id workerN with label worker=N).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
PORT_BASE=${RAFTSCHED_PORT_BASE:-50051}
PEER_PORT_BASE=${RAFTSCHED_PEER_PORT_BASE:-$((PORT_BASE + 100))}
HTTP_PORT_BASE=${RAFTSCHED_HTTP_PORT_BASE:-8081}
DATA=$(realpath -m -- "${RAFTSCHED_DATA:-$ROOT/data}")
PROFILE=${RAFTSCHED_BUILD_PROFILE:-release}
WORKERS=${RAFTSCHED_WORKERS:-2}
WORKER_SLOTS=${RAFTSCHED_WORKER_SLOTS:-4}
WORKER_LEASE_MS=${RAFTSCHED_WORKER_LEASE_MS:-5000}
WORKER_DRAIN_MS=${RAFTSCHED_WORKER_DRAIN_MS:-10000}
INSECURE=${RAFTSCHED_INSECURE:-0}
NODES=(1 2 3)
START_TIMEOUT_S=30
STOP_TIMEOUT_S=10
# A stopping worker first tells the leader (up to 5 s), then drains, stops what still runs
# (SIGTERM, SIGKILL after the kill grace: 3 s by default), then reports what it handed back
# (up to 5 s): its drain time plus this margin (5 + 3 + 5, and 2 s of slack) before it is
# killed. A kill grace above 3 s (RAFTSCHED_WORKER_KILL_GRACE) eats into the slack.
WORKER_STOP_MARGIN_S=15
# Bounds one client call in a poll loop (the client itself retries for up to 15 s; one
# attempt on an unresponsive node may take 5 s before it moves on to the next node).
CLIENT_TIMEOUT_S=10

usage() {
    cat <<EOF
Usage: scripts/cluster.sh COMMAND [ARGS]

A three-node raftsched cluster on 127.0.0.1, client ports ${PORT_BASE}-$((PORT_BASE + 2)), peer ports
${PEER_PORT_BASE}-$((PEER_PORT_BASE + 2)), HTTP ports ${HTTP_PORT_BASE}-$((HTTP_PORT_BASE + 2)), data in ${DATA},
and ${WORKERS} worker(s) for it (worker N has id workerN and label worker=N).

Commands:
  start              build (unless RAFTSCHED_BIN is set), start the nodes that are not
                     running, wait until all three agree on a leader, then start the workers
                     that are not running and wait until they are connected
  stop               stop every worker (SIGTERM: it drains; SIGKILL after the drain time
                     + ${WORKER_STOP_MARGIN_S} s), then every node (SIGTERM, then SIGKILL after ${STOP_TIMEOUT_S} s)
  status             which nodes and workers run, the cluster's status and its workers
  logs N [-f]        the last 100 lines of node N's log (-f: follow it)
  logs workerN [-f]  the same for worker N
  kill N             SIGKILL node N
  pause N            SIGSTOP node N (it stops answering, as if partitioned)
  resume N           SIGCONT node N
  restart N          stop node N and start it again on the same data dir
  kill-worker N      SIGKILL worker N and the commands it runs (as if its machine died);
                     the leader hands its attempts to other workers once its lease expires
  restart-worker N   stop worker N (it drains) and start it again
  leader             print the number of the current leader node
  backup FILE        save a consistent snapshot of the whole state from the leader to FILE
  restore FILE       seed new data dirs for all three nodes from a snapshot FILE (every node
                     stopped and its data dir absent: remove ${DATA}/node1..3 first); then
                     \`start\` runs the restored cluster
  env                print the exports that point raftsched at this cluster:
                     eval "\$(scripts/cluster.sh env)"
  clean              stop, then remove the data dir
  help               this text

Environment: RAFTSCHED_PORT_BASE (default 50051), RAFTSCHED_PEER_PORT_BASE (default: port base
+ 100), RAFTSCHED_HTTP_PORT_BASE (default 8081), RAFTSCHED_DATA (default <repo>/data),
RAFTSCHED_BIN (binary to use; no build), RAFTSCHED_BUILD_PROFILE (release or debug),
RAFTSCHED_WORKERS (workers to start, default 2; 0 for none), RAFTSCHED_WORKER_SLOTS (default 4),
RAFTSCHED_WORKER_LEASE_MS (default 5000), RAFTSCHED_WORKER_DRAIN_MS (default 10000),
RAFTSCHED_INSECURE (1: plaintext without credentials; default: mutual TLS, credentials in
${DATA}/certs).
EOF
}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# --- Addresses and files ---------------------------------------------------------------------

port_of() { echo $((PORT_BASE + $1 - 1)); }
addr_of() { echo "127.0.0.1:$(port_of "$1")"; }
peer_addr_of() { echo "127.0.0.1:$((PEER_PORT_BASE + $1 - 1))"; }
http_addr_of() { echo "127.0.0.1:$((HTTP_PORT_BASE + $1 - 1))"; }
# The URL of node N's HTTP port (https unless plaintext).
http_url_of() {
    if ((INSECURE)); then echo "http://$(http_addr_of "$1")"; else echo "https://$(http_addr_of "$1")"; fi
}
pid_file() { echo "$DATA/node$1.pid"; }
log_file() { echo "$DATA/node$1.log"; }
data_dir() { echo "$DATA/node$1"; }
worker_id() { echo "worker$1"; }
worker_pid_file() { echo "$DATA/worker$1.pid"; }
worker_log_file() { echo "$DATA/worker$1.log"; }
certs_dir() { echo "$DATA/certs"; }

# host:port,host:port,host:port — what RAFTSCHED_CLUSTER should be.
cluster_addrs() {
    local n addrs=()
    for n in "${NODES[@]}"; do addrs+=("$(addr_of "$n")"); done
    (IFS=,; echo "${addrs[*]}")
}

# 1=host:port/peer_port,2=... — the founding members, client and peer ports.
initial_members() {
    local n members=()
    for n in "${NODES[@]}"; do members+=("$n=$(addr_of "$n")/$((PEER_PORT_BASE + n - 1))"); done
    (IFS=,; echo "${members[*]}")
}

check_node_arg() {
    [[ ${1:-} =~ ^[1-3]$ ]] || die "expected a node number (1, 2 or 3), got '${1:-}'"
}

check_worker_arg() {
    [[ ${1:-} =~ ^[1-9][0-9]{0,2}$ ]] || die "expected a worker number (1, 2, ...), got '${1:-}'"
}

check_settings() {
    if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || ((PORT_BASE < 1 || PORT_BASE > 65533)); then
        die "RAFTSCHED_PORT_BASE must be a port number up to 65533, got '$PORT_BASE'"
    fi
    if ! [[ $HTTP_PORT_BASE =~ ^[0-9]{1,5}$ ]] || ((HTTP_PORT_BASE < 1 || HTTP_PORT_BASE > 65533)); then
        die "RAFTSCHED_HTTP_PORT_BASE must be a port number up to 65533, got '$HTTP_PORT_BASE'"
    fi
    [[ $WORKERS =~ ^[0-9]{1,3}$ ]] || die "RAFTSCHED_WORKERS must be a number of workers (0 or more), got '$WORKERS'"
    [[ $WORKER_SLOTS =~ ^[1-9][0-9]{0,5}$ ]] \
        || die "RAFTSCHED_WORKER_SLOTS must be a number of slots (1 or more), got '$WORKER_SLOTS'"
    [[ $WORKER_LEASE_MS =~ ^[0-9]{1,9}$ ]] \
        || die "RAFTSCHED_WORKER_LEASE_MS must be milliseconds, got '$WORKER_LEASE_MS'"
    [[ $WORKER_DRAIN_MS =~ ^[0-9]{1,9}$ ]] \
        || die "RAFTSCHED_WORKER_DRAIN_MS must be milliseconds, got '$WORKER_DRAIN_MS'"
    [[ $INSECURE =~ ^[01]$ ]] || die "RAFTSCHED_INSECURE must be 1 (plaintext) or 0 (mutual TLS), got '$INSECURE'"
}

# Every raftsched this script runs finds its credentials in $DATA/certs (or runs plaintext
# with RAFTSCHED_INSECURE=1): nodes as node-<id>, workers as their id, the rest as admin. An
# identity or server name from the caller's environment is not this cluster's.
setup_tls() {
    unset RAFTSCHED_TLS_IDENTITY RAFTSCHED_TLS_SERVER_NAME
    if ((INSECURE)); then
        unset RAFTSCHED_TLS_DIR
        export RAFTSCHED_INSECURE=1
    else
        export RAFTSCHED_TLS_DIR
        RAFTSCHED_TLS_DIR=$(certs_dir)
        unset RAFTSCHED_INSECURE
    fi
}

# Creates the cluster's CA and credentials on the first start, and a credential for each of
# the given workers that has none yet (a worker beyond those of the first start).
ensure_credentials() {
    local bin=$1 dir n name out
    shift
    ((INSECURE)) && return 0
    dir=$(certs_dir)
    if [[ ! -e $dir/ca.crt ]]; then
        mkdir -p -- "$DATA"
        out=$("$bin" certs init --dir "$dir" --nodes 1,2,3 2>&1) \
            || die "cannot create the credentials in $dir: $out"
        echo "credentials created in $dir (CA, node-1..3, admin, client, reader, prometheus, worker1, worker2, console.token)"
    fi
    if [[ ! -e $dir/console.token ]]; then
        # A credentials dir from before the web console: give it the console's token.
        out=$("$bin" certs console-token --dir "$dir" 2>&1) \
            || die "cannot write the console token in $dir: $out"
        echo "console token written to $dir/console.token"
    fi
    for n in "$@"; do
        name=$(worker_id "$n")
        [[ -e $dir/$name.crt ]] && continue
        out=$("$bin" certs issue --dir "$dir" --role worker --name "$name" 2>&1) \
            || die "cannot issue a credential for $name in $dir: $out"
        echo "credential issued for $name"
    done
}

# The cluster id, generated on the first start and kept in $DATA/cluster-id.
cluster_id() {
    local file="$DATA/cluster-id" id
    if [[ ! -s $file ]]; then
        mkdir -p -- "$DATA"
        if [[ -r /proc/sys/kernel/random/uuid ]]; then
            id=$(</proc/sys/kernel/random/uuid)
        else
            id="local-$(date +%s)-$$-$RANDOM"
        fi
        echo "$id" >"$file.tmp"
        mv -- "$file.tmp" "$file"
    fi
    id=$(<"$file")
    [[ -n $id ]] || die "$file is empty"
    echo "$id"
}

# --- Processes -------------------------------------------------------------------------------

# The state letter of a process (R, S, T, Z, ...), or nothing if it does not exist.
proc_state() {
    local line rest
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 0
    rest=${line##*) }
    echo "${rest%% *}"
}

# The pid in pid file $1 if that process is alive. A zombie is dead: nothing may reap it soon
# (the nodes and workers are orphans, and PID 1 of a container may not reap).
live_pid_in() {
    local file=$1 pid state
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    if [[ -e /proc/self/stat ]]; then
        state=$(proc_state "$pid")
        [[ -n $state && $state != Z && $state != X ]] || return 1
    else
        kill -0 "$pid" 2>/dev/null || return 1
    fi
    echo "$pid"
}

# The pid in node N's pid file if that process is alive (see live_pid_in).
pid_file_alive() { live_pid_in "$(pid_file "$1")"; }

# The pid of node N if it runs (paused counts as running): the pid file names a live process
# whose command line has this node's data dir (not some other process that got the pid).
node_pid() {
    local pid
    pid=$(pid_file_alive "$1") || return 1
    if [[ -e /proc/self/cmdline ]]; then
        tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -- "$(data_dir "$1")" || return 1
    fi
    echo "$pid"
}

# The pid of worker N if it runs: the pid file names a live process whose command line has
# this worker's id and, where its environment is readable, whose RAFTSCHED_CLUSTER is this
# cluster's (another cluster's workerN does not count).
worker_pid() {
    local pid
    pid=$(live_pid_in "$(worker_pid_file "$1")") || return 1
    if [[ -e /proc/self/cmdline ]]; then
        tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -- "$(worker_id "$1")" || return 1
        if [[ -r /proc/$pid/environ ]]; then
            tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" \
                | grep -qxF -- "RAFTSCHED_CLUSTER=$(cluster_addrs)" || return 1
        fi
    fi
    echo "$pid"
}

# The pid of member N of KIND (node or worker) if it runs.
member_pid() {
    case $1 in
        node) node_pid "$2" ;;
        worker) worker_pid "$2" ;;
        *) die "unknown kind '$1'" ;;
    esac
}

member_pid_file() {
    case $1 in
        node) pid_file "$2" ;;
        worker) worker_pid_file "$2" ;;
        *) die "unknown kind '$1'" ;;
    esac
}

member_paused() {
    local pid
    pid=$(member_pid "$1" "$2") || return 1
    [[ $(proc_state "$pid") == T ]]
}

node_paused() { member_paused node "$1"; }

# The process groups that the children of process $1 lead: the commands a worker runs (each
# in its own group). Linux only; prints nothing elsewhere.
child_groups() {
    local parent=$1 stat line rest fields pid
    [[ -d /proc/self ]] || return 0
    for stat in /proc/[0-9]*/stat; do
        { read -r line <"$stat"; } 2>/dev/null || continue
        rest=${line##*) }
        read -r -a fields <<<"$rest"
        # fields: state ppid pgrp ...
        pid=${stat#/proc/}
        pid=${pid%/stat}
        if [[ ${fields[1]:-} == "$parent" && ${fields[2]:-} == "$pid" ]]; then
            echo "$pid"
        fi
    done
}

# SIGKILLs process $1 and the process groups its children lead.
kill_with_commands() {
    local pid=$1 groups group
    groups=$(child_groups "$pid")
    kill -KILL "$pid" 2>/dev/null || true
    for group in $groups; do
        kill -KILL -- "-$group" 2>/dev/null || true
    done
}

# Sleeps 0.2 s; the one pause between polls.
tick() { sleep 0.2; }

# Waits until none of the given members of KIND runs, at most TIMEOUT seconds; returns 1 on
# timeout. Usage: wait_gone_kind KIND TIMEOUT N...
wait_gone_kind() {
    local kind=$1 timeout=$2 n running
    shift 2
    local deadline=$((SECONDS + timeout))
    while :; do
        running=0
        for n in "$@"; do
            if member_pid "$kind" "$n" >/dev/null; then running=1; fi
        done
        ((running)) || return 0
        ((SECONDS < deadline)) || return 1
        tick
    done
}

# Waits until none of the given nodes runs, at most $1 seconds; returns 1 on timeout.
wait_gone() {
    local timeout=$1
    shift
    wait_gone_kind node "$timeout" "$@"
}

# Stops the given members of KIND: SIGTERM (and SIGCONT, so a paused one handles it), then
# SIGKILL whatever still runs after TIMEOUT seconds (a worker with the commands it runs).
# Usage: stop_members KIND TIMEOUT N...
stop_members() {
    local kind=$1 timeout=$2 n pid stopping=()
    shift 2
    for n in "$@"; do
        if pid=$(member_pid "$kind" "$n"); then
            kill -TERM "$pid" 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true
            stopping+=("$n")
        else
            rm -f -- "$(member_pid_file "$kind" "$n")"
        fi
    done
    ((${#stopping[@]})) || return 0
    if ! wait_gone_kind "$kind" "$timeout" "${stopping[@]}"; then
        for n in "${stopping[@]}"; do
            if pid=$(member_pid "$kind" "$n"); then
                echo "$kind $n did not stop within ${timeout} s; killing it (pid $pid)" >&2
                if [[ $kind == worker ]]; then
                    kill_with_commands "$pid"
                else
                    kill -KILL "$pid" 2>/dev/null || true
                fi
            fi
        done
        wait_gone_kind "$kind" 5 "${stopping[@]}" || die "${kind}s still running after SIGKILL: ${stopping[*]}"
    fi
    for n in "${stopping[@]}"; do
        rm -f -- "$(member_pid_file "$kind" "$n")"
        echo "$kind $n stopped"
    done
}

stop_nodes() { stop_members node "$STOP_TIMEOUT_S" "$@"; }

# A worker's drain time (rounded up to seconds) plus the margin.
worker_stop_timeout() { echo $(((WORKER_DRAIN_MS + 999) / 1000 + WORKER_STOP_MARGIN_S)); }

stop_workers() { stop_members worker "$(worker_stop_timeout)" "$@"; }

# The numbers of the workers this script knows of: 1..RAFTSCHED_WORKERS, and any other with a
# pid file (started with a larger RAFTSCHED_WORKERS, or by restart-worker), one a line.
known_workers() {
    local i file n
    {
        for ((i = 1; i <= WORKERS; i++)); do echo "$i"; done
        for file in "$DATA"/worker*.pid; do
            [[ -e $file ]] || continue
            n=${file##*/worker}
            n=${n%.pid}
            if [[ $n =~ ^[1-9][0-9]*$ ]]; then echo "$n"; fi
        done
    } | sort -nu
}

# --- The binary ------------------------------------------------------------------------------

cargo_profile_flags() {
    case $PROFILE in
        release) echo "--release" ;;
        debug | dev) echo "" ;;
        *) echo "--profile=$PROFILE" ;;
    esac
}

# Where cargo puts the binary of $PROFILE (unless the target dir is configured elsewhere).
default_bin_path() {
    local dir=$PROFILE
    [[ $dir == dev ]] && dir=debug
    echo "${CARGO_TARGET_DIR:-$ROOT/target}/$dir/raftsched"
}

# Builds the binary (unless RAFTSCHED_BIN is set) and prints its path.
build_bin() {
    if [[ -n ${RAFTSCHED_BIN:-} ]]; then
        [[ -x $RAFTSCHED_BIN ]] || die "RAFTSCHED_BIN=$RAFTSCHED_BIN is not an executable"
        echo "$RAFTSCHED_BIN"
        return
    fi
    command -v cargo >/dev/null || die "cargo not found; install Rust or set RAFTSCHED_BIN"
    local flags out bin
    flags=$(cargo_profile_flags)
    echo "building raftsched ($PROFILE)..." >&2
    # shellcheck disable=SC2086 # $flags is one flag or nothing
    out=$(cd -- "$ROOT" && cargo build $flags --quiet --bin raftsched --message-format=json-render-diagnostics) \
        || die "cargo build failed"
    bin=$(grep -o '"executable":"[^"]*"' <<<"$out" | tail -n 1 | sed 's/^"executable":"//; s/"$//' || true)
    [[ -n $bin ]] || bin=$(default_bin_path)
    [[ -x $bin ]] || die "built, but found no binary at $bin"
    echo "$bin"
}

# The binary for client calls: RAFTSCHED_BIN, else an existing build, else a fresh one.
client_bin() {
    local bin
    if [[ -z ${RAFTSCHED_BIN:-} ]]; then
        bin=$(default_bin_path)
        if [[ -x $bin ]]; then
            echo "$bin"
            return
        fi
    fi
    build_bin
}

# Runs a client command against this cluster, bounded by CLIENT_TIMEOUT_S.
client() {
    local bin=$1
    shift
    timeout "$CLIENT_TIMEOUT_S" "$bin" --cluster "$(cluster_addrs)" "$@"
}

# --- Cluster status --------------------------------------------------------------------------

# Reads `raftsched cluster status --json` and prints one line per member:
# NODE_ID ROLE LEADER_ID TERM. Plain bash: the JSON is pretty-printed, one field a line.
parse_members() {
    local line node="" role="" leader="" term=""
    # The API's JSON mapping: camelCase names, 64-bit integers as strings.
    local re_node='"nodeId": *"([0-9]+)"' re_role='"role": *"([a-z]*)"'
    local re_leader='"leaderId": *"([0-9]+)"' re_term='"term": *"([0-9]+)"' re_end='^[[:space:]]*\}'
    while IFS= read -r line; do
        if [[ $line =~ $re_node ]]; then
            node=${BASH_REMATCH[1]}
        elif [[ $line =~ $re_role ]]; then
            role=${BASH_REMATCH[1]}
        elif [[ $line =~ $re_leader ]]; then
            leader=${BASH_REMATCH[1]}
        elif [[ $line =~ $re_term ]]; then
            term=${BASH_REMATCH[1]}
        elif [[ $line =~ $re_end ]] && [[ -n $node ]]; then
            echo "$node ${role:-unknown} ${leader:-0} ${term:-0}"
            node="" role="" leader="" term=""
        fi
    done
}

# Prints the leader's id if all three members answer, name the same leader, and that member
# says it is the leader; returns 1 otherwise.
agreed_leader() {
    local bin=$1 json members node role leader term agreed="" count=0 confirmed=0
    json=$(client "$bin" --json cluster status 2>/dev/null) || return 1
    members=$(parse_members <<<"$json")
    while read -r node role leader term; do
        [[ -n $node ]] || continue
        count=$((count + 1))
        ((leader != 0)) || return 1
        [[ -z $agreed || $agreed == "$leader" ]] || return 1
        agreed=$leader
        if [[ $node == "$leader" && $role == leader ]]; then confirmed=1; fi
    done <<<"$members"
    ((count == ${#NODES[@]} && confirmed)) || return 1
    echo "$agreed"
}

# Prints the id of the member that says it is the leader, with the highest term if several
# do (a deposed leader may not know it yet); returns 1 if none does.
current_leader() {
    local bin=$1 json members node role leader term best="" best_term=-1
    json=$(client "$bin" --json cluster status 2>/dev/null) || return 1
    members=$(parse_members <<<"$json")
    while read -r node role leader term; do
        if [[ $role == leader ]] && ((term > best_term)); then
            best=$node
            best_term=$term
        fi
    done <<<"$members"
    [[ -n $best ]] || return 1
    echo "$best"
}

# Prints the ids of the workers the leader lists as connected, one a line; returns 1 if the
# cluster does not answer. The table of `worker list`: WORKER BUSY STATE HEARD LABELS, STATE
# being connected, draining or away.
connected_workers() {
    local bin=$1 table
    table=$(client "$bin" worker list 2>/dev/null) || return 1
    awk 'NR > 1 && $3 == "connected" { print $1 }' <<<"$table"
}

print_log_tails() {
    local n
    for n in "$@"; do
        echo "--- last lines of $(log_file "$n") ---" >&2
        tail -n 30 -- "$(log_file "$n")" >&2 2>/dev/null || echo "(no log)" >&2
    done
}

print_worker_log_tails() {
    local n
    for n in "$@"; do
        echo "--- last lines of $(worker_log_file "$n") ---" >&2
        tail -n 30 -- "$(worker_log_file "$n")" >&2 2>/dev/null || echo "(no log)" >&2
    done
}

# Fails (with the log) if one of the nodes started by this run has exited. (Not node_pid:
# a node just started may not have exec'd the binary yet, so its command line is not ours.)
check_started_alive() {
    local n
    for n in "$@"; do
        if ! pid_file_alive "$n" >/dev/null; then
            print_log_tails "$n"
            die "node $n exited during startup; see $(log_file "$n")"
        fi
    done
}

# The same for workers.
check_started_workers_alive() {
    local n
    for n in "$@"; do
        if ! live_pid_in "$(worker_pid_file "$n")" >/dev/null; then
            print_worker_log_tails "$n"
            die "worker $n exited during startup; see $(worker_log_file "$n")"
        fi
    done
}

# --- Commands --------------------------------------------------------------------------------

start_node() {
    local bin=$1 n=$2 cid=$3 log
    local quota_flags=()
    [[ -n ${RAFTSCHED_MAX_LIVE_TASKS:-} ]] && quota_flags+=(--max-live-tasks "$RAFTSCHED_MAX_LIVE_TASKS")
    [[ -n ${RAFTSCHED_MAX_LIVE_TASKS_PER_NAMESPACE:-} ]] &&
        quota_flags+=(--max-live-tasks-per-namespace "$RAFTSCHED_MAX_LIVE_TASKS_PER_NAMESPACE")
    [[ -n ${RAFTSCHED_MAX_STATE_BYTES:-} ]] && quota_flags+=(--max-state-bytes "$RAFTSCHED_MAX_STATE_BYTES")
    [[ -n ${RAFTSCHED_MEMORY_HIGH_WATER:-} ]] && quota_flags+=(--memory-high-water "$RAFTSCHED_MEMORY_HIGH_WATER")
    [[ -n ${RAFTSCHED_DATA_DIR_HIGH_WATER:-} ]] && quota_flags+=(--data-dir-high-water "$RAFTSCHED_DATA_DIR_HIGH_WATER")
    log=$(log_file "$n")
    mkdir -p -- "$DATA"
    echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh: starting node $n on $(addr_of "$n")" >>"$log"
    # set -m: the node gets its own process group, so a Ctrl-C at this script's terminal
    # does not reach it. NO_COLOR: plain text logs.
    (
        set -m
        NO_COLOR=1 nohup "$bin" node --id "$n" --listen "$(addr_of "$n")" --peer-listen "$(peer_addr_of "$n")" \
            --http-listen "$(http_addr_of "$n")" --data-dir "$(data_dir "$n")" --cluster-id "$cid" \
            --initial-members "$(initial_members)" "${quota_flags[@]}" </dev/null >>"$log" 2>&1 &
        echo "$!" >"$(pid_file "$n")"
    )
    echo "node $n started (pid $(<"$(pid_file "$n")"), $(addr_of "$n"), $(http_url_of "$n"), log $log)"
}

start_worker() {
    local bin=$1 n=$2 log
    log=$(worker_log_file "$n")
    mkdir -p -- "$DATA"
    echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh: starting worker $n ($(worker_id "$n"))" >>"$log"
    # Its own process group, like a node. It finds the leader through RAFTSCHED_CLUSTER.
    (
        set -m
        RAFTSCHED_CLUSTER=$(cluster_addrs) NO_COLOR=1 nohup "$bin" worker --id "$(worker_id "$n")" \
            --slots "$WORKER_SLOTS" --label "worker=$n" --lease-ms "$WORKER_LEASE_MS" \
            --drain-timeout-ms "$WORKER_DRAIN_MS" </dev/null >>"$log" 2>&1 &
        echo "$!" >"$(worker_pid_file "$n")"
    )
    echo "worker $n started (pid $(<"$(worker_pid_file "$n")"), id $(worker_id "$n"), log $log)"
}

# Waits until the leader lists the given workers as connected; fails if one exits first.
wait_workers_connected() {
    local bin=$1 n connected
    local -a waiting
    shift
    (($#)) || return 0
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while :; do
        check_started_workers_alive "$@"
        connected=$(connected_workers "$bin") || connected=""
        waiting=()
        for n in "$@"; do
            grep -qxF -- "$(worker_id "$n")" <<<"$connected" || waiting+=("$n")
        done
        ((${#waiting[@]})) || break
        if ((SECONDS >= deadline)); then
            print_worker_log_tails "${waiting[@]}"
            die "workers not connected within ${START_TIMEOUT_S} s: ${waiting[*]}"
        fi
        tick
    done
    echo "workers connected: $*"
}

# Starts workers 1..RAFTSCHED_WORKERS that do not run, and waits until they are connected.
start_workers() {
    local bin=$1 n pid started=()
    for ((n = 1; n <= WORKERS; n++)); do
        if pid=$(worker_pid "$n"); then
            echo "worker $n already running (pid $pid)"
        else
            start_worker "$bin" "$n"
            started+=("$n")
        fi
    done
    wait_workers_connected "$bin" "${started[@]}"
}

cmd_start() {
    local bin cid n pid started=() leader="" workers=()
    bin=$(build_bin)
    cid=$(cluster_id)
    for ((n = 1; n <= WORKERS; n++)); do workers+=("$n"); done
    ensure_credentials "$bin" "${workers[@]}"
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n"); then
            echo "node $n already running (pid $pid)"
        else
            start_node "$bin" "$n" "$cid"
            started+=("$n")
        fi
    done
    echo "waiting for a leader (up to ${START_TIMEOUT_S} s)..."
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while :; do
        check_started_alive "${started[@]}"
        if leader=$(agreed_leader "$bin"); then break; fi
        if ((SECONDS >= deadline)); then
            print_log_tails "${NODES[@]}"
            die "no leader agreed on by all three nodes within ${START_TIMEOUT_S} s"
        fi
        tick
    done
    echo "leader: node $leader"
    start_workers "$bin"
    echo
    client "$bin" cluster status
    if ((WORKERS)); then
        echo
        client "$bin" worker list
    fi
    echo
    print_http_urls
    echo
    cmd_env
    echo "# or: eval \"\$(scripts/cluster.sh env)\""
}

# Where each node's dashboard, /healthz, /readyz and /metrics are, and how to read them.
print_http_urls() {
    local n urls=()
    for n in "${NODES[@]}"; do urls+=("$(http_url_of "$n")"); done
    echo "HTTP (/healthz, /readyz, /metrics): ${urls[*]}"
    if ((INSECURE)); then
        echo "Dashboard: $(http_url_of 1)/"
        return 0
    fi
    local dir token
    dir=$(certs_dir)
    echo "  e.g. curl --cacert $dir/ca.crt --cert $dir/prometheus.crt --key $dir/prometheus.key $(http_url_of 1)/metrics"
    token=$(<"$dir/console.token")
    echo "Dashboard: $(http_url_of 1)/#token=$token"
    echo "  (signs in with $dir/console.token; the browser does not know the cluster's CA: trust $dir/ca.crt or accept its warning)"
}

# The exports for a shell that talks to this cluster.
cmd_env() {
    echo "export RAFTSCHED_CLUSTER=$(cluster_addrs)"
    if ((INSECURE)); then
        echo "export RAFTSCHED_INSECURE=1"
    else
        echo "export RAFTSCHED_TLS_DIR=$(certs_dir)"
    fi
}

cmd_stop() {
    local workers
    workers=$(known_workers)
    # shellcheck disable=SC2086 # one number a line
    stop_workers $workers
    stop_nodes "${NODES[@]}"
}

cmd_status() {
    local n pid any=0 workers any_worker=0
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n"); then
            if node_paused "$n"; then
                echo "node $n paused  (pid $pid, $(addr_of "$n"))"
            else
                echo "node $n running (pid $pid, $(addr_of "$n"), $(http_url_of "$n"))"
                any=1
            fi
        else
            echo "node $n stopped"
        fi
    done
    workers=$(known_workers)
    for n in $workers; do
        if pid=$(worker_pid "$n"); then
            any_worker=1
            if member_paused worker "$n"; then
                echo "worker $n paused  (pid $pid, id $(worker_id "$n"))"
            else
                echo "worker $n running (pid $pid, id $(worker_id "$n"))"
            fi
        else
            echo "worker $n stopped"
        fi
    done
    if ((any)); then
        echo
        client "$(client_bin)" cluster status || echo "(no answer from the cluster)"
        if ((any_worker)); then
            echo
            client "$(client_bin)" worker list || echo "(no worker list from the cluster)"
        fi
    fi
}

cmd_logs() {
    local who=${1:-} log
    if [[ $who =~ ^worker([1-9][0-9]*)$ ]]; then
        log=$(worker_log_file "${BASH_REMATCH[1]}")
        [[ -f $log ]] || die "no log for worker ${BASH_REMATCH[1]} at $log"
    else
        [[ $who =~ ^[1-3]$ ]] || die "logs: expected a node number (1, 2 or 3) or workerN, got '$who'"
        log=$(log_file "$who")
        [[ -f $log ]] || die "no log for node $who at $log"
    fi
    case ${2:-} in
        "") tail -n 100 -- "$log" ;;
        -f) exec tail -n 100 -f -- "$log" ;;
        *) die "logs N [-f]: unknown option '$2'" ;;
    esac
}

cmd_signal() {
    local signal=$1 verb=$2 n=${3:-} pid
    check_node_arg "$n"
    pid=$(node_pid "$n") || die "node $n is not running"
    kill "-$signal" "$pid"
    if [[ $signal == KILL ]]; then
        wait_gone 5 "$n" || die "node $n (pid $pid) still runs after SIGKILL"
        rm -f -- "$(pid_file "$n")"
    fi
    echo "node $n $verb (pid $pid)"
}

cmd_restart() {
    local n=${1:-} bin cid deadline
    check_node_arg "$n"
    bin=$(build_bin)
    cid=$(cluster_id)
    stop_nodes "$n"
    start_node "$bin" "$n" "$cid"
    deadline=$((SECONDS + START_TIMEOUT_S))
    until timeout "$CLIENT_TIMEOUT_S" "$bin" --cluster "$(addr_of "$n")" cluster status >/dev/null 2>&1; do
        check_started_alive "$n"
        if ((SECONDS >= deadline)); then
            print_log_tails "$n"
            die "node $n did not answer within ${START_TIMEOUT_S} s"
        fi
        tick
    done
    echo "node $n answers on $(addr_of "$n")"
}

cmd_kill_worker() {
    local n=${1:-} pid
    check_worker_arg "$n"
    pid=$(worker_pid "$n") || die "worker $n is not running"
    kill_with_commands "$pid"
    wait_gone_kind worker 5 "$n" || die "worker $n (pid $pid) still runs after SIGKILL"
    rm -f -- "$(worker_pid_file "$n")"
    echo "worker $n killed (pid $pid)"
}

cmd_restart_worker() {
    local n=${1:-} bin
    check_worker_arg "$n"
    bin=$(build_bin)
    ensure_credentials "$bin" "$n"
    stop_workers "$n"
    start_worker "$bin" "$n"
    wait_workers_connected "$bin" "$n"
}

cmd_leader() {
    local bin leader deadline
    bin=$(client_bin)
    deadline=$((SECONDS + 10))
    until leader=$(current_leader "$bin"); do
        ((SECONDS < deadline)) || die "no leader found"
        tick
    done
    echo "$leader"
}

cmd_clean() {
    local home entry name
    home=$(realpath -m -- "${HOME:-/}")
    [[ $DATA != / && $DATA != "$home" && $DATA != "$ROOT" ]] \
        || die "refusing to remove RAFTSCHED_DATA=$DATA"
    if [[ -d $DATA ]]; then
        # Only ever remove a dir that holds nothing but what this script puts there.
        for entry in "$DATA"/* "$DATA"/.[!.]*; do
            [[ -e $entry ]] || continue
            name=$(basename -- "$entry")
            [[ $name =~ ^(node[0-9]+(\.log|\.pid)?|worker[0-9]+\.(log|pid)|cluster-id(\.tmp)?|certs)$ ]] \
                || die "refusing to remove $DATA: it holds $name, which cluster.sh did not create"
        done
    fi
    cmd_stop
    rm -rf -- "$DATA"
    echo "removed $DATA"
}

cmd_backup() {
    local file=${1:-} bin
    [[ -n $file ]] || die "backup needs a FILE to write"
    bin=$(client_bin)
    "$bin" --cluster "$(cluster_addrs)" cluster snapshot save "$file"
}

cmd_restore() {
    local file=${1:-} bin cid n
    [[ -n $file ]] || die "restore needs a snapshot FILE (scripts/cluster.sh backup FILE writes one)"
    [[ -r $file ]] || die "cannot read $file"
    for n in "${NODES[@]}"; do
        if node_pid "$n" >/dev/null; then die "node $n runs: scripts/cluster.sh stop first"; fi
        [[ ! -e $(data_dir "$n") ]] ||
            die "$(data_dir "$n") exists: restore seeds new data dirs; remove ${DATA}/node1..3 (after copying what you need)"
    done
    bin=$(client_bin)
    cid=$(cluster_id)
    for n in "${NODES[@]}"; do
        "$bin" cluster restore "$file" --id "$n" --data-dir "$(data_dir "$n")" --cluster-id "$cid" \
            --initial-members "$(initial_members)" >/dev/null
    done
    echo "seeded $(data_dir 1), $(data_dir 2) and $(data_dir 3) from $file; scripts/cluster.sh start runs them"
}

main() {
    check_settings
    setup_tls
    local command=${1:-}
    [[ $# -gt 0 ]] && shift
    case $command in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        kill) cmd_signal KILL killed "$@" ;;
        pause) cmd_signal STOP paused "$@" ;;
        resume) cmd_signal CONT resumed "$@" ;;
        restart) cmd_restart "$@" ;;
        kill-worker) cmd_kill_worker "$@" ;;
        restart-worker) cmd_restart_worker "$@" ;;
        leader) cmd_leader ;;
        backup) cmd_backup "$@" ;;
        restore) cmd_restore "$@" ;;
        env) cmd_env ;;
        clean) cmd_clean ;;
        help | -h | --help) usage ;;
        "")
            usage >&2
            exit 2
            ;;
        *)
            echo "cluster.sh: unknown command '$command'" >&2
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
