"""Trajectory parity with real Caffe: 100 iterations of each case of tests/oracle/make_solver_goldens.py
(six solver types, seven lr policies, iter_size 2, clip_gradients, L1, lr_mult/decay_mult, a frozen
layer) from Caffe's initial .caffemodel on the same HDF5 batches; per-iteration losses and final weights
within 1e-4 relative. Also: restoring Caffe's snapshot continues Caffe's run, and the .solverstate we
write at the same iteration matches Caffe's field by field."""
import os

import numpy as np
import pytest

from recaffe.solver.solver import Solver
from recaffe.solver.state import read_solverstate
from test_solver_helpers import CASES, GOLDEN, one_thread, rel_err, weights, write_case

ITERS = 100
SNAP_AT = 48


def run(tmp, name, iters=ITERS, restore=None, extra=""):
    solver = Solver(write_case(tmp, name, extra))
    if restore:
        solver.restore(restore)
    else:
        solver.load_weights(os.path.join(GOLDEN, "init.caffemodel"))
    losses = []
    while solver.iter < iters:
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].detach()))
    return solver, np.array(losses)


def check_losses(ours, caffe):
    rel = np.abs(ours - caffe) / np.abs(caffe)
    assert rel.max() < 1e-4, f"iteration {rel.argmax()}: {ours[rel.argmax()]} vs Caffe {caffe[rel.argmax()]}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_trajectory_matches_caffe(tmp_path, name):
    golden = np.load(os.path.join(GOLDEN, f"{name}.npz"))
    with one_thread():
        solver, losses = run(tmp_path, name)
    check_losses(losses, golden["loss"])
    assert losses[-1] < 0.5 * losses[0]   # the trajectory is a real descent, not a flat line
    ours = weights(solver.net)
    assert set(ours) == {k for k in golden.files if k.startswith("w_")}
    for k, w in ours.items():
        assert rel_err(w, golden[k]) < 1e-4, k


def test_frozen_layer_does_not_move_and_gets_no_grad(tmp_path):
    with one_thread():
        solver, _ = run(tmp_path, "frozen", iters=3)
    conv = solver.net.params["conv1"]
    assert all(not p.requires_grad and p.grad is None for p in conv)
    init = Solver(write_case(tmp_path, "frozen"))
    init.load_weights(os.path.join(GOLDEN, "init.caffemodel"))
    for a, b in zip(conv, init.net.params["conv1"]):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())


@pytest.mark.parametrize("name", ["sgd", "adam", "adadelta", "multistep"])
def test_restore_caffe_snapshot_continues_caffe_run(tmp_path, name):
    """Caffe's iteration-48 snapshot, restored by us, continues with Caffe's losses (48 is a multiple
    of the 4 HDF5 batches, so the restarted data stream lines up with the uninterrupted run)."""
    golden = np.load(os.path.join(GOLDEN, f"{name}.npz"))
    state = os.path.join(GOLDEN, f"snap_{name}_iter_{SNAP_AT}.solverstate")
    cwd = os.getcwd()
    os.chdir(GOLDEN)   # learned_net is a bare file name, relative to where Caffe wrote it
    try:
        with one_thread():
            solver, losses = run(tmp_path, name, restore=state)
    finally:
        os.chdir(cwd)
    assert solver.iter == ITERS
    check_losses(losses, golden["loss"][SNAP_AT:])


@pytest.mark.parametrize("name", ["sgd", "adam", "multistep"])
def test_our_solverstate_matches_caffes(tmp_path, name):
    """At iteration 48 our .solverstate has Caffe's iter, current_step, history count/shapes and values
    (within float tolerance), and learned_net names our .caffemodel."""
    with one_thread():
        solver, _ = run(tmp_path, name, iters=SNAP_AT, extra=f'snapshot_prefix: "{tmp_path}/ours"')
        model, path = solver.snapshot()
    ours = read_solverstate(path)
    caffe = read_solverstate(os.path.join(GOLDEN, f"snap_{name}_iter_{SNAP_AT}.solverstate"))
    assert (ours.iter, ours.current_step) == (caffe.iter, caffe.current_step) == (SNAP_AT, caffe.current_step)
    assert ours.learned_net == model and os.path.exists(model)
    assert len(ours.history) == len(caffe.history)
    for h, c in zip(ours.history, caffe.history):
        assert h.shape == c.shape
        assert rel_err(h, c) < 1e-4


def test_param_groups_from_v1_blobs_lr():
    """V1 blobs_lr / weight_decay arrive as lr_mult / decay_mult (through the net upgrade) and define the
    groups; lr_mult 0 means requires_grad False."""
    from recaffe.netspec.net.net import Net
    from recaffe.solver import groups
    v1 = ('name: "v1" input: "data" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 4\n'
          'layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" blobs_lr: 0 blobs_lr: 2 '
          'weight_decay: 1 weight_decay: 0 inner_product_param { num_output: 5 } }\n'
          'layers { name: "ip2" type: INNER_PRODUCT bottom: "ip" top: "ip2" blobs_lr: 1 blobs_lr: 2 '
          'weight_decay: 1 weight_decay: 0 inner_product_param { num_output: 2 } }\n')
    net = Net(v1, phase="TRAIN")
    gs = groups.param_groups(groups.learnable(net))
    assert [(g["lr_mult"], g["decay_mult"], g["names"]) for g in gs] == [
        (0.0, 1.0, ["ip.0"]), (2.0, 0.0, ["ip.1", "ip2.1"]), (1.0, 1.0, ["ip2.0"])]
    assert not net.params["ip"][0].requires_grad and net.params["ip"][1].requires_grad
