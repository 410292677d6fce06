#!/usr/bin/env bash
# One command for a fresh machine: set-up, then the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# Headless Chromium renders the evaluation report in a test; install it where we may (root + apt).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "==> Installing Debian's chromium for the report rendering test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "WARNING: could not install chromium; the report rendering test will be skipped"
fi
# One worker per core (at most 4), each taking whole test files, so a file's module fixtures are built once.
# ADCR_TEST_WORKERS=0 runs everything in this process; a "-n" among the arguments overrides this.
WORKERS="${ADCR_TEST_WORKERS:-$(nproc 2>/dev/null || echo 1)}"
[ "$WORKERS" -le 4 ] || WORKERS=4
PARALLEL=()
[ "$WORKERS" -le 1 ] || PARALLEL=(-n "$WORKERS" --dist loadfile --no-loadscope-reorder)
set +e
python -m pytest tests -p no:cacheprovider "${PARALLEL[@]}" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "ERROR: no tests were collected" >&2; exit 1; fi
exit "$rc"
