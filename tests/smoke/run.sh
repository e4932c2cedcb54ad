#!/usr/bin/env bash
# The smoke suite of the installable app: build the wheel, install it into a fresh virtual environment outside the
# checkout (same pinned versions as the project), and run tests/smoke against tests/hostproject and the local PDS.
# Usage: tests/smoke/run.sh [PYTHON]   (`make smoke`)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${1:-$root/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/skyport-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Build from a copy of what the wheel is made of, so the checkout gets no build/ or *.egg-info.
mkdir -p "$work/src"
cp -r "$root/pyproject.toml" "$root/README.md" "$root/integrations" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m pip wheel "$work/src" --no-deps --wheel-dir "$work/dist" --quiet 2>&1 | grep -v "^WARNING: Location" || true
wheel=$(ls "$work"/dist/skyport-*.whl)
echo "smoke: built $(basename "$wheel"), which holds besides Python modules:"
"$python" -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}' | grep -Ev '\.py$' | sed 's/^/  /'

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  -c "$root/requirements-dev.txt" "$wheel" pytest pytest-django 2>&1 | grep -v "^WARNING: Location" || true
"$work/venv/bin/python" -c "import integrations"  # the install above must have worked

mkdir -p "$work/suite/pds"
cp -r "$root/tests/hostproject" "$root/tests/smoke" "$work/suite/"
cp "$root"/tests/pds/{server.py,install.sh,start.mjs,package.json,package-lock.json} "$work/suite/pds/"
printf '[pytest]\nDJANGO_SETTINGS_MODULE = hostproject.settings\naddopts = -ra -p no:cacheprovider\n' \
  > "$work/suite/pytest.ini"
cd "$work/suite"
"$work/venv/bin/python" -m pytest smoke
