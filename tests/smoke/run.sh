#!/usr/bin/env bash
# The smoke suite of the installable app: build the wheel, install it into a fresh virtual environment outside the
# checkout (same pinned versions as the project), and run tests/smoke against tests/support/hostproject and the local
# PDS.
# Usage: tests/smoke/run.sh [PYTHON]   (`make smoke`)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${1:-$root/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/skyport-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Build from a copy of the whole project (its tracked and not-ignored files), so the packaging configuration decides
# what goes in, and the checkout gets no build/ or *.egg-info.
mkdir -p "$work/src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/src" 2>/dev/null) \
  || cp -r "$root/pyproject.toml" "$root/README.md" "$root/integrations" "$work/src/"
"$python" -m pip wheel "$work/src" --no-deps --wheel-dir "$work/dist" --quiet 2>&1 | grep -v "^WARNING: Location" || true
wheel=$(ls "$work"/dist/skyport-*.whl)
"$python" -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}' > "$work/contents"
echo "smoke: built $(basename "$wheel"), which holds besides Python modules:"
grep -Ev '\.py$' "$work/contents" | sed 's/^/  /'
for wanted in integrations/templates/integrations/base.html integrations/static/integrations/skyport.css \
              integrations/migrations/0001_initial.py; do
  grep -qx "$wanted" "$work/contents" || { echo "smoke: the wheel lacks $wanted" >&2; exit 1; }
done
if grep -Eq '^(config|tests|bench|templates)/' "$work/contents"; then
  echo "smoke: the wheel holds files of the demo project:" >&2; grep -E '^(config|tests|bench|templates)/' "$work/contents" >&2
  exit 1
fi

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  -c "$root/requirements-dev.txt" "$wheel" pytest pytest-django 2>&1 | grep -v "^WARNING: Location" || true
"$work/venv/bin/python" -c "import integrations"  # the install above must have worked

mkdir -p "$work/suite/pds"
cp -r "$root/tests/support/hostproject" "$root/tests/smoke" "$work/suite/"
cp "$root"/tests/support/pds/{server.py,install.sh,start.mjs,package.json,package-lock.json} "$work/suite/pds/"
printf '[pytest]\nDJANGO_SETTINGS_MODULE = hostproject.settings\naddopts = -ra -p no:cacheprovider\n' \
  > "$work/suite/pytest.ini"
cd "$work/suite"
"$work/venv/bin/python" -m pytest smoke
