#!/usr/bin/env bash
# Run libFuzzer targets of tests/fuzz (built by `make build-fuzz`), one or a
# few at a time, each over its seed corpus tests/fuzz/corpus/TARGET (every
# input, regressions included) and then fuzzing for --seconds.
#
#   scripts/fuzz.sh [--build DIR] [--seconds S] [--work DIR] [--jobs N]
#                   [--fresh] [TARGET...]  (TARGET: tokens, http, ...; default all)
#
# --fresh empties WORK/TARGET first, so the run starts from the committed
# corpus only (make test does: its time stays bounded).
#
# New inputs go to WORK/TARGET (never into the committed corpus), crashes to
# WORK/crashes/TARGET-*. One line per target: executions, time, corpus.
# Exit 0 when no target crashed; 1 otherwise (the crash file and the end of
# its log are printed); 77 when a target is not built.
set -uo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$HERE/build-fuzz"
SECONDS_EACH=60
WORK=""
JOBS=1
FRESH=0
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
    esac
done
WORK="${WORK:-$BUILD/work}"
if [ ${#TARGETS[@]} -eq 0 ]; then
    for src in "$HERE"/tests/fuzz/fuzz_*.c; do
        t="$(basename "$src" .c)"
        if [ ! -x "$BUILD/$t" ] && grep -q "fuzz-needs:" "$src"; then
            # Its decoder is not in this tree yet (tests/fuzz/README.md).
            echo "fuzz ${t#fuzz_}: skipped ($(grep -o 'fuzz-needs: [^ ]*' "$src") is not here)"
            continue
        fi
        TARGETS+=("${t#fuzz_}")
    done
fi
mkdir -p "$WORK/crashes" "$WORK/logs"

runOne() {
    local t="$1"
    local bin="$BUILD/fuzz_$t"
    local seeds="$HERE/tests/fuzz/corpus/$t"
    local log="$WORK/logs/$t.log"
    local args=()
    if [ ! -x "$bin" ]; then
        echo "fuzz $t: $bin is not built (make build-fuzz)"
        return 77
    fi
    if [ "$FRESH" = 1 ]; then
        rm -rf "${WORK:?}/$t"
    fi
    mkdir -p "$WORK/$t" "$seeds"
    if [ -f "$HERE/tests/fuzz/$t.dict" ]; then
        args+=("-dict=$HERE/tests/fuzz/$t.dict")
    fi
    # libFuzzer's own failure code is 77, which means "not built" here.
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 \
        -error_exitcode=1 -timeout_exitcode=1 \
        -print_final_stats=1 -artifact_prefix="$WORK/crashes/$t-" \
        "${args[@]}" "$WORK/$t" "$seeds" >"$log" 2>&1
    local rc=$?
    local execs secs
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    secs="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
    local seeds_n work_n
    seeds_n="$(find "$seeds" -type f | wc -l)"
    work_n="$(find "$WORK/$t" -type f | wc -l)"
    if [ $rc -ne 0 ]; then
        echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} executions; log $log"
        ls -1 "$WORK/crashes/$t-"* 2>/dev/null | sed 's/^/  crash input: /'
        tail -n 40 "$log" | sed 's/^/  | /'
        return 1
    fi
    echo "fuzz $t: ${execs:-?} executions in ${secs:-?} s" \
        "($(( ${execs:-0} / (${secs:-1} > 0 ? ${secs:-1} : 1) ))/s), seeds $seeds_n," \
        "work corpus $work_n"
    return 0
}

rc=0
running=0
pids=()
names=()
for t in "${TARGETS[@]}"; do
    runOne "$t" &
    pids+=($!)
    names+=("$t")
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait "${pids[0]}"; r=$?
        [ $r -ne 0 ] && { [ $rc -eq 0 ] || [ $r -ne 77 ]; } && rc=$r
        pids=("${pids[@]:1}"); names=("${names[@]:1}")
        running=$((running - 1))
    fi
done
for p in "${pids[@]}"; do
    wait "$p"; r=$?
    [ $r -ne 0 ] && { [ $rc -eq 0 ] || [ $r -ne 77 ]; } && rc=$r
done
exit $rc
