"""Data-parallel training with Caffe's multi-GPU semantics, on torch.distributed.

N processes (torchrun, or ``-gpu 0,1`` / ``-gpu all`` through recaffe.solver.launch) train one model
so that the trajectory is that of ONE process with ``iter_size x N``:

* data: rank r serves global batch ``b * N + r`` as its local batch b, with the same layer seed on
  every rank (``layer.shard``: Data, ImageData incl. shuffle, HDF5Data, WindowData); TEST nets are not
  sharded. Iteration i then covers global batches [i*I*N, (i+1)*I*N), as iter_size I*N does.
  (Caffe's DataLayer interleaves *records* by rank, data_layer.cpp Skip(); the batch interleave is the
  one that makes the iter_size equivalence exact, crop/mirror plans included.)
* gradients: after the local iter_size passes, every learnable ``.grad`` (a missing one counts as
  zeros) is all-reduced as a SUM, and the optimizer normalises once by ``iter_size x N``. So
  ``clip_gradients`` sees the single-process norm. (Caffe's NCCL averages over ranks and then divides
  by iter_size, parallel.cpp on_gradients_ready; equal without clipping, N times smaller norm with.)
* start: one seed for every rank (rank 0's when the solver sets none), rank 0's weights broadcast
  after building and after ``-weights`` (parallel.cpp NCCL::Broadcast); ``-snapshot`` is restored by
  every rank from the same files. Runtime randomness (Dropout...) is reseeded with seed + rank, as
  Caffe's ``random_seed + solver_rank`` (solver.cpp).
* rank 0 only: test nets, log lines, snapshots (then a barrier), as Caffe's root solver
  (solver.cpp: ``Caffe::root_solver()``). The displayed loss is all-reduced and the displayed train
  outputs are those of the last sub-batch (rank N-1's), so rank 0's log is the single-process log.
* SIGINT/SIGHUP: the action is agreed by all ranks after every update (any rank's request counts).
* BatchNorm statistics are per rank, as in Caffe (rank 0's are tested and snapshotted).
* sources recaffe cannot shard in a TRAIN net (Input feeds, MemoryData, Python layers without bottoms)
  give each rank what that rank is fed; rank 0 warns once per layer (DummyData is generated: per-rank
  seeds). No fork layer reads data (SSD's AnnotatedData is not implemented).

A peer that dies (or a collective that exceeds ``RECAFFE_DIST_TIMEOUT`` seconds, default 1800) ends
the others with one DistributedError line instead of a hang.
"""
import datetime
import logging
import os

import torch
import torch.distributed as dist

from recaffe.protos.errors import RecaffeError

ENV_TIMEOUT = "RECAFFE_DIST_TIMEOUT"
#: gradients are all-reduced in flat buckets of at most this many elements (one bucket per big blob)
BUCKET = 1 << 22


#: TRAIN-net sources recaffe cannot shard (fed or user code): each rank gets what it is given (warned)
_UNSHARDED = {"Input": "every rank trains on what its feed returns",
              "MemoryData": "every rank trains on the arrays it is given",
              "Python": "every rank runs the layer's own code"}


class DistributedError(RecaffeError):
    """The process group could not be joined, or a peer died / timed out in a collective."""


class Group:
    """The processes training together: rank, world size, backend and the device collectives use."""

    def __init__(self, rank=0, world=1, backend=None, device="cpu", local_rank=0):
        self.rank, self.world, self.backend = int(rank), int(world), backend
        self.device, self.local_rank = torch.device(device), int(local_rank)

    @property
    def root(self):
        return self.rank == 0

    def __repr__(self):
        return f"Group(rank={self.rank}, world={self.world}, backend={self.backend})"


SINGLE = Group()
_current = SINGLE


def current():
    """The group this process trains in (``Group()``, world 1, when not distributed)."""
    return _current


