#!/usr/bin/env bash
# Benchmark of the clustering engine, rerunnable by anyone:
#   1. template accuracy on Loghub-2k (GA per set and mean; `faultline cluster --level template`),
#   1b. leave-one-system-out: the engine's one data-driven choice (the template miner's
#      min_distinct) re-chosen on the other 7 systems and scored on the 8th
#      (clustering/examples/loghub_eval.rs), next to the all-8 figure,
#   2. pattern accuracy on the errcorpus dev set (ARI, GA; `--level cluster --parse`),
#   3. end-to-end speed on the 1,000,000-line Loghub file, in the same run as the anchors:
#      the logdrain crate (benches/logdrain_anchor.rs) and Drain3 (Python, default settings),
#      each run RUNS times, interleaved; medians, ratios and peak RSS are printed, with the
#      machine (CPU model, cores, load). Both levels run on one thread (`--threads 1`) and on
#      every core (`--threads $(nproc)`; the default is every core at the cluster level and
#      one thread at the template level, where this measured no gain); the ratios to logdrain and Drain3 are single-threaded against
#      single-threaded, and the speed-up of every core over one is printed per level.
#
# Usage: scripts/bench/clustering.sh [RUNS]     (default 3; needs python3, pip for drain3 and
#        scikit-learn, and the project's shared folder beside the checkout, ../shared, or $SHARED)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-3}"
SHARED="${SHARED:-$PWD/../shared}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/clustering-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

python3 -c 'import drain3' 2>/dev/null || pip install -q drain3 >&2
python3 -c 'import sklearn' 2>/dev/null || pip install -q scikit-learn >&2

cargo build --release -p faultline >&2
cargo bench -p faultline-clustering --bench logdrain_anchor --no-run >&2
cargo build --release -p faultline-clustering --example loghub_eval >&2
BIN="$CARGO_TARGET_DIR/release/faultline"
ANCHOR="$(ls -t "$CARGO_TARGET_DIR"/release/deps/logdrain_anchor-* | grep -v '\.d$' | head -1)"

echo "## 1. Template accuracy (Loghub-2k, --level template)"
"$SHARED/tools/logbench/score_cli.sh" --no-speed \
  "$BIN cluster --level template --input {in} --output {out}" "loghub=$SHARED/data/loghub2k" | tail -12

echo
echo "## 1b. Leave-one-system-out (min_distinct chosen on the other 7, scored on the held-out one)"
"$CARGO_TARGET_DIR/release/examples/loghub_eval" "$SHARED/data/loghub2k"

echo
echo "## 2. Pattern accuracy (errcorpus dev, --level cluster --parse)"
"$BIN" cluster --level cluster --parse --input "$SHARED/data/errcorpus/dev.log" --output "$WORK/ec.pred" 2>/dev/null
python3 "$SHARED/tools/errcorpus/score.py" "$SHARED/data/errcorpus/dev.truth.tsv" "$WORK/ec.pred" >"$WORK/ec.score"
head -3 "$WORK/ec.score"

echo
CPU="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "## 3. Speed on 1,000,000 lines ($RUNS runs each, interleaved)"
echo "machine: ${CPU:-unknown CPU}, $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GB RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$SHARED/tools/logbench/make_bigfile.py" --lines 1000000 --kind content \
  --out "$WORK/big.txt" "$SHARED/data/loghub2k" >/dev/null
# Runs a command, prints "wall_seconds cpu_seconds peak_rss_kb" (cpu: user + system).
timed() {
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/t" "$@" >/dev/null 2>&1
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$WORK/t"
}
declare -A T C R
NAMES="template1 template cluster1 cluster logdrain drain3"
for name in $NAMES; do T[$name]=""; C[$name]=""; R[$name]=0; done
for ((i = 1; i <= RUNS; i++)); do
  for name in $NAMES; do
    case $name in
      template1) set -- "$BIN" cluster --level template --threads 1 --input "$WORK/big.txt" --output "$WORK/o" ;;
      template) set -- "$BIN" cluster --level template --threads "$(nproc)" --input "$WORK/big.txt" --output "$WORK/o" ;;
      cluster) set -- "$BIN" cluster --level cluster --threads "$(nproc)" --input "$WORK/big.txt" --output "$WORK/o" ;;
      cluster1) set -- "$BIN" cluster --level cluster --threads 1 --input "$WORK/big.txt" --output "$WORK/o" ;;
      logdrain) set -- "$ANCHOR" "$WORK/big.txt" "$WORK/o" ;;
      drain3) set -- python3 scripts/bench/clustering_drain3.py "$WORK/big.txt" "$WORK/o" ;;
    esac
    read -r secs cpu rss < <(timed "$@")
    # A run that failed would be timed too: each must write one id per input line.
    lines_out="$(wc -l <"$WORK/o")"
    [[ "$lines_out" == 1000000 ]] || { echo "$name wrote $lines_out ids for 1,000,000 lines" >&2; exit 1; }
    T[$name]+="$secs "
    C[$name]+="$cpu "
    (( rss > R[$name] )) && R[$name]=$rss
  done
done
python3 - "$(nproc)" \
  "${T[template1]}" "${T[template]}" "${T[cluster1]}" "${T[cluster]}" "${T[logdrain]}" "${T[drain3]}" \
  "${C[template1]}" "${C[template]}" "${C[cluster1]}" "${C[cluster]}" "${C[logdrain]}" "${C[drain3]}" \
  "${R[template1]}" "${R[template]}" "${R[cluster1]}" "${R[cluster]}" "${R[logdrain]}" "${R[drain3]}" <<'PY'
import statistics, sys
cores = sys.argv[1]
names = ["faultline --level template --threads 1", f"faultline --level template ({cores} cores)",
         "faultline --level cluster --threads 1", f"faultline --level cluster ({cores} cores)",
         "logdrain crate (defaults)", "Drain3 (Python, defaults)"]
walls = [[float(x) for x in a.split()] for a in sys.argv[2:8]]
cpus = [[float(x) for x in a.split()] for a in sys.argv[8:14]]
rss = [int(x) for x in sys.argv[14:20]]
med = [statistics.median(t) for t in walls]
cpu = [statistics.median(t) for t in cpus]
for n, t, m, c, r in zip(names, walls, med, cpu, rss):
    print(f"{n:42s} median {m:7.3f} s wall {c:7.2f} s cpu  {1e6 / m:11,.0f} lines/s  "
          f"peak RSS {r / 1024:6.1f} MB  wall runs {t}")
t1, tn, c1, cn, ld, d3 = med
ct1, ctn, cc1, ccn, cld, cd3 = cpu
print(f"template level vs logdrain: {ld / t1:.2f}x faster wall, {cld / ct1:.2f}x less cpu (both single-threaded)")
print(f"template level vs Drain3:   {d3 / t1:.2f}x faster wall, {cd3 / ct1:.2f}x less cpu (both single-threaded)")
print(f"template level, {cores} cores vs 1 thread: {t1 / tn:.2f}x faster wall ({ctn / ct1:.2f}x the cpu)")
print(f"cluster level,  {cores} cores vs 1 thread: {c1 / cn:.2f}x faster wall ({ccn / cc1:.2f}x the cpu)")
print(f"cluster level vs template level, 1 thread: {100 * (c1 / t1 - 1):+.1f}% time")
print("(on a loaded machine the wall-clock speed-up of more threads is the larger share of the")
print(" CPU they get, not only the second core: compare it with the load printed above and below)")
PY
echo "load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
