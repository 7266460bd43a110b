"""kill -9 at random points (seeded): training resumed from the newest snapshot ends with exactly the
weights of an uninterrupted run, every snapshot file at its final name is whole; convert_imageset
never leaves a half-written database at its final path.

The training data is an LMDB holding exactly one batch, read without random transformations, so
every iteration sees the same batch and a resumed run (which restores iteration, weights and solver
history, as Caffe's Solver::Restore) must reproduce the uninterrupted one bit for bit.
"""
import glob
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fuzz import artifacts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
MAX_ITER, SNAPSHOT = 40, 4

NET = """name: "k"
layer {{ name: "data" type: "Data" top: "data" top: "label" transform_param {{ scale: 0.0039 }}
  data_param {{ source: "{db}" batch_size: 6 backend: LMDB }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 32 kernel_size: 3 pad: 1 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
  inner_product_param {{ num_output: 256 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""
SOLVER = """net: "{net}"
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 0.7
stepsize: 7
max_iter: {max_iter}
display: 1
snapshot: {snapshot}
snapshot_prefix: "{prefix}"
random_seed: 11
type: "{type}"
{extra}"""


def _setup(folder, fmt):
    os.makedirs(folder, exist_ok=True)
    db = os.path.join(folder, "db")
    if not os.path.exists(db):
        artifacts.write_lmdb(db, artifacts.raw_datums(6))
    net = artifacts.write(os.path.join(folder, "net.prototxt"), NET.format(db=db))
    extra = 'snapshot_format: HDF5\n' if fmt == "hdf5" else ""
    return artifacts.write(os.path.join(folder, "solver.prototxt"), SOLVER.format(
        net=net, max_iter=MAX_ITER, snapshot=SNAPSHOT, prefix=os.path.join(folder, "snap"), type="Adam",
        extra=extra))


def _train(solver, fmt, resume=None):
    cmd = [sys.executable, "-m", "recaffe.tools.caffe", "train", f"-solver={solver}"]
    if fmt == "pth":
        cmd.append("-snapshot_format=pth")
    if resume:
        cmd.append(f"-snapshot={resume}")
    return cmd


EXT = {"binaryproto": (".caffemodel", ".solverstate"), "hdf5": (".caffemodel.h5", ".solverstate.h5"),
       "pth": (".pth", ".solverstate.pth")}


def _weights(path):
    from recaffe.netspec.net.net import Net
    net = Net(os.path.join(os.path.dirname(path), "net.prototxt"), phase="TRAIN", weights=path)
    try:
        return {k: v.numpy().copy() for k, v in net.caffe_state_dict().items()}
    finally:
        net.layers[0].close()


def _snapshots(folder, fmt):
    state_ext = EXT[fmt][1]
    found = {}
    for f in glob.glob(os.path.join(folder, "snap_iter_*" + state_ext)):
        m = re.search(r"snap_iter_(\d+)" + re.escape(state_ext) + "$", f)
        if m:
            found[int(m.group(1))] = f
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The final weights of an uninterrupted run (the same in every snapshot format)."""
    folder = str(tmp_path_factory.mktemp("ref"))
    solver = _setup(folder, "binaryproto")
    p = subprocess.run(_train(solver, "binaryproto"), env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return _weights(os.path.join(folder, f"snap_iter_{MAX_ITER}.caffemodel"))


@pytest.mark.parametrize("fmt, seed", [("binaryproto", 1), ("pth", 2), ("hdf5", 3)])
def test_kill_9_during_training_then_resume(tmp_path, reference, fmt, seed):
    rng = random.Random(seed)
    folder = str(tmp_path)
    solver = _setup(folder, fmt)
    kill_after = rng.randrange(SNAPSHOT, MAX_ITER - SNAPSHOT, SNAPSHOT)    # a snapshot seen, then a random delay
    proc = subprocess.Popen(_train(solver, fmt), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while kill_after not in _snapshots(folder, fmt) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.15))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before the kill point: make it longer"
    done = _snapshots(folder, fmt)
    assert done and max(done) < MAX_ITER
    model_ext, state_ext = EXT[fmt]
    for it, state in done.items():     # whatever the kill interrupted, no file at a final name is partial
        from recaffe.solver.state import read_solverstate
        assert read_solverstate(state).iter == it
        _weights(state[:-len(state_ext)] + model_ext)
    latest = done[max(done)]
    p = subprocess.run(_train(solver, fmt, resume=latest), env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    final = _weights(os.path.join(folder, f"snap_iter_{MAX_ITER}{model_ext}"))
    assert final.keys() == reference.keys()
    for k in final:
        np.testing.assert_array_equal(final[k], reference[k], err_msg=k)


def test_kill_9_during_convert_imageset(tmp_path):
    """At random moments (seeded) while writing: the final path holds nothing, or the whole database
    (the temporary database a kill -9 leaves beside it, .DB.tmp-*, is never at the final path)."""
    from recaffe.netspec.data.lmdb_io import LMDBReader
    imgs = artifacts.images(8, shape=(3, 96, 96))
    files = []
    for i in range(400):
        files.append(artifacts.write(str(tmp_path / f"i{i}.png"), artifacts.encode(imgs[i % 8], "png")))
    lst = artifacts.write(str(tmp_path / "list.txt"), "".join(f"{f} {i % 5}\n" for i, f in enumerate(files)))
    rng = random.Random(7)
    outcomes = []
    for k in range(3):
        db = str(tmp_path / f"db{k}")
        proc = subprocess.Popen([sys.executable, "-m", "recaffe.tools.convert_imageset", "--resize_height=64",
                                 "--resize_width=64", "/", lst, db], env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 120    # wait until the workers run (a temporary database exists)
        while not glob.glob(str(tmp_path / f".db{k}.tmp-*")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        # the first kill lands as soon as the temporary database exists (well before 400 images are
        # written, so 'nothing' is always seen); the others at seeded random moments
        time.sleep(0 if k == 0 else rng.uniform(0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read()
        if os.path.exists(db):     # renamed into place only when complete (it may be killed after that)
            assert len(LMDBReader(db)) == 400
            outcomes.append("complete")
        else:
            assert proc.returncode == -signal.SIGKILL
            outcomes.append("nothing")
    assert "nothing" in outcomes, outcomes
