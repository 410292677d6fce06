#!/usr/bin/env bash
# Serves the pushed AR and CR models with TensorFlow Serving.
#
#   serving/start_tf_serving.sh SERVING_ROOT
#
# SERVING_ROOT is the pipeline's push destination: SERVING_ROOT/ar/<version>/ and SERVING_ROOT/cr/<version>/.
# Environment: GRPC_PORT (8500), REST_PORT (8501), POLL_SECONDS (5), ENABLE_BATCHING (false; when true,
# run the router with --tile-user-features --sequence-length N, see config/batching.config),
# INTRA_OP_THREADS / INTER_OP_THREADS (TF's defaults), TF_MODEL_SERVER (binary; default from PATH).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 SERVING_ROOT" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG_DIR="$HERE/config"
SERVING_ROOT="$(cd "$1" && pwd)"
BINARY="${TF_MODEL_SERVER:-$(command -v tensorflow_model_server || true)}"

if [ -z "$BINARY" ]; then
  echo "tensorflow_model_server is not on PATH. Install TF Serving (see BUILD.md); for the official" >&2
  echo "Docker image command run: python -m serving.tf_serving --serving-root \"$SERVING_ROOT\"" >&2
  echo "For a local try-out without TF Serving: python -m serving.standin --serving-root \"$SERVING_ROOT\"" >&2
  exit 127
fi

for model in ar cr; do
  [ -d "$SERVING_ROOT/$model" ] || echo "warning: $SERVING_ROOT/$model does not exist yet" >&2
done

MODELS_CONFIG="$(mktemp -t models.config.XXXXXX)"
trap 'rm -f "$MODELS_CONFIG"' EXIT
sed "s#\${SERVING_ROOT}#${SERVING_ROOT}#g" "$CONFIG_DIR/models.config" > "$MODELS_CONFIG"

ARGS=(
  --port="${GRPC_PORT:-8500}"
  --rest_api_port="${REST_PORT:-8501}"
  --model_config_file="$MODELS_CONFIG"
  --enable_batching="${ENABLE_BATCHING:-false}"
  --monitoring_config_file="$CONFIG_DIR/monitoring.config"
  --file_system_poll_wait_seconds="${POLL_SECONDS:-5}"
)
if [ "${ENABLE_BATCHING:-false}" = "true" ]; then
  ARGS+=(--batching_parameters_file="$CONFIG_DIR/batching.config")
fi
[ -n "${INTRA_OP_THREADS:-}" ] && ARGS+=(--tensorflow_intra_op_parallelism="$INTRA_OP_THREADS")
[ -n "${INTER_OP_THREADS:-}" ] && ARGS+=(--tensorflow_inter_op_parallelism="$INTER_OP_THREADS")

echo "+ $BINARY ${ARGS[*]}" >&2
# Not exec: the trap removes the rendered config when the server exits.
"$BINARY" "${ARGS[@]}" &
SERVER_PID=$!
trap 'kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID"; rm -f "$MODELS_CONFIG"' INT TERM
wait "$SERVER_PID"
