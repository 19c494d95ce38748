#!/usr/bin/env bash
# Coverage-guided fuzzing of rvs's input surfaces with AFL++ (cargo afl),
# each target for a bounded time or number of executions.
#
# Usage:
#   benches/fuzz.sh [-t SECS] [-e EXECS] [-j JOBS] [-o] [TARGET...]
#     -t SECS    stop each target after SECS seconds (default 600)
#     -e EXECS   ... or after EXECS executions, whichever comes first
#                (default 10000000)
#     -j JOBS    targets fuzzed at once (default 1; one core each)
#     -o         also write the table to benches/results/fuzz-<date>.md
#     TARGET     openflow openflow_session flow_syntax packet control config ovsdb (default: all;
#                see src/fuzzing.rs for what each covers)
#   e.g. benches/fuzz.sh -t 60 packet          (a quick look)
#        benches/fuzz.sh -t 3600 -j 2 -o       (the reported run)
#
# Seeds are benches/fuzz/seeds/TARGET/; AFL++'s state goes to
# /tmp/rvs-fuzz/TARGET (kept: rerun with the same directory to go on; -t
# counts per run). Crashing inputs are copied to
# benches/fuzz/regressions/TARGET/ (tests/fuzz_regressions.rs replays them
# on every `cargo test`, so they must be fixed before they are committed).
# Prints per target: executions, executions/s, corpus size, crashes, hangs.
# Installs cargo-afl (crates.io) when missing. Runs as any user; uses only
# local files and CPU.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ=$ROOT/benches/fuzz
SECS=600
EXECS=10000000
JOBS=1
OUT=0
ALL=(openflow openflow_session flow_syntax packet control config ovsdb)
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "t:e:j:oh" o; do
    case $o in
        t) SECS=$OPTARG ;;
        e) EXECS=$OPTARG ;;
        j) JOBS=$OPTARG ;;
        o) OUT=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
    [ -d "$FUZZ/seeds/$t" ] || { echo "fuzz.sh: unknown target $t (${ALL[*]})" >&2; exit 2; }
done
for v in "$SECS" "$EXECS" "$JOBS"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: $v is not a positive number" >&2; exit 2; }
done

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
if ! cargo afl --version > /dev/null 2>&1; then
    log "installing cargo-afl"
    cargo install --locked cargo-afl
fi
log "cargo afl build --release (benches/fuzz)"
(cd "$FUZZ" && cargo afl build --release -q)

WORK=/tmp/rvs-fuzz
mkdir -p "$WORK"
# No UI (no terminal in scripts), no CPU-governor or core_pattern checks
# (a VM cannot change them); crashes are still caught by AFL++'s fork
# server.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    AFL_NO_AFFINITY=1 AFL_QUIET=1

run_one() {
    local t=$1
    local resume=(-i "$FUZZ/seeds/$t")
    [ -f "$WORK/$t/default/fuzzer_stats" ] && resume=(-i -)
    log "$t: up to ${SECS}s / $EXECS executions"
    timeout $((SECS + 120)) cargo afl fuzz "${resume[@]}" -o "$WORK/$t" -V "$SECS" -E "$EXECS" \
        -t 2000 -- "$FUZZ/target/release/$t" > "$WORK/$t.log" 2>&1 || true
    local c
    for c in "$WORK/$t"/default/crashes/id:*; do
        [ -e "$c" ] || continue
        local name
        name=crash-$(sha1sum "$c" | cut -c1-16)
        cp -n "$c" "$FUZZ/regressions/$t/$name"
        log "$t: crash saved as benches/fuzz/regressions/$t/$name"
    done
}

running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

stat() { sed -n "s/^$2 *: *//p" "$WORK/$1/default/fuzzer_stats" 2>/dev/null | head -1; }
table="| target | executions | exec/s | corpus | crashes | hangs | run time s |
|---|---|---|---|---|---|---|"
total_crashes=0
for t in "${TARGETS[@]}"; do
    cr=$(stat "$t" saved_crashes)
    total_crashes=$((total_crashes + ${cr:-0}))
    table+="
| $t | $(stat "$t" execs_done) | $(stat "$t" execs_per_sec) | $(stat "$t" corpus_count) | ${cr:-?} | $(stat "$t" saved_hangs) | $(stat "$t" run_time) |"
done
echo "$table"
if [ "$OUT" = 1 ]; then
    f=$ROOT/benches/results/fuzz-$(date +%Y-%m-%d).md
    {
        echo "# benches/fuzz.sh -t $SECS -e $EXECS -j $JOBS ${TARGETS[*]}"
        echo
        echo "- date: $(date -u +%FT%TZ)"
        echo "- rvs: $(git -C "$ROOT" rev-parse --short HEAD)"
        echo "- AFL++: $(cargo afl --version 2>&1 | head -1)"
        echo "- host: $(nproc) CPUs"
        echo
        echo "$table"
    } > "$f"
    log "wrote $f"
fi
[ "$total_crashes" = 0 ]
