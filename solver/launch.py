"""Which device(s) a ``caffe train`` runs on, and starting one process per GPU for ``-gpu 0,1`` /
``-gpu all`` (tools/caffe.cpp: get_gpus, train; recaffe uses processes where Caffe used threads).

* ``-gpu`` as Caffe reads it: '' -> the solver's explicit ``solver_mode: GPU`` + ``device_id``,
  else the CPU; ``-1`` -> CPU; ``all`` -> every visible GPU; ``0,1`` -> those ids.
* One process, one id: that GPU. Several ids: ``plan.spawn`` -- recaffe starts one process per id
  (torch.multiprocessing, env:// rendezvous on a free local port, as torchrun would) and each trains
  on ``cuda:<its id>`` with NCCL (solver.distributed).
* Started by torchrun (WORLD_SIZE > 1): nothing is spawned; local rank r takes ``ids[r]`` (or
  ``cuda:r`` when the GPU came from solver_mode), or the CPU with gloo when no GPU was asked for.
* No CUDA: a warning and the CPU, as before (several processes then only through torchrun).

Multi-node: torchrun's own rendezvous, e.g. on each of 2 machines with 4 GPUs::

    torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=host0:29400 \\
        -m recaffe.tools.train -solver=solver.prototxt -gpu all
"""
import importlib
import os
import socket
import sys

import torch

from recaffe.protos.errors import RecaffeError, SolverError
from .distributed import DistributedError, env_world, local_rank
from .log import log, warn


class Plan:
    """``devices``: this process's device first (all of them when ``spawn``); ``ids``: GPU ids asked
    for; ``spawn``: start one process per id; ``world``: processes that will train."""

    def __init__(self, devices, ids=(), spawn=False, world=1):
        self.devices, self.ids, self.spawn, self.world = [torch.device(d) for d in devices], list(ids), spawn, world

    @property
    def device(self):
        return self.devices[0]

    def __repr__(self):
        return f"Plan(devices={[str(d) for d in self.devices]}, spawn={self.spawn}, world={self.world})"


def gpu_ids(gpu, solver_param=None):
    """Caffe's get_gpus: the ids ``-gpu`` (or the solver's solver_mode/device_id) asks for."""
    gpu = "" if gpu is None else str(gpu).strip()
    if gpu == "":
        if solver_param is not None and solver_param.HasField("solver_mode") and solver_param.solver_mode == 1:
            return [int(solver_param.device_id)]
        return []
    if gpu == "all":
        return list(range(torch.cuda.device_count())) or [0]
    if gpu == "-1":
        return []
    try:
        ids = [int(x) for x in gpu.split(",") if x.strip() != ""]
    except ValueError:
        raise SolverError(f"-gpu: expected device ids (e.g. 0 or 0,1), 'all' or -1, got '{gpu}'") from None
    if any(i < 0 for i in ids) and ids != [-1]:
        raise SolverError(f"-gpu: device ids must be >= 0, got '{gpu}'")
    if len(set(ids)) != len(ids):
        raise SolverError(f"-gpu: device ids must be distinct, got '{gpu}'")
    return [] if ids == [-1] else ids


def plan(gpu, solver_param=None, single=False):
    """The devices for ``-gpu`` (see the module doc). ``single``: test/time use the first id only."""
    from_mode = str(gpu or "").strip() == ""
    ids = gpu_ids(gpu, solver_param)
    world = env_world()
    if not ids:
        log("Use CPU.", "caffe.cpp:234")
        return Plan(["cpu"], world=world)
    if not torch.cuda.is_available():
        warn(f"GPU {', '.join(map(str, ids))} requested but CUDA is not available to torch; running on CPU",
             "caffe.cpp:227")
        return Plan(["cpu"], ids, world=world)
    count = torch.cuda.device_count()
    bad = [i for i in ids if i >= count]
    if bad:
        raise SolverError(f"-gpu: device {bad[0]} does not exist ({count} CUDA device(s): 0..{count - 1})")
    if single:
        log(f"Using GPUs {ids[0]}", "caffe.cpp:228")
        return Plan([f"cuda:{ids[0]}"], ids[:1])
    if world > 1:                          # started by torchrun (or by spawn() below)
        r = local_rank()
        if from_mode:                      # solver_mode: GPU -> one device per local rank
            return Plan([f"cuda:{r}"], [r], world=world)
        if r >= len(ids):
            raise SolverError(f"local rank {r} has no GPU: -gpu lists {len(ids)} device(s) "
                              f"({', '.join(map(str, ids))}) for this machine's processes; give -gpu all or one id per process")
        return Plan([f"cuda:{ids[r]}"], ids, world=world)
    log(f"Using GPUs {', '.join(map(str, ids))}", "caffe.cpp:228")
    return Plan([f"cuda:{i}" for i in ids], ids, spawn=len(ids) > 1, world=len(ids))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(nprocs, target, payload, port=None):
    """Run ``target(payload)`` (``target`` = "module:function") in ``nprocs`` fresh processes that
    form one process group (RANK = LOCAL_RANK = i, WORLD_SIZE = nprocs, MASTER_ADDR/PORT local);
    returns 0 when all succeed. A process that fails ends the others (torch.multiprocessing) and
    raises one DistributedError line (its own error line is already on stderr)."""
    import torch.multiprocessing as mp
    port = port or free_port()
    ctx = mp.start_processes(_child, args=(nprocs, port, target, payload), nprocs=nprocs, join=False,
                             start_method="spawn")
    try:
        while not ctx.join():
            pass
    except mp.ProcessExitedException as e:
        raise DistributedError(f"process {e.error_index} of {nprocs} exited with status {e.exit_code}; "
                               f"the others were stopped") from None
    except mp.ProcessRaisedException as e:
        raise DistributedError(f"process {e.error_index} of {nprocs} failed: "
                               f"{str(e).strip().splitlines()[-1]}; the others were stopped") from None
    return 0


def _child(index, nprocs, port, target, payload):
    """One spawned process: the torchrun environment, then ``target(payload)`` under the CLI's error
    convention (one line on stderr, exit status 2)."""
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(nprocs),
                      LOCAL_WORLD_SIZE=str(nprocs), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)
    try:
        rc = fn(payload)
    except RecaffeError as e:
        print(f"caffe: error: rank {index}: {(str(e).strip().splitlines() or ['failed'])[0]}", file=sys.stderr)
        sys.exit(2)
    sys.exit(rc or 0)
