"""Shared pytest fixtures."""
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--fuzz-cases", type=int, default=0,
                     help="random cases for tests/test_fuzz.py (default: the CI slice of 300)")
    parser.addoption("--fuzz-seed", type=int, default=1, help="seed of tests/test_fuzz.py's random cases")


@pytest.fixture
def at_repo_root(monkeypatch):
    """Run the test from the repository root (golden layer texts hold paths relative to it); a module
    opts in with ``pytestmark = pytest.mark.usefixtures("at_repo_root")``."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def golden(request):
    """The requesting module's Caffe goldens as {name: array}, read once from the .npz file its
    ``GOLDEN_NPZ`` names."""
    with np.load(request.module.GOLDEN_NPZ) as z:
        return {k: z[k] for k in z.files}
