#!/usr/bin/env bash
# Run the test suite on the OLDEST versions pyproject.toml allows (the second leg of
# the CI matrix; the first, .ci/run, tests what a fresh install resolves today).
#
# Every ">=X" lower bound of [project.dependencies] and of the "test" extra becomes
# "==X.*" (the oldest release series allowed, with its latest bug-fix release:
# psycopg-binary has no 3.1.0) in a constraints file, installed into its own venv
# (.venv-oldest, git-ignored), then the whole suite runs there.
#
# Usage:  bash scripts/test_oldest.sh [pytest args...]
#         PYTHON=python3.11 bash scripts/test_oldest.sh -x -q
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
VENV="$HERE/.venv-oldest"
CONSTRAINTS="$VENV/constraints-oldest.txt"

[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" - "$CONSTRAINTS" <<'PY'
import re, sys, tomllib
meta = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(meta["dependencies"]) + list(meta["optional-dependencies"]["test"])
pins = []
for r in reqs:
    m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", r)
    if m:
        pins.append(f"{m.group(1)}=={m.group(3)}.*")  # the oldest release series allowed
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
print("pinned to the lower bounds:", ", ".join(pins))
PY
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c "$CONSTRAINTS" -e ".[test]"
"$VENV/bin/python" -m pip freeze | grep -iE "^(polars|numpy|scipy|pandas|pyarrow|scikit-learn|lifelines|pydantic)==" 
export CRMKIT_REFERENCE_DATA="${CRMKIT_REFERENCE_DATA:-$HERE/../shared/data}"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
