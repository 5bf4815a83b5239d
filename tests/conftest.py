"""Shared fixtures: reference data location, every accepted input type."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")

from crmkit.datasets import reference_data_dir  # noqa: E402

os.environ.setdefault("POLARS_MAX_THREADS", "2")


@pytest.fixture(scope="session")
def reference_dir():
    """The ../shared/data folder, or a skip that says why."""
    path = reference_data_dir(required=False)
    if path is None:
        pytest.skip("reference data folder ../shared/data not found; set CRMKIT_REFERENCE_DATA")
    return path


@pytest.fixture(params=["polars", "lazy", "pandas", "pyarrow"])
def as_input(request):
    """Convert a polars frame to each input type public functions accept."""
    kind = request.param

    def convert(frame):
        if kind == "polars":
            return frame
        if kind == "lazy":
            return frame.lazy()
        if kind == "pandas":
            return frame.to_pandas()
        return frame.to_arrow()

    convert.kind = kind
    return convert
