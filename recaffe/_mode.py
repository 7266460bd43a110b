"""pycaffe's process-wide switches: set_mode_cpu / set_mode_gpu / set_device / set_random_seed
(python/caffe/_caffe.cpp over caffe::Caffe::set_mode, SetDevice, set_random_seed).

recaffe computes on the CPU: the pycaffe facade hands out numpy arrays that share memory with the
net's tensors, which needs host memory. ``set_mode_gpu()`` therefore records the request and, when
CUDA is available, says so (nets can be moved with ``net.torch_net.to('cuda')`` and used as torch
modules); without CUDA it warns once and stays on the CPU. Either way scripts written for GPU Caffe run.
"""
import random
import time
import warnings

import numpy as np
import torch

_state = {"mode": "CPU", "device": 0, "warned": False, "solver_count": None, "solver_rank": None, "multiprocess": False}


def set_mode_cpu():
    _state["mode"] = "CPU"


def set_mode_gpu():
    _state["mode"] = "GPU"
    if _state["warned"]:
        return
    _state["warned"] = True
    if torch.cuda.is_available():
        warnings.warn("recaffe: set_mode_gpu(): the pycaffe facade keeps blobs in host memory and runs on the "
                      "CPU; for CUDA use the torch module net.torch_net.to('cuda') directly", RuntimeWarning,
                      stacklevel=2)
    else:
        warnings.warn("recaffe: set_mode_gpu(): CUDA is not available; running on the CPU", RuntimeWarning,
                      stacklevel=2)


def mode():
    """'CPU' or 'GPU' (what the script asked for)."""
    return _state["mode"]


def set_device(device_id):
    device_id = int(device_id)
    if device_id < 0:
        raise ValueError(f"set_device: device id must be >= 0, got {device_id}")
    _state["device"] = device_id


def set_random_seed(seed):
    """Seed every generator recaffe draws from (fillers, dropout, data shuffling and mirroring)."""
    seed = int(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def solver_count():
    """Caffe::solver_count: what set_solver_count recorded, else the processes training together
    (recaffe.solver.distributed: torchrun or -gpu 0,1); 1 otherwise."""
    if _state.get("solver_count") is not None:
        return _state["solver_count"]
    from recaffe.solver.distributed import current
    return current().world


def set_solver_count(count):
    _state["solver_count"] = int(count)


def solver_rank():
    """Caffe::solver_rank: what set_solver_rank recorded, else this process's rank (0 alone)."""
    if _state.get("solver_rank") is not None:
        return _state["solver_rank"]
    from recaffe.solver.distributed import current
    return current().rank


def set_solver_rank(rank):
    _state["solver_rank"] = int(rank)


def set_multiprocess(flag):
    """Caffe::set_multiprocess: recorded only (recaffe trains in one process; see caffe.NCCL)."""
    _state["multiprocess"] = bool(flag)


def has_nccl():
    """False: recaffe has no NCCL multi-GPU path (caffe.NCCL is refused with what to use instead)."""
    return False


def log(message):
    """pycaffe's caffe.log: one INFO line in Caffe's log format (glog's LOG(INFO) << message)."""
    from recaffe.solver.log import log as _log
    _log(str(message), "_caffe.cpp:0")


class Timer:
    """pycaffe's caffe.Timer (a CPU wall-clock timer): start(), stop(), ms (milliseconds between them,
    or up to now while running)."""

    def __init__(self):
        self._start = self._stop = None

    def start(self):
        self._start, self._stop = time.perf_counter(), None

    def stop(self):
        if self._start is not None and self._stop is None:
            self._stop = time.perf_counter()

    @property
    def ms(self):
        if self._start is None:
            return 0.0
        end = self._stop if self._stop is not None else time.perf_counter()
        return (end - self._start) * 1000.0


def init_log(*args, **kwargs):
    """pycaffe's glog initialisation; logging goes through Python's logging here."""
