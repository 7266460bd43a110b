"""The caffe-style command line (tools/caffe.py, tools/verbs.py, tools/train.py, test.py, time.py): log
format, train/test/time verbs, and bad input -> one line on stderr, exit status 2, nothing written."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from recaffe.tools import caffe as _t_caffe
from recaffe.tools import test as _t_test
from recaffe.tools import time as _t_time
from recaffe.tools import train as _t_train
from recaffe.solver.log import capture
from test_solver_helpers import CASES, GOLDEN, one_thread, write_case

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INIT = os.path.join(GOLDEN, "init.caffemodel")
GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] ")


def _exit_code(fn, argv, capsys):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    err = capsys.readouterr().err
    return e.value.code, [l for l in err.splitlines() if l.strip()]


def _ok(fn, argv):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    assert e.value.code in (0, None)


def _bad(tmp_path, capsys, argv, fn=_t_caffe.main):
    before = sorted(os.listdir(tmp_path))
    code, lines = _exit_code(fn, argv, capsys)
    errors = [l for l in lines if not GLOG.match(l)]
    assert code == 2
    assert len(errors) == 1, lines
    assert sorted(os.listdir(tmp_path)) == before     # nothing written
    return errors[0]


def test_missing_net_file(tmp_path, capsys):
    s = tmp_path / "solver.prototxt"
    s.write_text('net: "no_such_net.prototxt"\nbase_lr: 0.01 lr_policy: "fixed" max_iter: 10\n'
                 f'snapshot_prefix: "{tmp_path}/x"\n')
    msg = _bad(tmp_path, capsys, ["train", f"-solver={s}"])
    assert "no_such_net.prototxt" in msg and "not found" in msg


@pytest.mark.parametrize("field,value,needle", [("type", '"SGDX"', "Nesterov"),
                                                 ("lr_policy", '"cosine"', "multistep"),
                                                 ("regularization_type", '"L3"', "L1")])
def test_unknown_type_policy_regularization(tmp_path, capsys, field, value, needle):
    base = CASES["sgd"]["solver"]
    text = base.replace('"fixed"', value) if field == "lr_policy" else f"{base} {field}: {value}"
    path = write_case(tmp_path, "sgd", solver_text=text)
    msg = _bad(tmp_path, capsys, ["-solver=" + path], fn=_t_train.main)
    assert value.strip('"') in msg and needle in msg


def test_absent_lr_policy(tmp_path, capsys):
    path = write_case(tmp_path, "sgd", solver_text="base_lr: 0.01 max_iter: 3")
    assert "lr_policy absent" in _bad(tmp_path, capsys, ["train", "-solver=" + path])


def test_weights_of_another_net(tmp_path, capsys):
    path = write_case(tmp_path, "sgd", f'snapshot_prefix: "{tmp_path}/s"')
    other = os.path.join(ROOT, "tests", "golden", "weights", "caffe_small.caffemodel")
    msg = _bad(tmp_path, capsys, ["train", "-solver=" + path, "-weights=" + other])
    assert "caffe_small.caffemodel" in msg


def test_snapshot_and_weights_together(tmp_path, capsys):
    path = write_case(tmp_path, "sgd")
    msg = _bad(tmp_path, capsys, ["train", "-solver=" + path, "-weights=" + INIT, "-snapshot=x.solverstate"])
    assert "-snapshot" in msg


def test_unknown_command_and_flag(tmp_path, capsys):
    assert "train" in _bad(tmp_path, capsys, ["fly"])
    assert "bogus" in _bad(tmp_path, capsys, ["train", "-bogus=1"])


def test_train_logs_parse_like_caffe(tmp_path, capsys):
    """tools/train: glog prefix on every line, Caffe's wording for iteration/output/lr/test lines."""
    path = write_case(tmp_path, "sgd", f'display: 5 test_iter: 2 test_interval: 10 snapshot_prefix: "{tmp_path}/s"')
    with one_thread(), capture() as lines:
        _ok(_t_train.main, ["-solver=" + path, "-weights=" + INIT, "-iterations=10"])
    assert lines and all(GLOG.match(l) for l in lines)
    msgs = [l.split("] ", 1)[1] for l in lines]
    assert any(re.fullmatch(r"Iteration 5 \([\d.e+-]+ iter/s, [\d.e+-]+s/5 iters\), loss = [\d.e+-]+", m) for m in msgs)
    assert any(re.fullmatch(r"    Train net output #0: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)", m) for m in msgs)
    assert "Iteration 5, lr = 0.02" in msgs
    assert "Iteration 10, Testing net (#0)" in msgs and "Iteration 0, Testing net (#0)" in msgs
    assert any(m.startswith("    Test net output #0: loss = ") for m in msgs)
    assert msgs[-1] == "Optimization Done."
    assert (tmp_path / "s_iter_10.caffemodel").exists() and (tmp_path / "s_iter_10.solverstate").exists()


