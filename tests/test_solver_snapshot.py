"""Snapshots and resume: a run stopped by SIGINT (-sigint_effect stop, which snapshots at the end as
Caffe does) and resumed from its .solverstate reproduces the uninterrupted run exactly on CPU; SIGHUP
snapshots and continues; .pth snapshots round-trip; files are named and written as Caffe's.

That real Caffe restores our files: `PYTHONPATH=. python tests/test_solver_snapshot.py DIR` writes
DIR/ours_<case>_iter_48.{caffemodel,solverstate} and
`/work/shared/oracle/caffe-run python3 tests/oracle/make_solver_goldens.py --restore-ours DIR` continues
them in Caffe and prints the difference from Caffe's own uninterrupted trajectory."""
import os
import signal
import sys

import numpy as np
import pytest

from recaffe.solver.solver import Solver
from recaffe.solver.state import read_solverstate
from test_solver_helpers import GOLDEN, one_thread, weights, write_case

INIT = os.path.join(GOLDEN, "init.caffemodel")


def make(tmp, name="sgd", extra=""):
    s = Solver(write_case(tmp, name, f'snapshot_prefix: "{tmp}/snap" {extra}'))
    return s


def losses_of(solver, iters):
    out = []
    while solver.iter < iters:
        solver.step(1)
        out.append(float(solver.net.blobs["loss"].detach()))
    return out


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def _signal_at(solver, at_iter, sig):
    orig = solver.apply_update

    def wrapped(display_now=False):
        if solver.iter == at_iter:
            os.kill(os.getpid(), sig)
        return orig(display_now)
    solver.apply_update = wrapped


@pytest.mark.parametrize("name", ["sgd", "adam", "adadelta", "multistep"])
def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path, name, restore_signals):
    with one_thread():
        (tmp_path / "a").mkdir()
        full = make(tmp_path / "a", name, "snapshot_after_train: false")
        full.load_weights(INIT)
        full_losses = losses_of(full, 100)

        (tmp_path / "b").mkdir()
        killed = make(tmp_path / "b", name)
        killed.load_weights(INIT)
        killed.install_signal_handlers("stop", "snapshot")
        _signal_at(killed, 47, signal.SIGINT)
        killed.solve()
        assert killed.requested_early_exit and killed.iter == 48
        state = tmp_path / "b" / "snap_iter_48.solverstate"
        assert state.exists() and (tmp_path / "b" / "snap_iter_48.caffemodel").exists()
        assert not (tmp_path / "b" / "snap_iter_100.caffemodel").exists()

        resumed = make(tmp_path / "b", name)
        resumed.restore(str(state))
        assert resumed.iter == 48
        resumed_losses = losses_of(resumed, 100)
    assert resumed_losses == full_losses[48:]          # bit-exact
    for k, w in weights(full.net).items():
        assert np.array_equal(w, weights(resumed.net)[k]), k


def test_sighup_snapshots_and_continues(tmp_path, restore_signals):
    with one_thread():
        s = make(tmp_path, "sgd")
        s.param.max_iter = 10
        s.load_weights(INIT)
        s.install_signal_handlers("stop", "snapshot")
        _signal_at(s, 3, signal.SIGHUP)
        s.solve()
    assert s.iter == 10 and not s.requested_early_exit
    names = sorted(os.listdir(tmp_path))
    assert "snap_iter_4.solverstate" in names and "snap_iter_10.solverstate" in names
    assert not [n for n in names if n.startswith(".tmp-")]   # atomic writes leave no temporaries
    st = read_solverstate(tmp_path / "snap_iter_4.solverstate")
    assert st.iter == 4 and st.learned_net == f"{tmp_path}/snap_iter_4.caffemodel"


def test_periodic_and_final_snapshot_cadence(tmp_path):
    """snapshot: 4, max_iter: 10 -> iter_4, iter_8 and the end-of-training iter_10 (Solver::Solve)."""
    with one_thread():
        s = make(tmp_path, "sgd", "snapshot: 4")
        s.param.max_iter = 10
        s.load_weights(INIT)
        s.solve()
    got = sorted(n for n in os.listdir(tmp_path) if n.endswith(".solverstate"))
    assert got == ["snap_iter_10.solverstate", "snap_iter_4.solverstate", "snap_iter_8.solverstate"]


def test_pth_snapshot_round_trip(tmp_path):
    with one_thread():
        a = make(tmp_path, "adam")
        a.load_weights(INIT)
        losses_of(a, 12)
        a.snapshot_format = "pth"
        model, state = a.snapshot()
        assert model.endswith("_iter_12.pth") and state.endswith("_iter_12.solverstate.pth")
        ref = losses_of(a, 20)
        b = make(tmp_path, "adam")
        b.restore(state)
        assert b.iter == 12
        again = losses_of(b, 20)
    assert again == ref


def write_ours_for_caffe(folder):
    """Write ours_<case>_iter_48 snapshots (bare learned_net names) for the oracle's --restore-ours."""
    os.makedirs(folder, exist_ok=True)
    cwd = os.getcwd()
    for name in ("sgd", "adam", "adadelta", "multistep"):
        s = Solver(write_case(folder, name, 'snapshot_prefix: "ours_%s"' % name))
        s.load_weights(INIT)
        losses_of(s, 48)
        os.chdir(folder)
        try:
            s.snapshot()
        finally:
            os.chdir(cwd)


if __name__ == "__main__":
    write_ours_for_caffe(os.path.abspath(sys.argv[1]))