def env_world():
    """WORLD_SIZE as torchrun (or recaffe's -gpu launcher) sets it; 1 when not launched so."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DistributedError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from None


def local_rank():
    return int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))


def init(device="cpu", timeout=None):
    """Join the process group the environment describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT: env://,
    as torchrun sets them): backend nccl for a CUDA device, gloo otherwise. Without WORLD_SIZE > 1
    this is one process and nothing is initialised."""
    global _current
    if env_world() <= 1:
        return _current
    if _current.world > 1:
        return _current
    device = torch.device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    secs = float(timeout if timeout is not None else os.environ.get(ENV_TIMEOUT, 1800))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=secs))
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"cannot join the process group (backend {backend}, WORLD_SIZE "
                                   f"{env_world()}, MASTER_ADDR {os.environ.get('MASTER_ADDR')}, MASTER_PORT "
                                   f"{os.environ.get('MASTER_PORT')}): {_first_line(e)}") from None
    _current = Group(dist.get_rank(), dist.get_world_size(), dist.get_backend(), device, local_rank())
    if not _current.root:
        from .log import logger
        logger.addFilter(_QUIET)
    return _current


def shutdown():
    """Leave the process group (end of training)."""
    global _current
    if dist.is_initialized():
        dist.destroy_process_group()
    _current = SINGLE
    from .log import logger
    logger.removeFilter(_QUIET)


def _abandon():
    """Leave a broken group at once (its peer is gone): no C++ thread is left waiting at exit."""
    global _current
    try:
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - already broken; the caller raises the real error
        pass
    _current = SINGLE


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class SolverSync:
    """The Solver's data-parallel hooks; every method is a no-op (or identity) for one process."""

    def __init__(self, group=None):
        self.group = group or current()
        self.rank, self.world, self.root = self.group.rank, self.group.world, self.group.root
        self.active = self.world > 1
        self._step = 0

    # -- collectives, with one clear error when a peer is gone ---------------------------------------
    def _call(self, what, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except RuntimeError as e:   # DistBackendError and gloo/NCCL errors are RuntimeErrors
            _abandon()
            raise DistributedError(
                f"rank {self.rank}/{self.world}: {what} failed: another process died or timed out "
                f"({_first_line(e)[:200]}); stopping this one too") from None

    def _tensor(self, values, dtype=torch.float64):
        return torch.tensor(values, dtype=dtype, device=self.group.device)

    def barrier(self):
        if self.active:
            self._call("barrier", dist.barrier)

    def shared_seed(self):
        """One random seed drawn by rank 0 and used by every rank (a solver without random_seed)."""
        seed = int(torch.randint(0, 2 ** 62, ()).item())
        if self.active:
            t = self._tensor([seed], torch.int64)
            self._call("seed broadcast", dist.broadcast, t, 0)
            seed = int(t.item())
        return seed

    def broadcast_params(self, net):
        """Rank 0's blobs (learnable or not: BatchNorm statistics too) to every rank."""
        if not self.active:
            return
        with torch.no_grad():
            for layer in net.layers:
                for p in layer.blobs:
                    buf = p.data if p.device == self.group.device else p.data.to(self.group.device)
                    self._call("weight broadcast", dist.broadcast, buf, 0)
                    if buf is not p.data:
                        p.data.copy_(buf)

    # -- the solver's hooks ----------------------------------------------------------------------------
    def attach(self, solver, base_seed):
        """After the nets are built: shard the TRAIN data layers, broadcast rank 0's weights, reseed
        runtime randomness per rank, normalise by iter_size x N, quiet the non-root log."""
        if not self.active:
            return
        for step in solver.net.steps:
            layer = step.layer
            if getattr(layer, "is_data", False) and hasattr(layer, "shard"):
                layer.shard(self.rank, self.world)
            elif self.root and not step.bottoms and step.type in _UNSHARDED:
                from .log import warn
                warn(f"layer '{step.name}' ({step.type}) is not sharded: {_UNSHARDED[step.type]}; "
                     "split it with recaffe.solver_rank() / solver_count()", "data_layer.cpp:62")
        self.broadcast_params(solver.net)
        if self.rank > 0:
            from .netsetup import seed_everything
            seed_everything(base_seed + self.rank)
        solver.optimizer.iter_size = solver.param.iter_size * self.world
        from .log import log
        bs = _batch_size(solver.net)
        it = solver.param.iter_size
        log(f"{self.world} processes (backend {self.group.backend}), effective batch = "
            f"{bs} x {it} x {self.world} = {bs * it * self.world if bs else '?'}", "parallel.cpp:50")

    def reduce_grads(self, params):
        """All-reduce SUM of the accumulated gradients (missing ones as zeros), in flat buckets."""
        if not self.active:
            return
        grads = []
        for q in params:
            if not q.requires_grad:
                continue
            if q.grad is None:
                q.grad = torch.zeros_like(q)
            grads.append(q.grad)
        work = []
        for bucket in _buckets(grads):
            if len(bucket) == 1 and bucket[0].is_contiguous():
                work.append((None, self._call("gradient all-reduce", dist.all_reduce, bucket[0], async_op=True)))
            else:
                flat = torch.cat([g.reshape(-1) for g in bucket])
                work.append(((bucket, flat), self._call("gradient all-reduce", dist.all_reduce, flat,
                                                       async_op=True)))
        for item, w in work:
            self._call("gradient all-reduce", w.wait)
            if item is not None:
                bucket, flat = item
                off = 0
                for g in bucket:
                    n = g.numel()
                    g.copy_(flat[off:off + n].view_as(g))
                    off += n

    def reduce_loss(self, loss_sum):
        """The sum of every rank's local loss sum (one float per iteration)."""
        if not self.active:
            return loss_sum
        t = self._tensor([loss_sum])
        self._call("loss all-reduce", dist.all_reduce, t)
        return float(t.item())

    def last_outputs(self, outputs):
        """The train outputs to display: those of the iteration's last sub-batch, i.e. rank N-1's."""
        if not self.active:
            return outputs
        box = [outputs if self.rank == self.world - 1 else None]
        self._call("display broadcast", dist.broadcast_object_list, box, self.world - 1,
                   device=self.group.device if self.group.backend == "nccl" else None)
        return box[0]

    def agree(self, action):
        """One signal action for every rank: stop if any rank was asked to stop, else snapshot if any
        was asked to snapshot."""
        if not self.active:
            return action
        t = self._tensor([action == "snapshot", action == "stop"])
        self._call("signal agreement", dist.all_reduce, t)
        return "stop" if t[1] > 0 else "snapshot" if t[0] > 0 else "none"

    def any(self, flag):
        if not self.active:
            return bool(flag)
        t = self._tensor([bool(flag)])
        self._call("flag all-reduce", dist.all_reduce, t)
        return bool(t.item() > 0)


class _WarningsOnly(logging.Filter):
    """Ranks other than 0 log warnings and errors only (Caffe: LOG_IF(INFO, Caffe::root_solver()))."""

    def filter(self, record):
        return record.levelno >= logging.WARNING


_QUIET = _WarningsOnly()


def _buckets(grads):
    bucket, size = [], 0
    for g in grads:
        if g.numel() >= BUCKET:
            yield [g]
            continue
        if size + g.numel() > BUCKET or (bucket and bucket[0].dtype != g.dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel()
    if bucket:
        yield bucket


def _batch_size(net):
    """The train net's batch: the first data layer's first top's leading dimension (None if none)."""
    for layer in net.layers:
        if getattr(layer, "is_data", False) and layer.top_shapes and len(layer.top_shapes[0]):
            return int(layer.top_shapes[0][0])
    return None