def test_test_and_time_verbs(tmp_path):
    net = os.path.join(tmp_path, "net.prototxt")
    write_case(tmp_path, "sgd")
    with one_thread(), capture() as lines:
        _ok(_t_test.main, [f"-model={net}", f"-weights={INIT}", "-iterations=4"])
    msgs = [l.split("] ", 1)[1] for l in lines]
    batch = [m for m in msgs if m.startswith("Batch ")]
    assert len(batch) == 4 and batch[0].startswith("Batch 0, loss = ")
    first = float(batch[0].split("= ")[1])
    caffe_first = float(np.load(os.path.join(GOLDEN, "sgd.npz"))["loss"][0])   # batch 0, initial weights
    assert abs(first - caffe_first) < 1e-5 * caffe_first
    assert any(m.startswith("Loss: ") for m in msgs) and any(m.startswith("loss = ") for m in msgs)
    with one_thread(), capture() as lines:
        _ok(_t_time.main, [f"-model={net}", "-iterations=2"])
    msgs = [l.split("] ", 1)[1] for l in lines]
    assert any(re.fullmatch(r"     conv1\tforward: [\d.e+-]+ ms\.", m) for m in msgs)
    assert any(re.fullmatch(r"     conv1\tbackward: [\d.e+-]+ ms\.", m) for m in msgs)
    assert any(m.startswith("Average Forward-Backward: ") for m in msgs)
    assert any(m.startswith("Iteration: 2 forward-backward time: ") for m in msgs)


def test_subprocess_exit_status(tmp_path):
    """The real entry point: `python -m recaffe.tools.caffe` with a bad solver -> status 2, one line, no traceback."""
    s = tmp_path / "solver.prototxt"
    s.write_text('net: "missing.prototxt" lr_policy: "fixed"\n')
    r = subprocess.run([sys.executable, "-m", "recaffe.tools.caffe", "train", f"-solver={s}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    err = [l for l in r.stderr.splitlines() if l.strip() and not GLOG.match(l)]
    assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr


def test_gpu_request_without_cuda_falls_back_with_a_note():
    import torch
    from recaffe.tools.verbs import select_device
    from recaffe.protos import caffe_pb2
    with capture() as lines:
        dev = select_device("0")
        cpu = select_device("", caffe_pb2.SolverParameter())          # solver_mode absent -> CPU
    assert cpu.type == "cpu" and any("Use CPU." in l for l in lines)
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    else:
        assert dev.type == "cpu" and any(l.startswith("W") and "CUDA is not available" in l for l in lines)


def test_train_writes_and_resumes_hdf5_snapshots(tmp_path, capsys):
    """snapshot_format: HDF5 in the solver file is kept by tools/train, and -snapshot=<x>.solverstate.h5
    resumes: 8 + 4 iterations end on the weights of 12 uninterrupted ones (the data source holds 4
    batches, so the resumed data layer, restarting at its beginning as Caffe's does, is in step)."""
    path = write_case(tmp_path, "sgd", f'snapshot: 8 snapshot_format: HDF5 snapshot_prefix: "{tmp_path}/s"')
    with one_thread(), capture():
        _ok(_t_train.main, ["-solver=" + path, "-weights=" + INIT, "-iterations=12"])
    for it in (8, 12):
        assert (tmp_path / f"s_iter_{it}.caffemodel.h5").exists() and (tmp_path / f"s_iter_{it}.solverstate.h5").exists()
    import h5py
    with h5py.File(tmp_path / "s_iter_12.caffemodel.h5", "r") as f:
        full = {k: f["data"][k]["0"][()] for k in f["data"] if "0" in f["data"][k]}
    os.remove(tmp_path / "s_iter_12.caffemodel.h5")
    with one_thread(), capture():
        _ok(_t_caffe.main, ["train", "-solver=" + path, f"-snapshot={tmp_path}/s_iter_8.solverstate.h5",
                               "-iterations=12"])
    with h5py.File(tmp_path / "s_iter_12.caffemodel.h5", "r") as f:
        assert full and all(np.array_equal(f["data"][k]["0"][()], v) for k, v in full.items())


@pytest.mark.parametrize("content", [None, b"not hdf5"])
def test_bad_hdf5_snapshot(tmp_path, capsys, content):
    path = write_case(tmp_path, "sgd", f'snapshot_prefix: "{tmp_path}/s"')
    state = tmp_path / "x.solverstate.h5"
    if content is not None:
        state.write_bytes(content)
    msg = _bad(tmp_path, capsys, ["train", "-solver=" + path, f"-snapshot={state}"])
    assert str(state) in msg and ("no such HDF5 solver state file" if content is None else "cannot read") in msg
