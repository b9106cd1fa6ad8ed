#!/usr/bin/env bash
# A/B benchmark of redkeep's queue: two source trees, measured with the shared harness's redkeep
# peer only (bench/peers/redkeep_bench.py of each tree), interleaved A B A B ..., on a private
# redis-server port and BENCH_HOME, then medians per variant (bench/ab_summary.py).
#
#   bench/ab_queue.sh A_TREE B_TREE [RUNS]      e.g. bench/ab_queue.sh /tmp/main-src . 3
#
# A tree is a checkout (or `git archive` export) of redkeep; its src/ and bench/ go first on the
# path of the peer and of its `redkeep worker`, so one harness venv serves both (it needs redkeep
# installed once with `pip install --no-deps -e .` plus its dependencies, as `make bench-peers`
# does). Env: BENCH_HOME (default /tmp/redkeep-ab-bench), BENCH_REDIS_PORT (default 6411),
# BENCH_N (20000), HARNESS (default: ../shared/bench next to the checkout). The machine may be shared: compare
# medians of interleaved runs only.
set -euo pipefail
A="$(realpath "$1")"; B="$(realpath "$2")"; RUNS="${3:-3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
HARNESS="$(realpath -m "${HARNESS:-$HERE/../../shared/bench}")"
[ -x "$HARNESS/run_peers.sh" ] || { echo "no harness at $HARNESS: set HARNESS" >&2; exit 2; }
export BENCH_HOME="${BENCH_HOME:-/tmp/redkeep-ab-bench}"
export BENCH_REDIS_PORT="${BENCH_REDIS_PORT:-6411}"
export BENCH_N="${BENCH_N:-20000}" BENCH_ONLY=queue BENCH_PEERS=redkeep
# Each run's result file is moved into one folder as it is written: the harness names files by
# the date, which may change during a long A/B.
OUT="$BENCH_HOME/ab-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
for run in $(seq "$RUNS"); do
  for side in A B; do
    tree="$A"; [ "$side" = B ] && tree="$B"
    echo "== run $run, $side: $tree" >&2
    BENCH_TAG="ab-$side-$run" BENCH_EXTRA_PEERS="$tree/bench/peers" \
      BENCH_EXTRA_PYTHONPATH="$tree/src:$tree/bench" "$HARNESS/run_peers.sh" >/dev/null
    mv "$(ls -t "$BENCH_HOME"/results/peers-*-ab-"$side-$run".json | head -1)" "$OUT/$side-$run.json"
  done
done
python3 "$HERE/ab_summary.py" "$OUT" "$RUNS"
