"""The bad-input suite (tests/fuzz): the resource-limit cases of issue #14 plus seeded random cases
(mutated prototxts and solvers from the zoo, the goldens and the corpus; truncated / bit-flipped
weights, solver states, LMDBs, Datums, HDF5, mean files and images; pickles), each in a child with
a memory cap and a timeout. Every case must end as accepted or as a one-line RecaffeError: no
traceback, no crash, no hang, no case growing past the cap.

    pytest tests/test_fuzz.py                        # the CI slice: 300 random cases (seed 1)
    pytest tests/test_fuzz.py --fuzz-cases 10000     # the long run (tests/fuzz/README.md has its counts)
"""
import json
import os
import subprocess
import sys

from fuzz import limit_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICE = 300


def test_fuzz(request, tmp_path):
    n = request.config.getoption("--fuzz-cases") or SLICE
    out = tmp_path / "fuzz.json"
    cmd = [sys.executable, os.path.join(ROOT, "tests", "fuzz", "run.py"), "--fuzz-cases", str(n), "--seed",
           str(request.config.getoption("--fuzz-seed")), "--jobs", "2", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
                       timeout=600 + 2 * n)
    summary = json.loads(out.read_text())["summary"] if out.exists() else None
    assert summary is not None, p.stdout[-3000:] + p.stderr[-3000:]
    print(p.stdout)
    counts = summary["counts"]
    assert summary["cases"] == n + len(limit_cases.NAMES)
    assert summary["failures"] == 0, p.stdout[-4000:]
    assert counts.get("clean", 0) + counts.get("ok", 0) == summary["cases"]
    assert summary["by_kind"]["limit"] == {"clean": len(limit_cases.NAMES)}    # every limit case refused
    assert summary["peak_rss"] < 2 << 30, summary["peak_case"]
    assert p.returncode == 0
