#!/usr/bin/env bash
# Create the peer environments the benchmarks (and reference oracles) compare against.
#
# The peers never go into crmkit's own venv: lifetimes 0.11.3 (2020) does not run on
# numpy 2 / pandas >= 2.2, and pymc-marketing pulls in pymc/pytensor. Each gets its own
# venv under benchmarks/ (gitignored):
#
#   benchmarks/.venv-lifetimes  lifetimes 0.11.3 + numpy<2, pandas<2.2, scipy<1.12
#   benchmarks/.venv-pymc       pymc-marketing (current release from PyPI)
#
# Each venv gets a READY marker file (containing `pip freeze`) only once its smoke test
# passed, so other scripts can wait for it. Re-running is idempotent: a venv with READY
# is left alone (pass --force to rebuild).
#
# Usage:  bash benchmarks/setup_peers.sh [lifetimes|pymc|all] [--force]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHICH="${1:-all}"
FORCE="${2:-}"
# Python 3.11 for both: lifetimes' pinned scientific stack has wheels for it.
PY="${PEER_PYTHON:-$(command -v python3.11 || command -v python3)}"

make_venv() {
    local name="$1"; shift
    local dir="$HERE/.venv-$name"
    if [[ -f "$dir/READY" && "$FORCE" != "--force" ]]; then
        echo "[$name] already ready: $dir"; return 0
    fi
    [[ "$FORCE" == "--force" ]] && rm -rf "$dir"
    [[ -x "$dir/bin/python" ]] || "$PY" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet "$@"
}

setup_lifetimes() {
    make_venv lifetimes \
        "lifetimes==0.11.3" "numpy>=1.26,<2" "pandas>=2.1,<2.2" "scipy>=1.11,<1.12" \
        "autograd<1.7" "pyarrow>=14,<17" "dill"
    local dir="$HERE/.venv-lifetimes"
    [[ -f "$dir/READY" && "$FORCE" != "--force" ]] && return 0
    "$dir/bin/python" - <<'PY'
import pandas as pd
from lifetimes.utils import summary_data_from_transaction_data
tx = pd.DataFrame({"id": ["a", "a", "b"],
                   "date": pd.to_datetime(["2020-01-01", "2020-01-05", "2020-01-02"])})
s = summary_data_from_transaction_data(tx, "id", "date", observation_period_end="2020-01-10")
assert s.loc["a", "frequency"] == 1 and s.loc["a", "recency"] == 4 and s.loc["a", "T"] == 9, s
print("lifetimes smoke test ok")
PY
    "$dir/bin/python" -m pip freeze > "$dir/READY"
    echo "[lifetimes] ready: $dir"
}

setup_pymc() {
    make_venv pymc "pymc-marketing" "pyarrow"
    local dir="$HERE/.venv-pymc"
    [[ -f "$dir/READY" && "$FORCE" != "--force" ]] && return 0
    "$dir/bin/python" - <<'PY'
import pandas as pd
from pymc_marketing.clv.utils import rfm_summary
tx = pd.DataFrame({"id": ["a", "a", "b"],
                   "date": pd.to_datetime(["2020-01-01", "2020-01-05", "2020-01-02"])})
s = rfm_summary(tx, "id", "date", observation_period_end="2020-01-10").set_index("customer_id")
assert s.loc["a", "frequency"] == 1 and s.loc["a", "recency"] == 4 and s.loc["a", "T"] == 9, s
print("pymc-marketing smoke test ok")
PY
    "$dir/bin/python" -m pip freeze > "$dir/READY"
    echo "[pymc] ready: $dir"
}

case "$WHICH" in
    lifetimes) setup_lifetimes ;;
    pymc) setup_pymc ;;
    all) setup_lifetimes; setup_pymc ;;
    *) echo "usage: $0 [lifetimes|pymc|all] [--force]" >&2; exit 2 ;;
esac
