#!/bin/bash
# A/B of the tailer's wake-ups at RATE lines/s: one writer (writer.py, three files, one
# write(2) per line) and both watchers side by side on the same files for SECONDS, REPS times.
# Prints per run and mode: lines read, reads, CPU seconds of the watcher process, and the
# delay from a line's write to its read (p50 / p99 / max).
#   usage: scripts/bench/tail_watch_ab/ab.sh RATE SECONDS REPS
# Builds into $CARGO_TARGET_DIR/tail-watch-ab (default: this directory's target/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rate=${1:-1000}; secs=${2:-60}; reps=${3:-3}
target=${CARGO_TARGET_DIR:-$here/target}/tail-watch-ab
CARGO_TARGET_DIR=$target cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin=$target/release/tail-watch-ab
for r in $(seq "$reps"); do
  d=$(mktemp -d /tmp/tail-watch-ab.XXXXXX)
  touch "$d/s0.log" "$d/s1.log" "$d/s2.log"
  python3 "$here/writer.py" "$d" "$rate" $((secs + 3)) > /dev/null &
  sleep 1
  "$bin" inotify "$d" "$secs" > "$d/inotify.json" &
  "$bin" notify "$d" "$secs" > "$d/notify.json"
  wait
  echo "rate $rate rep $r load $(cut -d' ' -f1 /proc/loadavg)"
  cat "$d/inotify.json" "$d/notify.json"
  rm -rf "$d"
done
