# Sourced by scripts/demo.sh and scripts/test.sh: finds Python 3.10, creates (or reuses) a virtualenv keyed
# by the pin files' hash, installs the pins and this project, and exports the environment the stack needs.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

find_python310() {
  local candidates=("${PYTHON310:-}" python3.10)
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)/versions/3.10.13/bin/python3.10")
    candidates+=("$(ls -d "$(pyenv root)"/versions/3.10.*/bin/python3.10 2>/dev/null | tail -n 1)")
  fi
  candidates+=("$HOME/.pyenv/versions/3.10.13/bin/python3.10" /usr/bin/python3.10 /usr/local/bin/python3.10)
  for c in "${candidates[@]}"; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

if ! PY310="$(find_python310)"; then
  cat >&2 <<'MSG'
ERROR: Python 3.10 is required (TFX 1.16 installs only on Python 3.10) and was not found.
Install it, then re-run, or point PYTHON310 at its interpreter:
  - pyenv:   pyenv install 3.10.13
  - Debian/Ubuntu:  apt-get install python3.10 python3.10-venv   (deadsnakes PPA on Ubuntu)
  - or:      PYTHON310=/path/to/python3.10 bash scripts/demo.sh
MSG
  exit 1
fi

PIN_HASH="$(cat "$REPO_ROOT"/requirements/tfx116.txt "$REPO_ROOT"/requirements/tfx116-lock.txt | sha256sum | cut -c1-12)"
VENV_DIR="${ADCR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/adcreative-ranking/venv-py310-$PIN_HASH}"

if [ ! -f "$VENV_DIR/.complete" ]; then
  echo "==> Creating virtualenv $VENV_DIR with $PY310 (first run: ~4 min, ~3.5 GB)"
  rm -rf "$VENV_DIR"
  "$PY310" -m venv "$VENV_DIR"
  "$VENV_DIR/bin/python" -m pip install --quiet --upgrade "pip==24.2"
  "$VENV_DIR/bin/python" -m pip install --quiet --progress-bar off \
      -r "$REPO_ROOT/requirements/tfx116.txt" -c "$REPO_ROOT/requirements/tfx116-lock.txt"
  touch "$VENV_DIR/.complete"
fi

# The project itself, editable, so the venv (shared between clones by pin hash) points at this checkout
# and at no other one. Skipped when it already does: reinstalling briefly removes the path entry, which would
# break Beam worker processes of another shell using the same venv.
PTH="$("$VENV_DIR/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/easy-install.pth"
if [ "$(cat "$PTH" 2>/dev/null)" != "$REPO_ROOT" ]; then
  "$VENV_DIR/bin/python" -m pip uninstall --quiet --yes adcreative-ranking >/dev/null 2>&1 || true
  "$VENV_DIR/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$REPO_ROOT" >/dev/null 2>&1
fi

export PATH="$VENV_DIR/bin:$PATH"
export VIRTUAL_ENV="$VENV_DIR"
# TFX 1.16, TFT, TFMA and tensorflow-recommenders need Keras 2 (tf_keras); this must be set before Python starts.
export TF_USE_LEGACY_KERAS=1
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::DeprecationWarning}"
cd "$REPO_ROOT"
