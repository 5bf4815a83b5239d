"""scikit-learn's estimator checks on crmkit's survival estimators.

The checks build their own targets (class labels or regression values), which a
survival estimator cannot take: it needs ``y`` with an event flag and a positive
duration. So each estimator runs through a thin adapter, defined here and only
for the test, that turns a 1-D ``y`` into ``make_y(y - min(y) + 1, event=True)``
(durations, all observed) in ``fit`` and ``score``; everything else is the real
estimator. Checks that still do not apply are listed in ``EXPECTED_FAILED`` with
the reason, and ``check_estimator`` is told about them (it then reports them as
expected failures instead of silently passing).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from crmkit.churn import CoxPH, KaplanMeierBaseline, WeibullAFT, make_y


def _to_survival(y):
    y = np.asarray(y)
    if y.dtype.names is None:
        y = y.astype(float)
        y = y - y.min() + 1.0 if y.size else y
        return make_y(y, np.ones(y.size, bool))
    return y


class _Adapter:
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def fit(self, X, y=None):
        return super().fit(X, y if y is None else _to_survival(y))

    def score(self, X, y):
        return super().score(X, _to_survival(y))


class CheckableCoxPH(_Adapter, CoxPH):
    pass


class CheckableWeibullAFT(_Adapter, WeibullAFT):
    pass


class CheckableKaplanMeierBaseline(_Adapter, KaplanMeierBaseline):
    pass


# No check is expected to fail: the list is kept (empty) so that a check that stops
# applying is recorded here with its reason rather than silently dropped.
EXPECTED_FAILED: dict[str, str] = {}


@pytest.mark.parametrize("est", [CheckableCoxPH(unit="days"), CheckableWeibullAFT(unit="days"),
                                 CheckableKaplanMeierBaseline(unit="days")],
                         ids=["CoxPH", "WeibullAFT", "KaplanMeierBaseline"])
def test_check_estimator(est):
    with warnings.catch_warnings():
        # the checks fit on tiny random data: screening and convergence warnings are expected
        warnings.simplefilter("ignore")
        results = check_estimator(est, expected_failed_checks=EXPECTED_FAILED, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results
              if r["status"] == "failed"]
    assert not failed, failed
    passed = [r for r in results if r["status"] == "passed"]
    assert len(passed) > 30
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    # check_array_api_input: skipped by scikit-learn itself unless SCIPY_ARRAY_API=1;
    # the estimators convert to numpy/polars and make no array-API promise.
    assert skipped <= {"check_array_api_input"}, skipped
