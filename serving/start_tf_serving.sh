#!/usr/bin/env bash
# Serves the pushed AR and CR models with TensorFlow Serving, or with the local stand-in (same flags).
#
#   serving/start_tf_serving.sh SERVING_ROOT [more tensorflow_model_server flags...]
#   MODEL_SERVER=standin serving/start_tf_serving.sh SERVING_ROOT ...   # python -m serving.standin
#   MODEL_CONFIG_FILE=models.config serving/start_tf_serving.sh - ...     # your config (labels, policies)
#
# SERVING_ROOT is the pipeline's push destination: SERVING_ROOT/ar/<version>/ and SERVING_ROOT/cr/<version>/;
# its models.config is rendered from config/models.config. With MODEL_CONFIG_FILE, that file is served as
# it is and re-read every CONFIG_POLL_SECONDS (default 5), so editing its version_labels or version
# policies takes effect without a restart (see BUILD.md, "Canary and rollback").
# Environment: MODEL_SERVER ("tf-serving", the default, or "standin"), GRPC_PORT (8500), REST_PORT (8501),
# POLL_SECONDS (5), ENABLE_BATCHING (false; when true, run the router with --tile-user-features
# --sequence-length N, see config/batching.config), INTRA_OP_THREADS / INTER_OP_THREADS (TF's defaults),
# TF_MODEL_SERVER (the binary; default from PATH).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 SERVING_ROOT|- [tensorflow_model_server flags...]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG_DIR="$HERE/config"
ROOT_ARG="$1"
shift

case "${MODEL_SERVER:-tf-serving}" in
  standin)
    SERVER=(python -m serving.standin)
    export PYTHONPATH="$(dirname "$HERE")${PYTHONPATH:+:$PYTHONPATH}"
    ;;
  tf-serving)
    BINARY="${TF_MODEL_SERVER:-$(command -v tensorflow_model_server || true)}"
    if [ -z "$BINARY" ]; then
      echo "tensorflow_model_server is not on PATH. Install TF Serving (see BUILD.md); for the official" >&2
      echo "Docker image command run: python -m serving.tf_serving --serving-root \"$ROOT_ARG\"" >&2
      echo "For a local try-out without TF Serving (the stand-in, same flags):" >&2
      echo "  MODEL_SERVER=standin $0 $ROOT_ARG $*" >&2
      exit 127
    fi
    SERVER=("$BINARY")
    ;;
  *)
    echo "MODEL_SERVER must be tf-serving or standin, got '$MODEL_SERVER'" >&2
    exit 2
    ;;
esac

RENDERED=""
if [ -n "${MODEL_CONFIG_FILE:-}" ]; then
  MODELS_CONFIG="$(cd "$(dirname "$MODEL_CONFIG_FILE")" && pwd)/$(basename "$MODEL_CONFIG_FILE")"
  CONFIG_POLL=(--model_config_file_poll_wait_seconds="${CONFIG_POLL_SECONDS:-5}")
else
  SERVING_ROOT="$(cd "$ROOT_ARG" && pwd)"
  for model in ar cr; do
    [ -d "$SERVING_ROOT/$model" ] || echo "warning: $SERVING_ROOT/$model does not exist yet" >&2
  done
  RENDERED="$(mktemp -t models.config.XXXXXX)"
  MODELS_CONFIG="$RENDERED"
  sed "s#\${SERVING_ROOT}#${SERVING_ROOT}#g" "$CONFIG_DIR/models.config" > "$MODELS_CONFIG"
  CONFIG_POLL=()
fi
cleanup() { if [ -n "$RENDERED" ]; then rm -f "$RENDERED"; fi; }
trap cleanup EXIT

ARGS=(
  --port="${GRPC_PORT:-8500}"
  --rest_api_port="${REST_PORT:-8501}"
  --model_config_file="$MODELS_CONFIG"
  ${CONFIG_POLL[@]+"${CONFIG_POLL[@]}"}
  --enable_batching="${ENABLE_BATCHING:-false}"
  --monitoring_config_file="$CONFIG_DIR/monitoring.config"
  --file_system_poll_wait_seconds="${POLL_SECONDS:-5}"
)
if [ "${ENABLE_BATCHING:-false}" = "true" ]; then
  ARGS+=(--batching_parameters_file="$CONFIG_DIR/batching.config")
fi
[ -n "${INTRA_OP_THREADS:-}" ] && ARGS+=(--tensorflow_intra_op_parallelism="$INTRA_OP_THREADS")
[ -n "${INTER_OP_THREADS:-}" ] && ARGS+=(--tensorflow_inter_op_parallelism="$INTER_OP_THREADS")

echo "+ ${SERVER[*]} ${ARGS[*]} $*" >&2
# Not exec: the trap removes the rendered config when the server exits.
"${SERVER[@]}" "${ARGS[@]}" "$@" &
SERVER_PID=$!
trap 'kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID"; cleanup' INT TERM
wait "$SERVER_PID"
