#!/usr/bin/env bash
# Runs a local three-node raftsched cluster on 127.0.0.1, for development, demos and tests.
#
# Usage: scripts/cluster.sh COMMAND [ARGS]   (scripts/cluster.sh help for the list)
#
# Environment:
#   RAFTSCHED_PORT_BASE      port of node 1; nodes 2 and 3 use the next two (default 50051)
#   RAFTSCHED_DATA           data, logs and pid files (default: data/ in the repository)
#   RAFTSCHED_BIN            raftsched binary to run; when set, nothing is built
#   RAFTSCHED_BUILD_PROFILE  cargo profile to build and run: release (default) or debug
#
# Layout of $RAFTSCHED_DATA: cluster-id (generated on the first start, reused after),
# node1/ node2/ node3/ (data dirs), node1.log ... (each node's stderr), node1.pid ...
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
PORT_BASE=${RAFTSCHED_PORT_BASE:-50051}
DATA=$(realpath -m -- "${RAFTSCHED_DATA:-$ROOT/data}")
PROFILE=${RAFTSCHED_BUILD_PROFILE:-release}
NODES=(1 2 3)
START_TIMEOUT_S=30
STOP_TIMEOUT_S=10
# Bounds one client call in a poll loop (the client itself retries for up to 15 s; one
# attempt on an unresponsive node may take 5 s before it moves on to the next node).
CLIENT_TIMEOUT_S=10

usage() {
    cat <<EOF
Usage: scripts/cluster.sh COMMAND [ARGS]

A three-node raftsched cluster on 127.0.0.1, ports ${PORT_BASE}-$((PORT_BASE + 2)), data in ${DATA}.

Commands:
  start          build (unless RAFTSCHED_BIN is set), start the nodes that are not running,
                 and wait until all three agree on a leader
  stop           stop every node (SIGTERM, then SIGKILL after ${STOP_TIMEOUT_S} s)
  status         which nodes run, and the cluster's status
  logs N [-f]    the last 100 lines of node N's log (-f: follow it)
  kill N         SIGKILL node N
  pause N        SIGSTOP node N (it stops answering, as if partitioned)
  resume N       SIGCONT node N
  restart N      stop node N and start it again on the same data dir
  leader         print the number of the current leader node
  clean          stop, then remove the data dir
  help           this text

Environment: RAFTSCHED_PORT_BASE (default 50051), RAFTSCHED_DATA (default <repo>/data),
RAFTSCHED_BIN (binary to use; no build), RAFTSCHED_BUILD_PROFILE (release or debug).
EOF
}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# --- Addresses and files ---------------------------------------------------------------------

port_of() { echo $((PORT_BASE + $1 - 1)); }
addr_of() { echo "127.0.0.1:$(port_of "$1")"; }
pid_file() { echo "$DATA/node$1.pid"; }
log_file() { echo "$DATA/node$1.log"; }
data_dir() { echo "$DATA/node$1"; }

# host:port,host:port,host:port — what RAFTSCHED_CLUSTER should be.
cluster_addrs() {
    local n addrs=()
    for n in "${NODES[@]}"; do addrs+=("$(addr_of "$n")"); done
    (IFS=,; echo "${addrs[*]}")
}

# 1=host:port,2=host:port,3=host:port — the founding members.
initial_members() {
    local n members=()
    for n in "${NODES[@]}"; do members+=("$n=$(addr_of "$n")"); done
    (IFS=,; echo "${members[*]}")
}

check_node_arg() {
    [[ ${1:-} =~ ^[1-3]$ ]] || die "expected a node number (1, 2 or 3), got '${1:-}'"
}

