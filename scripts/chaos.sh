#!/usr/bin/env bash
# Builds raftsched and raftsched-chaos (release) and runs one chaos run: three real nodes with every peer link
# through a TCP proxy, workers, concurrent clients, faults from a seed, then the history
# checker. Arguments go to `raftsched-chaos` as they are; see CHAOS.md and
# `raftsched-chaos --help`.
#
#   scripts/chaos.sh                                   # 60 s, a fresh seed (printed first)
#   scripts/chaos.sh --seed 42 --duration-s 20         # replay / a short run
#   scripts/chaos.sh --duration-s 600                  # a long run
#   for s in $(seq 1 20); do scripts/chaos.sh --seed $s --duration-s 60 || break; done
#   scripts/chaos.sh --faults kill-leader,pause-leader --duration-s 120 --keep
#   scripts/chaos.sh --json --seed 7 > summary.json    # the summary as JSON
#
# Exit status: 0 when the run passed, non-zero on any violation (the run's directory, with
# history.jsonl, tasks.jsonl, summary.json, node and worker logs and data dirs, is kept and
# named in the output).
#
# Environment:
#   RAFTSCHED_BIN            raftsched binary to run; when set, nothing is built
#   RAFTSCHED_CHAOS_BIN      raftsched-chaos binary (default: beside RAFTSCHED_BIN)
#   RAFTSCHED_BUILD_PROFILE  cargo profile to build and run: release (default) or debug
#   RAFTSCHED_CHAOS_LOG      RUST_LOG of the nodes and workers (default raftsched=info,openraft=warn)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=${RAFTSCHED_BUILD_PROFILE:-release}

if [[ -n ${RAFTSCHED_BIN:-} ]]; then
    BIN=$RAFTSCHED_BIN
    CHAOS=${RAFTSCHED_CHAOS_BIN:-$(dirname -- "$BIN")/raftsched-chaos}
else
    case $PROFILE in
        release) cargo_profile=release target_dir=release ;;
        debug | dev) cargo_profile=dev target_dir=debug ;;
        *) cargo_profile=$PROFILE target_dir=$PROFILE ;;
    esac
    (cd "$ROOT" && cargo build --profile "$cargo_profile" --quiet --bin raftsched --bin raftsched-chaos)
    BIN=$ROOT/target/$target_dir/raftsched
    CHAOS=$ROOT/target/$target_dir/raftsched-chaos
fi

# The nodes and workers run that raftsched binary, unless --bin says otherwise.
for arg in "$@"; do
    if [[ $arg == --bin || $arg == --bin=* ]]; then
        exec "$CHAOS" "$@"
    fi
done
exec "$CHAOS" --bin "$BIN" "$@"
