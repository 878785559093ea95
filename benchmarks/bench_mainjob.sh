#!/usr/bin/env bash
# Reproduce the README's main job on a clean clone and print how long it took and how busy the machine was.
#
#   benchmarks/bench_mainjob.sh            # as the machine is
#   benchmarks/bench_mainjob.sh --busy     # with one busy neighbour (a pure-Python busy loop) running throughout
#
# The clone goes to a sibling folder of this checkout (so ../shared/data resolves exactly as for a user's
# clone), with a fresh processed-data cache inside it (nothing featurized beforehand). `pip install -e`
# runs in a virtual environment made with --system-site-packages (torch and the other dependencies come
# from the local disk, as on a machine where they are installed; the machine's own editable install of
# the project is not touched). The timed command is the README's line ending in "# main job", verbatim.
# The clone is deleted afterwards unless KEEP=1.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
busy=0
[ "${1:-}" = "--busy" ] && busy=1

clone="$(dirname "$repo")/.bench-mainjob-$$"
cleanup() {
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null || true
  [ -n "${hog:-}" ] && kill "$hog" 2>/dev/null || true
  [ "${KEEP:-0}" = "1" ] || rm -rf "$clone"
}
trap cleanup EXIT

git clone -q "$repo" "$clone"
cd "$clone"
python -m venv --system-site-packages .venv
cmd=$(grep -m1 -E '# main job$' README.md | sed -e 's/[[:space:]]*# main job$//')
echo "+ $cmd"
echo "commit $(git rev-parse --short HEAD); $(nproc) cores; $(python -c 'import torch; print("torch", torch.__version__)')"

if [ "$busy" = "1" ]; then
  python -c 'while True: pass' &
  hog=$!
  sleep 20  # let the neighbour show in the load average
  echo "busy neighbour: pid $hog"
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
( while true; do cut -d' ' -f1 /proc/loadavg >> "$clone/.load"; sleep 5; done ) &
sampler=$!

env -u GNNPRETRAIN_DATA -u OMP_NUM_THREADS -u MKL_NUM_THREADS -u PYTHONPATH \
  GNNPRETRAIN_CACHE="$clone/.cache-bench" PATH="$clone/.venv/bin:$PATH" \
  bash -c "TIMEFORMAT='main job wall time: %R s'; time ( $cmd )" 2>&1 | tee "$clone/.out"

kill "$sampler" 2>/dev/null || true
sampler=
python - "$clone/.load" <<'EOF'
import sys
vals = [float(x) for x in open(sys.argv[1]).read().split()]
if vals:
    print(f"1-min load average during the run: mean {sum(vals) / len(vals):.2f}, max {max(vals):.2f} "
          f"({len(vals)} samples, 5 s apart)")
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