check_port_base() {
    if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || ((PORT_BASE < 1 || PORT_BASE > 65533)); then
        die "RAFTSCHED_PORT_BASE must be a port number up to 65533, got '$PORT_BASE'"
    fi
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

# The pid in node N's pid file if that process is alive. A zombie is dead: nothing may reap
# it soon (the nodes are orphans, and PID 1 of a container may not reap).
pid_file_alive() {
    local file pid state
    file=$(pid_file "$1")
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

# The pid of node N if it runs (paused counts as running): the pid file names a live process
# whose command line has this node's data dir (not some other process that got the pid).
node_pid() {
    local pid
    pid=$(pid_file_alive "$1") || return 1
    if [[ -e /proc/self/cmdline ]]; then
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$(data_dir "$1")" || return 1
    fi
    echo "$pid"
}

node_paused() {
    local pid
    pid=$(node_pid "$1") || return 1
    [[ $(proc_state "$pid") == T ]]
}

# Sleeps 0.2 s; the one pause between polls.
tick() { sleep 0.2; }

# Waits until none of the given nodes runs, at most $1 seconds; returns 1 on timeout.
wait_gone() {
    local timeout=$1 n running
    shift
    local deadline=$((SECONDS + timeout))
    while :; do
        running=0
        for n in "$@"; do
            if node_pid "$n" >/dev/null; then running=1; fi
        done
        ((running)) || return 0
        ((SECONDS < deadline)) || return 1
        tick
    done
}

# Stops the given nodes: SIGTERM (and SIGCONT, so a paused node handles it), then SIGKILL
# whatever still runs after STOP_TIMEOUT_S.
stop_nodes() {
    local n pid stopping=()
    for n in "$@"; do
        if pid=$(node_pid "$n"); then
            kill -TERM "$pid" 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true
            stopping+=("$n")
        else
            rm -f -- "$(pid_file "$n")"
        fi
    done
    ((${#stopping[@]})) || return 0
    if ! wait_gone "$STOP_TIMEOUT_S" "${stopping[@]}"; then
        for n in "${stopping[@]}"; do
            if pid=$(node_pid "$n"); then
                echo "node $n did not stop within ${STOP_TIMEOUT_S} s; killing it (pid $pid)" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        wait_gone 5 "${stopping[@]}" || die "nodes still running after SIGKILL: ${stopping[*]}"
    fi
    for n in "${stopping[@]}"; do
        rm -f -- "$(pid_file "$n")"
        echo "node $n stopped"
    done
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
    local re_node='"node_id": *([0-9]+)' re_role='"role": *"([a-z]*)"'
    local re_leader='"leader_id": *([0-9]+)' re_term='"term": *([0-9]+)' re_end='^[[:space:]]*\}'
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

print_log_tails() {
    local n
    for n in "$@"; do
        echo "--- last lines of $(log_file "$n") ---" >&2
        tail -n 30 -- "$(log_file "$n")" >&2 2>/dev/null || echo "(no log)" >&2
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

# --- Commands --------------------------------------------------------------------------------

start_node() {
    local bin=$1 n=$2 cid=$3 log
    log=$(log_file "$n")
    mkdir -p -- "$DATA"
    echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh: starting node $n on $(addr_of "$n")" >>"$log"
    # set -m: the node gets its own process group, so a Ctrl-C at this script's terminal
    # does not reach it. NO_COLOR: plain text logs.
    (
        set -m
        NO_COLOR=1 nohup "$bin" node --id "$n" --listen "$(addr_of "$n")" --data-dir "$(data_dir "$n")" \
            --cluster-id "$cid" --initial-members "$(initial_members)" </dev/null >>"$log" 2>&1 &
        echo "$!" >"$(pid_file "$n")"
    )
    echo "node $n started (pid $(<"$(pid_file "$n")"), $(addr_of "$n"), log $log)"
}

cmd_start() {
    local bin cid n pid started=() leader=""
    bin=$(build_bin)
    cid=$(cluster_id)
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
    echo
    client "$bin" cluster status
    echo
    echo "export RAFTSCHED_CLUSTER=$(cluster_addrs)"
}

cmd_stop() {
    stop_nodes "${NODES[@]}"
}

cmd_status() {
    local n pid any=0
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n"); then
            if node_paused "$n"; then
                echo "node $n paused  (pid $pid, $(addr_of "$n"))"
            else
                echo "node $n running (pid $pid, $(addr_of "$n"))"
                any=1
            fi
        else
            echo "node $n stopped"
        fi
    done
    if ((any)); then
        echo
        client "$(client_bin)" cluster status || echo "(no answer from the cluster)"
    fi
}

cmd_logs() {
    check_node_arg "${1:-}"
    local log
    log=$(log_file "$1")
    [[ -f $log ]] || die "no log for node $1 at $log"
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
            [[ $name =~ ^(node[0-9]+(\.log|\.pid)?|cluster-id(\.tmp)?)$ ]] \
                || die "refusing to remove $DATA: it holds $name, which cluster.sh did not create"
        done
    fi
    cmd_stop
    rm -rf -- "$DATA"
    echo "removed $DATA"
}

main() {
    check_port_base
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
        leader) cmd_leader ;;
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
