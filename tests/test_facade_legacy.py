"""An unchanged pycaffe script (tests/legacy_scripts/net_surgery.py) run through tools/pycaffe.py in a
subprocess prints what real pycaffe printed for it and writes the same prototxt.
Golden: tests/oracle/make_facade_goldens.py (legacy())."""
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden", "facade")
SCRIPT = os.path.join(HERE, "legacy_scripts", "net_surgery.py")
NUM = re.compile(r"^-?\d+\.\d+$")


def same_output(ours, theirs, tol=1.5e-4):
    """Line by line, token by token; printed decimals may differ by one unit in the last place."""
    a, b = ours.splitlines(), theirs.splitlines()
    assert len(a) == len(b), f"{len(a)} lines vs pycaffe's {len(b)}:\n{ours}"
    for i, (x, y) in enumerate(zip(a, b), 1):
        tx, ty = x.split(), y.split()
        assert len(tx) == len(ty), f"line {i}: {x!r} vs pycaffe {y!r}"
        for u, v in zip(tx, ty):
            if NUM.match(u) and NUM.match(v):
                assert abs(float(u) - float(v)) <= tol, f"line {i}: {x!r} vs pycaffe {y!r}"
            else:
                assert u == v, f"line {i}: {x!r} vs pycaffe {y!r}"


def run_tool(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pycaffe.py"), *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_legacy_script_matches_pycaffe(tmp_path):
    r = run_tool(SCRIPT, str(tmp_path))
    assert r.returncode == 0, r.stderr
    with open(os.path.join(GOLDEN, "legacy_net_surgery.stdout")) as f:
        same_output(r.stdout, f.read())
    with open(os.path.join(GOLDEN, "legacy_net_surgery.deploy.prototxt")) as f:
        assert (tmp_path / "deploy.prototxt").read_text() == f.read()


def test_script_argv_path_and_exit_status(tmp_path):
    script = tmp_path / "probe.py"
    (tmp_path / "helper_mod.py").write_text("VALUE = 41\n")
    script.write_text("import sys, caffe, recaffe, helper_mod\n"
                      "print(sys.argv[1:], caffe is recaffe, helper_mod.VALUE + 1, __name__)\n"
                      "sys.exit(3)\n")
    r = run_tool(str(script), "a", "--b", cwd=str(tmp_path))
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip() == "['a', '--b'] True 42 __main__"


@pytest.mark.parametrize("args,msg", [((), "missing argument SCRIPT"), (("/nonexistent.py",), "no such script"),
                                      (("--bogus", "x.py"), "unknown flag")])
def test_tool_errors_are_one_line(args, msg):
    r = run_tool(*args)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
