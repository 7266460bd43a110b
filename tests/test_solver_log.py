"""Log format against real Caffe: `caffe train` on the sgd case (tests/golden/solver/caffe_train.log,
made by tests/oracle/make_solver_goldens.py) and our tools/train on the same solver print the same
solver lines in the same order, with values within float tolerance (timings excepted); the log parser
reads both alike; plot_training_log writes a PNG."""
import os
import re

import numpy as np
import pytest

from recaffe.tools import plot_training_log as _t_plot_training_log
from recaffe.tools import train as _t_train
from recaffe.solver.log import capture
from recaffe.solver.logparse import parse_log
from test_solver_helpers import CASES, GOLDEN, one_thread, write_case

NUM = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
GLOG = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ ([\w.]+):\d+\] (.*)$")
# Caffe lines that report construction (ours differ in wording) are not compared
SKIP = ("Initializing solver", "Creating training net", "Creating test net", "Finetuning from",
        "Solver scaffolding")


def _messages(lines):
    out = []
    for line in lines:
        m = GLOG.match(line)
        assert m, line
        src, msg = m.groups()
        if src in ("solver.cpp", "sgd_solver.cpp") and not msg.startswith(SKIP):
            out.append(re.sub(r"\(\S+ iter/s, \S+s/", "(T iter/s, Ts/", msg))
    return out


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("log")
    solver_text = CASES["sgd"]["solver"].replace("display: 0 max_iter: 100", "display: 10 max_iter: 40")
    path = write_case(tmp, "sgd", 'test_iter: 2 test_interval: 20 test_compute_loss: true average_loss: 3 '
                      f'snapshot_prefix: "{tmp}/cli"', solver_text=solver_text)
    with one_thread(), capture() as lines, pytest.raises(SystemExit):
        _t_train.main(["-solver=" + path, "-weights=" + os.path.join(GOLDEN, "init.caffemodel")])
    with open(os.path.join(GOLDEN, "caffe_train.log")) as f:
        caffe = [l.rstrip("\n") for l in f]
    return tmp, [l.replace(str(tmp), "TMP") for l in lines], caffe


def test_same_lines_as_caffe(logs):
    _, ours, caffe = logs
    a, b = _messages(ours), _messages(caffe)
    assert [NUM.sub("N", m) for m in a] == [NUM.sub("N", m) for m in b]
    for x, y in zip(a, b):
        if "iter/s" in x and x.startswith("Iteration 0 "):
            continue
        nx, ny = [float(v) for v in NUM.findall(x)], [float(v) for v in NUM.findall(y)]
        np.testing.assert_allclose(nx, ny, rtol=2e-4, err_msg=f"{x!r} vs Caffe {y!r}")


def test_parser_reads_ours_and_caffes_alike(logs):
    _, ours, caffe = logs
    p, q = parse_log(ours), parse_log(caffe)
    assert [r["iter"] for r in p["train"]] == [r["iter"] for r in q["train"]] == [0, 10, 20, 30, 40]
    assert [r["iter"] for r in p["test"]] == [0, 20, 40]
    np.testing.assert_allclose([r["loss"] for r in p["test"]], [r["loss"] for r in q["test"]], rtol=2e-4)
    np.testing.assert_allclose([r["loss"] for r in p["train"]], [r["loss"] for r in q["train"]], rtol=2e-4)
    assert [r.get("lr") for r in p["train"][:4]] == [pytest.approx(0.02)] * 4


def test_plot_training_log_writes_png(logs):
    tmp, ours, caffe = logs
    for name, lines in (("ours.log", ours), ("caffe.log", caffe)):
        (tmp / name).write_text("\n".join(lines) + "\n")
    out = tmp / "curve.png"
    with pytest.raises(SystemExit) as e:
        _t_plot_training_log.cli([str(out), str(tmp / "ours.log"), str(tmp / "caffe.log")])
    assert e.value.code in (0, None)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
