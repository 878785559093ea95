#!/usr/bin/env bash
# One-shot campaign run on a GPU machine (torch + PyG, no RDKit, nothing fetched), for the few minutes
# one is lent. Three steps:
#   here:    python scripts/campaign.py --pack gpu-pack          # task packs + checkpoints, <= 56 MiB
#            echo /gpu-pack/ >> .git/info/exclude
#   device:  run(command="bash scripts/campaign_gpu.sh", carry=["gpu-pack"], timeout_s=660)
#   here:    python scripts/campaign.py --merge <files_at>/architectures.csv   # then commit the ledger
# It runs the next unfinished cells of chem/results/campaign.csv (GPU-only cells included) as fused
# groups as large as the GPU's memory allows, for MINUTES (default 9) of wall time, and writes the
# ledger (a copy of the committed one plus the new lines) and the log under $OUT.
# Tested end to end on CPU with tiny settings: tests/train/test_campaign.py (test_gpu_script_*).
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-gpu-pack}
OUT=${OUT:-gpu-out}
MINUTES=${MINUTES:-9}
DEVICE=${DEVICE:-cuda}
BASE_LEDGER=${BASE_LEDGER-chem/results/architectures.csv}  # empty: start a new ledger (tests)
mkdir -p "$OUT"
if [ -n "$BASE_LEDGER" ]; then cp "$BASE_LEDGER" "$OUT/architectures.csv"; fi
export PYTHONUNBUFFERED=1
python3 scripts/campaign.py --device "$DEVICE" --hours "$(python3 -c "print($MINUTES / 60)")" --nice 0 \
    --task-pack "$PACK/tasks" --reference-dir "$PACK/checkpoints" --ledger "$OUT/architectures.csv" \
    --output "${RUNS:-/tmp/campaign-gpu-runs}" "$@" 2>&1 | tee "$OUT/campaign.log"
