"""Launching data-parallel training: -gpu planning (CUDA mocked with 2 devices, and without CUDA),
torchrun's environment, recaffe's own one-process-per-device spawner (run on CPU ranks here), the real
torchrun, and one clear line when a spawned process fails. The spawned and torchrun runs must give the
single-process iter_size 2 .caffemodel bit for bit."""
import os
import subprocess
import sys

import pytest
import torch

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import SolverError
from recaffe.solver import launch
from recaffe.solver.log import capture

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddp_helpers as h  # noqa: E402


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)


def gpu_solver(device_id=1):
    p = caffe_pb2.SolverParameter()
    p.solver_mode = caffe_pb2.SolverParameter.GPU
    p.device_id = device_id
    return p


def test_plan_with_two_mocked_gpus(two_gpus):
    for flag in ("0,1", "all"):
        with capture() as lines:
            plan = launch.plan(flag)
        assert plan.spawn and plan.world == 2
        assert [str(d) for d in plan.devices] == ["cuda:0", "cuda:1"]
        assert any("Using GPUs 0, 1" in ln for ln in lines)
    assert [str(d) for d in launch.plan("1,0").devices] == ["cuda:1", "cuda:0"]
    one = launch.plan("1")
    assert not one.spawn and str(one.device) == "cuda:1" and one.world == 1
    assert str(launch.plan("", gpu_solver(1)).device) == "cuda:1"          # solver_mode: GPU, device_id
    assert str(launch.plan("").device) == "cpu" and str(launch.plan("-1").device) == "cpu"
    first = launch.plan("0,1", single=True)                                    # test / time: first id
    assert not first.spawn and str(first.device) == "cuda:0"
    from recaffe.tools.verbs import select_device
    assert str(select_device("all")) == "cuda:0"
    with pytest.raises(SolverError, match=r"device 2 does not exist \(2 CUDA device\(s\): 0..1\)"):
        launch.plan("0,2")
    with pytest.raises(SolverError, match="distinct"):
        launch.plan("0,0")
    with pytest.raises(SolverError, match="expected device ids"):
        launch.plan("0;1")


def test_plan_under_torchrun_takes_the_local_ranks_device(two_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    for flag, solver in (("all", None), ("0,1", None), ("", gpu_solver(0))):
        plan = launch.plan(flag, solver)
        assert not plan.spawn and str(plan.device) == "cuda:1" and plan.world == 2, flag
    assert str(launch.plan("").device) == "cpu"                               # no GPU asked: gloo on CPU
    with pytest.raises(SolverError, match="local rank 1 has no GPU"):
        launch.plan("0")


def test_without_cuda_gpu_flags_warn_and_use_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for flag in ("0", "0,1", "all"):
        with capture() as lines:
            plan = launch.plan(flag)
        assert str(plan.device) == "cpu" and not plan.spawn
        assert any(ln.startswith("W") and "CUDA is not available to torch; running on CPU" in ln for ln in lines)


def test_gpu_flag_without_cuda_trains_on_the_cpu(tmp_path):
    db = h.make_db(tmp_path)
    solver = h.write_solver(tmp_path, db, iters=2)
    rc, err = h.run_one(solver, "-gpu=0,1", timeout=60)
    assert rc == 0, err
    if not torch.cuda.is_available():
        assert "GPU 0, 1 requested but CUDA is not available to torch; running on CPU" in err
        assert "processes (backend" not in err
    assert "Optimization Done." in err


def _py(code, timeout=90):
    return subprocess.run([sys.executable, "-c", code], cwd=h.ROOT, env=h.env(), capture_output=True, text=True,
                          timeout=timeout)


def test_spawned_ranks_give_the_iter_size_2_caffemodel(tmp_path):
    """recaffe's -gpu spawner, run with CPU ranks (the same code starts one process per GPU)."""
    db = h.make_db(tmp_path)
    ref = h.write_solver(tmp_path, db, iter_size=2, name="ref")
    dist = h.write_solver(tmp_path, db, iter_size=1, name="dist")
    rc, err = h.run_one(ref)
    assert rc == 0, err
    p = _py("from recaffe.solver import launch\nfrom recaffe.tools import caffe, verbs\n"
            f"flags = caffe.parse(['-solver=' + {dist!r}], verb='train')[1]\n"
            "raise SystemExit(launch.spawn(2, verbs.SPAWN_TARGET, flags))")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 processes (backend gloo), effective batch = 16 x 1 x 2 = 32" in p.stderr
    assert h.read(tmp_path / "dist" / "snap_iter_12.caffemodel") == h.read(tmp_path / "ref" / "snap_iter_12.caffemodel")


def test_a_failing_spawned_process_gives_one_line(tmp_path):
    p = _py("from recaffe.solver import launch\nfrom recaffe.tools import caffe, verbs\n"
            "from recaffe.protos.errors import RecaffeError\n"
            f"flags = caffe.parse(['-solver=' + {str(tmp_path / 'missing.prototxt')!r}], verb='train')[1]\n"
            "try:\n    launch.spawn(2, verbs.SPAWN_TARGET, flags)\n"
            "except RecaffeError as e:\n    print('ERR', e)\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ERR process ") and "exited with status 2; the others were stopped" in p.stdout
    assert "missing.prototxt: solver file not found" in p.stderr


def test_torchrun_trains_data_parallel(tmp_path):
    db = h.make_db(tmp_path)
    ref = h.write_solver(tmp_path, db, iter_size=2, name="ref")
    dist = h.write_solver(tmp_path, db, iter_size=1, name="dist")
    rc, err = h.run_one(ref)
    assert rc == 0, err
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={launch.free_port()}",
           os.path.join(h.ROOT, "tools", "train"), f"-solver={dist}"]      # the README's form (-m works alike)
    p = subprocess.run(cmd, cwd=h.ROOT, env=h.env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 processes (backend gloo), effective batch = 16 x 1 x 2 = 32" in p.stderr
    assert h.read(tmp_path / "dist" / "snap_iter_12.caffemodel") == h.read(tmp_path / "ref" / "snap_iter_12.caffemodel")
