"""Binary SolverState files (.solverstate), Caffe's layout (src/caffe/solvers/sgd_solver.cpp:
SnapshotSolverStateToBinaryProto, RestoreSolverStateFromBinaryProto; caffe.proto SolverState).

A SolverState holds ``iter`` (1), ``learned_net`` (2, the .caffemodel name as written), ``history`` (3,
one BlobProto per history blob, in learnable-parameter order; AdaDelta/Adam: N first-moment blobs then
N second-moment blobs) and ``current_step`` (4). Fields are written in field-number order and each
history blob as ``data`` (packed float) then ``shape``, as Caffe's serializer does, so a file we write
is byte-identical to Caffe's for the same numbers. The float payload is streamed and read as numpy
views (netspec.wire), not through protobuf repeated fields: CaffeNet's history is 60M floats.
HDF5 states (.solverstate.h5, snapshot_format: HDF5) are read and written by netspec.weights_h5.
"""
import torch

from recaffe.netspec.weights import h5 as weights_h5, pth, wire
from recaffe.protos import limits
from recaffe.protos.files import atomic_write
from recaffe.protos.blob import encode_varint
from recaffe.protos.errors import SolverError, WeightsError


def write_solverstate(path, iteration, learned_net, history, current_step=0):
    """Write a binary SolverState atomically (temporary file in the same folder, then rename)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(wire._key(1, 0) + encode_varint(int(iteration)))
            if learned_net:
                name = learned_net.encode("utf-8")
                f.write(wire._key(2, 2) + encode_varint(len(name)) + name)
            for t in history:
                head, arr, shape, _ = wire.blob_parts(t, field=3)
                f.write(head)
                if arr.size:
                    f.write(memoryview(arr).cast("B"))
                f.write(shape)
            f.write(wire._key(4, 0) + encode_varint(int(current_step)))
    atomic_write(path, write, SolverError)


def write_solverstate_h5(path, iteration, learned_net, history, current_step=0):
    """Write an HDF5 solver state (SnapshotSolverStateToHDF5's layout, netspec.weights_h5) atomically."""
    weights_h5.write_solverstate(path, iteration, learned_net, history, current_step)


class SolverStateFile:
    """A parsed .solverstate: ``iter``, ``learned_net``, ``current_step``, ``history`` (float32 arrays,
    shaped as stored)."""

    def __init__(self, iteration, learned_net, current_step, history):
        self.iter, self.learned_net, self.current_step, self.history = iteration, learned_net, current_step, history


def read_solverstate(path):
    """Read a binary .solverstate, an HDF5 one (name ending in .h5, as Solver::Restore decides) or a
    torch one (.pth: a dict iter/learned_net/current_step/history, type-checked by weights.pth)."""
    path = str(path)
    if path.endswith(".h5"):
        try:
            return SolverStateFile(*weights_h5.read_solverstate(path))
        except WeightsError as e:
            raise SolverError(str(e)) from None
    if path.endswith(".pth"):
        it, learned, step, history = pth.solver_state(pth.load(path, ".solverstate.pth", SolverError), path,
                                                      SolverError)
        return SolverStateFile(it, learned, step, [h.detach().float().numpy() for h in history])
    buf = bytearray(limits.read_file(path, "solver state", SolverError))
    iteration, learned, step, history = 0, "", 0, []
    try:
        for fn, wt, v in wire._fields(buf, 0, len(buf)):
            if fn == 1 and wt == 0:
                iteration = wire._signed32(v)
            elif fn == 2 and wt == 2:
                learned = bytes(buf[v[0]:v[1]]).decode("utf-8")
            elif fn == 3 and wt == 2:
                blob = wire.Blob(buf, *v)
                arr = blob.array().copy()
                shape = blob.shape or [d for d in (blob.legacy or ()) if d] or [arr.size]
                history.append(arr.reshape(shape))
            elif fn == 4 and wt == 0:
                step = wire._signed32(v)
    except (wire.WireError, ValueError, UnicodeDecodeError) as e:
        raise SolverError(f"{path}: not a valid .solverstate (binary SolverState): {e}") from None
    return SolverStateFile(iteration, learned, step, history)


def load_histories(path, state, optimizer, params, exact_shapes=False):
    """Copy ``state.history`` into the optimizer's history tensors of ``params`` (learnable order).
    ``exact_shapes``: each blob must have the parameter's shape (HDF5 states: hdf5_load_nd_dataset)."""
    slots = [optimizer.histories(p) for p in params]
    k = len(optimizer.history_keys)
    if len(state.history) != k * len(params):
        raise SolverError(f"{path}: {len(state.history)} history blobs, this solver/net needs "
                          f"{k * len(params)} ({optimizer.type_name}, {len(params)} learnable blobs)")
    with torch.no_grad():
        for j in range(k):
            for i, p in enumerate(params):
                arr = state.history[j * len(params) + i]
                dst = slots[i][j]
                if exact_shapes and tuple(arr.shape) != tuple(dst.shape):
                    raise SolverError(f"{path}: history blob {j * len(params) + i} has shape {tuple(arr.shape)}, "
                                      f"parameter has shape {tuple(dst.shape)}")
                if arr.size != dst.numel():
                    raise SolverError(f"{path}: history blob {j * len(params) + i} has {arr.size} values, "
                                      f"parameter has shape {tuple(dst.shape)}")
                dst.copy_(torch.from_numpy(arr.reshape(dst.shape)))


def history_list(optimizer, params):
    """All history tensors in SolverState order (first-moment set for all params, then the second)."""
    slots = [optimizer.histories(p) for p in params]
    return [slots[i][j] for j in range(len(optimizer.history_keys)) for i in range(len(params))]
