#!/usr/bin/env bash
# One command for a fresh machine: set-up, then the main job:
#   simulate the default data (if absent) -> run the local TFX pipeline -> print its summary
#   -> start the serving backend and the Peri-CR router, send sample requests, shut down.
# Extra arguments go to the pipeline runner (see `python -m tfx_pipeline.local_runner --help`); the serving
# demo follows its --output-dir and --data-dir. Both print only progress and results; their logs go to
# <output dir>/logs/ (the paths are printed; --verbose shows the pipeline's on the console instead).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
OUTPUT_DIR="${ADCR_OUTPUT_DIR:-$REPO_ROOT/outputs}"
DATA_DIR="${ADCR_DATA_DIR:-$REPO_ROOT/data/default}"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --output-dir) OUTPUT_DIR="${args[i + 1]:-}" ;;
    --output-dir=*) OUTPUT_DIR="${args[i]#*=}" ;;
    --data-dir) DATA_DIR="${args[i + 1]:-}" ;;
    --data-dir=*) DATA_DIR="${args[i]#*=}" ;;
  esac
done
python -m tfx_pipeline.local_runner "$@"
# Requests drawn from the simulated world (M candidate ads, every active creative of each, and the true CTR
# of what the router shows); random requests of 30 ads x 5 creatives when the data has no world.npz.
python -m serving.demo --serving-root "$OUTPUT_DIR/serving_models" --data-dir "$DATA_DIR"
