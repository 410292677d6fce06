#!/usr/bin/env bash
# One command for a fresh machine: set-up, then the main job:
#   simulate the default data (if absent) -> run the local TFX pipeline -> print its summary
#   -> start the serving backend and the Peri-CR router, send sample requests, shut down.
# Extra arguments go to the pipeline runner (see `python -m tfx_pipeline.local_runner --help`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m tfx_pipeline.local_runner "$@"
# Requests of 30 candidate ads x 5 creatives each (a logged impression holds only the L ads that were shown).
python -m serving.demo --serving-root "${ADCR_OUTPUT_DIR:-$REPO_ROOT/outputs}/serving_models"
