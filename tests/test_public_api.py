"""The curated top-level names resolve, and importing crmkit stays light."""

import subprocess
import sys

import crmkit


def test_every_public_name_resolves():
    for name in crmkit.__all__:
        assert getattr(crmkit, name) is not None, name
    assert crmkit.__all__ == sorted(crmkit.__all__)


def test_import_does_not_load_the_model_stack():
    code = ("import sys, crmkit, crmkit.cli; "
            "print(','.join(m for m in ('lifelines', 'sklearn', 'scipy', 'matplotlib') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""
