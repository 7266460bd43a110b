"""Data-parallel training (solver.distributed): N CPU processes (gloo, one thread each) train as ONE
process with iter_size x N -- the same .caffemodel bit for bit (N = 2, local iter_size 1), the same to
float rounding otherwise, the same clipping lines, the same displayed loss; only rank 0 tests, logs and
snapshots; resume, signal agreement and a dying peer. The reference is our own single-process
iter_size run (Caffe's own N-GPU rule averages, which differs under clip_gradients: see the module
doc of solver/distributed.py), and a closed-form identity: both sides sum the same sub-batch
gradients."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddp_helpers as h  # noqa: E402


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return h.make_db(tmp_path_factory.mktemp("ddp_db"))


def _ok(results):
    for rank, (rc, err) in enumerate(results):
        assert rc == 0, f"rank {rank} exited {rc}:\n{err[-3000:]}"


def test_two_ranks_give_the_iter_size_2_caffemodel_bit_for_bit(tmp_path, db):
    ref = h.write_solver(tmp_path, db, iter_size=2, name="ref")
    dist = h.write_solver(tmp_path, db, iter_size=1, name="dist")
    rc, err = h.run_one(ref)
    assert rc == 0, err
    res = h.run_ranks(dist, 2, "worker", str(tmp_path / "dist" / "final"))
    _ok(res)
    for r in range(2):
        assert f"pycaffe: solver_count=2 solver_rank={r}" in res[r][1]
    want = h.read(tmp_path / "ref" / "snap_iter_12.caffemodel")
    assert h.read(tmp_path / "dist" / "snap_iter_12.caffemodel") == want          # rank 0's snapshot
    assert h.read(tmp_path / "dist" / "final.rank0.caffemodel") == want
    assert h.read(tmp_path / "dist" / "final.rank1.caffemodel") == want          # both ranks agree


@pytest.mark.parametrize("clip", [None, 0.5])
def test_two_ranks_iter_size_2_equal_one_process_iter_size_4(tmp_path, db, clip):
    extra = f"clip_gradients: {clip}" if clip else ""
    ref = h.write_solver(tmp_path, db, iter_size=4, name="ref", extra=extra)
    dist = h.write_solver(tmp_path, db, iter_size=2, name="dist", extra=extra)
    rc, ref_log = h.run_one(ref)
    assert rc == 0, ref_log
    res = h.run_ranks(dist, 2, "worker", str(tmp_path / "dist" / "final"))
    _ok(res)
    a = h.weights(str(tmp_path / "ref" / "snap_iter_12.caffemodel"))
    b0 = h.weights(str(tmp_path / "dist" / "final.rank0.caffemodel"))
    b1 = h.weights(str(tmp_path / "dist" / "final.rank1.caffemodel"))
    for k in a:
        np.testing.assert_array_equal(b0[k], b1[k], err_msg=k)
        np.testing.assert_allclose(b0[k], a[k], rtol=1e-6, atol=1e-7, err_msg=k)
    clips = h.log_lines(ref_log, "Gradient clipping")
    assert len(clips) == (12 if clip else 0)
    dist_clips = h.log_lines(res[0][1], "Gradient clipping")
    assert len(dist_clips) == len(clips)
    for x, y in zip(clips, dist_clips):     # same norm and scale (6 digits, as logged)
        assert x == y
    assert not h.log_lines(res[1][1], "Gradient clipping")          # rank 1 logs nothing


def test_clip_gradients_two_ranks_bit_for_bit(tmp_path, db):
    extra = "clip_gradients: 0.5"
    ref = h.write_solver(tmp_path, db, iter_size=2, name="ref", extra=extra)
    dist = h.write_solver(tmp_path, db, iter_size=1, name="dist", extra=extra)
    rc, ref_log = h.run_one(ref)
    assert rc == 0, ref_log
    res = h.run_ranks(dist, 2, "worker", str(tmp_path / "dist" / "final"))
    _ok(res)
    want = h.read(tmp_path / "ref" / "snap_iter_12.caffemodel")
    assert h.read(tmp_path / "dist" / "final.rank0.caffemodel") == want
    assert h.read(tmp_path / "dist" / "final.rank1.caffemodel") == want
    clips = h.log_lines(ref_log, "Gradient clipping")
    assert len(clips) == 12 and clips == h.log_lines(res[0][1], "Gradient clipping")


def test_only_rank0_tests_logs_and_snapshots_and_its_log_is_the_single_process_log(tmp_path, db):
    extra = "test_iter: 2 test_interval: 4"
    ref = h.write_solver(tmp_path, db, iter_size=2, name="ref", snapshot=6, extra=extra)
    dist = h.write_solver(tmp_path, db, iter_size=1, name="dist", snapshot=6, extra=extra)
    rc, ref_log = h.run_one(ref)
    assert rc == 0, ref_log
    res = h.run_ranks(dist, 2)
    _ok(res)
    log0, log1 = res[0][1], res[1][1]
    assert "2 processes (backend gloo), effective batch = 16 x 1 x 2 = 32" in log0
    for key in ("Iteration", "Testing net", "Test net output", "Train net output", "Snapshotting", "lr ="):
        assert h.log_lines(log0, key) and not h.log_lines(log1, key), key
    # the displayed numbers are the single process's (timings aside)
    strip = lambda lines: [ln.split(" (")[0] if "iter/s" in ln else ln for ln in lines]  # noqa: E731
    for key in ("loss =", "Test net output", "Train net output", "Snapshotting to"):
        want = [ln.replace("/ref/", "/X/") for ln in strip(h.log_lines(ref_log, key))]
        got = [ln.replace("/dist/", "/X/") for ln in strip(h.log_lines(log0, key))]
        assert got == want, key
    files = sorted(os.listdir(tmp_path / "dist"))
    assert files == ["net.prototxt", "snap_iter_12.caffemodel", "snap_iter_12.solverstate",
                     "snap_iter_6.caffemodel", "snap_iter_6.solverstate", "solver.prototxt"]


def test_resumed_two_rank_run_equals_the_uninterrupted_one(tmp_path):
    # 32 records = one pass per iteration of 2 ranks x 16, no crop/mirror: the data stream restarts on
    # resume (Caffe's rule), so this makes the batches of a resumed iteration the uninterrupted ones'
    db = h.make_db(tmp_path / "small", n=32)
    full = h.write_solver(tmp_path, db, iter_size=1, name="full", snapshot=6, mirror=False, crop=0)
    part = h.write_solver(tmp_path, db, iter_size=1, name="part", snapshot=6, mirror=False, crop=0)
    _ok(h.run_ranks(full, 2))                     # 12 iterations, snapshots at 6 and 12
    res = h.run_ranks(part, 2, f"-snapshot={tmp_path / 'full' / 'snap_iter_6.solverstate'}")
    _ok(res)                                      # every rank restores iteration 6, trains 6 more
    assert "Restoring previous solver status" in res[0][1]
    assert sorted(f for f in os.listdir(tmp_path / "part") if f.startswith("snap")) == [
        "snap_iter_12.caffemodel", "snap_iter_12.solverstate"]
    assert h.read(tmp_path / "part" / "snap_iter_12.caffemodel") == h.read(tmp_path / "full" / "snap_iter_12.caffemodel")
    from recaffe.solver.state import read_solverstate
    a, b = (read_solverstate(str(tmp_path / d / "snap_iter_12.solverstate")) for d in ("part", "full"))
    assert a.iter == b.iter == 12 and len(a.history) == len(b.history)
    for x, y in zip(a.history, b.history):        # the momentum histories too (only learned_net differs)
        np.testing.assert_array_equal(x, y)


def _wait_for(path, text, procs, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(path) and text in open(path).read():
            return
        if any(p.poll() is not None for p in procs):
            return
        time.sleep(0.1)
    raise AssertionError(f"'{text}' did not appear in {path}")


def _start_logged(solver, tmp_path, world=2, timeout_s=None):
    from recaffe.solver.launch import free_port
    port = free_port()
    procs, logs = [], []
    for r in range(world):
        log = tmp_path / f"rank{r}.log"
        extra = {"RECAFFE_DIST_TIMEOUT": timeout_s} if timeout_s else {}
        procs.append(subprocess.Popen(h.train_cmd(solver), cwd=h.ROOT, stdout=subprocess.DEVNULL,
                                      stderr=open(log, "w"),
                                      env=h.env(RANK=r, LOCAL_RANK=r, WORLD_SIZE=world, MASTER_ADDR="127.0.0.1",
                                                MASTER_PORT=port, **extra)))
        logs.append(log)
    return procs, logs


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_iteration(tmp_path, db):
    solver = h.write_solver(tmp_path, db, iters=100000, name="sig")
    procs, logs = _start_logged(solver, tmp_path)
    try:
        _wait_for(logs[0], "Iteration 3,", procs)
        procs[1].send_signal(signal.SIGINT)          # only rank 1 is asked to stop
        rcs = [p.wait(timeout=30) for p in procs]
    finally:
        for p in procs:
            p.kill()
    log0 = open(logs[0]).read()
    assert rcs == [0, 0], log0[-2000:] + open(logs[1]).read()[-2000:]
    assert "Optimization stopped early." in log0
    snaps = [f for f in os.listdir(tmp_path / "sig") if f.endswith(".caffemodel")]
    assert len(snaps) == 1 and snaps[0].startswith("snap_iter_")   # rank 0 snapshots on stop, once


def test_a_dying_rank_ends_the_other_with_one_clear_line(tmp_path, db):
    solver = h.write_solver(tmp_path, db, iters=100000, name="die")
    procs, logs = _start_logged(solver, tmp_path, timeout_s=20)
    try:
        _wait_for(logs[0], "Iteration 3,", procs)
        t0 = time.time()
        procs[1].kill()
        rc = procs[0].wait(timeout=40)
        elapsed = time.time() - t0
    finally:
        for p in procs:
            p.kill()
    err = open(logs[0]).read().strip().splitlines()
    assert rc == 2 and elapsed < 30
    assert err[-1].startswith("train: error: rank 0/2: ") and "another process died or timed out" in err[-1], err[-3:]
    assert not any("Traceback" in ln for ln in err)


def test_a_hung_rank_ends_the_other_within_the_collective_timeout(tmp_path, db):
    solver = h.write_solver(tmp_path, db, iters=100000, name="hang")
    procs, logs = _start_logged(solver, tmp_path, timeout_s=4)
    try:
        _wait_for(logs[0], "Iteration 3,", procs)
        t0 = time.time()
        procs[1].send_signal(signal.SIGSTOP)         # alive but silent: only the timeout can tell
        rc = procs[0].wait(timeout=40)
        elapsed = time.time() - t0
    finally:
        for p in procs:
            p.kill()
    err = open(logs[0]).read().strip().splitlines()
    assert rc == 2 and 3.5 < elapsed < 20, (rc, elapsed)
    assert err[-1].startswith("train: error: rank 0/2: ") and "Timed out" in err[-1], err[-3:]
