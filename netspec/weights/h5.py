"""HDF5 weights (.caffemodel.h5) and HDF5 solver states (.solverstate.h5) in Caffe's layout.

Model files (src/caffe/net.cpp: Net::ToHDF5, Net::CopyTrainedLayersFromHDF5; src/caffe/util/hdf5.cpp):

* group ``/data`` holds one group per layer of the net, named by the layer name (layers without blobs
  too), with one float32 dataset per parameter blob named by its index ("0", "1", ...) in the blob's
  shape; only blobs the layer owns are written (a ParamSpec sharer's dataset is left out);
* with diffs, a parallel group ``/diff`` holds every blob's diff, sharers included;
* reading walks the groups of ``/data``: a name the net lacks is ignored; the target is the *last* net
  layer of that name; a group with more entries than the layer has blobs is an error, and so is a
  missing dataset unless that blob is shared from another layer; every dataset must have exactly the
  blob's shape (no legacy 4-D right-alignment) and a numeric type (converted to float32). ``/diff`` is
  not read.

Solver states (src/caffe/solvers/sgd_solver.cpp: SnapshotSolverStateToHDF5, RestoreSolverStateFromHDF5):
``iter`` and ``current_step`` as one-element int32 datasets, ``learned_net`` as a scalar fixed-length
NUL-terminated string (H5LTmake_dataset_string's layout, which Caffe reads back with a C string), and
group ``history`` with datasets "0".."N-1" in the history blobs' shapes (exact shapes when restored).

Caffe recognises an HDF5 weights file by content (H5Fis_hdf5), so ``is_hdf5`` sniffs the signature.
Writes go to a temporary file in the destination folder, then a rename.
"""
import os

import numpy as np
import torch

from recaffe.protos.errors import WeightsError
from recaffe.netspec.data import hdf5
from recaffe.netspec.net.params import raw_blob
from recaffe.protos.files import atomic_write

SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _reading(path, what):
    """``path`` opened read-only for the ``with`` body; a missing, non-regular, unreadable or damaged file
    (h5py's errors while opening or reading) is a one-line WeightsError naming it (netspec.data.hdf5)."""
    return hdf5.reading(path, what, WeightsError)


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a declared dependency of the hdf5 extra
        raise WeightsError("HDF5 weights need the h5py package (pip install h5py)") from None
    return h5py


def is_hdf5(path):
    """True when ``path`` starts with the HDF5 signature (at 0 or a user-block offset 512, 1024, ...)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = 0
            while offset + len(SIGNATURE) <= size:
                f.seek(offset)
                if f.read(len(SIGNATURE)) == SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def _owned(net):
    """{(layer index, blob index)} of the blobs that own their storage (not ParamSpec sharers)."""
    return {(e.layer_index, e.blob_index) for e in net._learnable}


def _dims(shape):
    return f"{' '.join(str(int(d)) for d in shape)} ({int(np.prod(shape, dtype=np.int64))})"


def load(net, path):
    """Net::CopyTrainedLayersFromHDF5: copy ``/data/<layer>/<i>`` into the net; returns the names of the
    file's layers the net does not have (ignored)."""
    h5py = _h5py()
    owned = _owned(net)
    last = {n: i for i, n in enumerate(net.layer_names)}
    ignored = []
    with _reading(path, "HDF5 weights") as f, torch.no_grad():
        data = f.get("data")
        if not isinstance(data, h5py.Group):
            raise WeightsError(f"{path}: no /data group; not a Caffe HDF5 model (.caffemodel.h5)")
        for name in data:
            if name not in last:
                ignored.append(name)
                continue
            li = last[name]
            group = data[name]
            blobs = net.layers[li].blobs
            if not isinstance(group, h5py.Group) or len(group) > len(blobs):
                have = len(group) if isinstance(group, h5py.Group) else "a dataset, not a group"
                raise WeightsError(f"{path}: incompatible number of blobs for layer '{name}': file has "
                                   f"{have}, net has {len(blobs)}")
            for j in range(len(blobs)):
                ds = group.get(str(j))
                if ds is None:
                    if (li, j) not in owned:   # shared from another layer: that layer's dataset fills it
                        continue
                    raise WeightsError(f"{path}: incompatible number of blobs for layer '{name}': no "
                                       f"dataset '{j}' (the net's layer has {len(blobs)} blob(s))")
                if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
                    raise WeightsError(f"{path}: /data/{name}/{j} is not a numeric dataset")
                p = blobs[j]
                if tuple(ds.shape) != tuple(p.shape):
                    raise WeightsError(f"{path}: cannot load param {j} of layer '{name}' from HDF5; shape "
                                       f"mismatch: file shape {_dims(ds.shape)}, net shape {_dims(p.shape)}. "
                                       f"To learn this layer's parameters from scratch rather than copying "
                                       f"from a saved net, rename the layer")
                p.copy_(torch.from_numpy(hdf5.read_dataset(ds, f"{path}: /data/{name}/{j}", WeightsError)
                                         .reshape(p.shape)))
    return ignored


def _array(t):
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


def save(net, path, write_diff=False):
    """Net::ToHDF5: ``/data/<layer>/<i>`` for owned blobs (and ``/diff/<layer>/<i>`` for all blobs with
    ``write_diff``: the owner's gradient seen in the blob's shape, zeros when none was computed)."""
    h5py = _h5py()
    seen = set()
    for name in net.layer_names:   # refused before anything is written; Caffe's H5Gcreate2 fails on these
        if "/" in name or name in (".", ""):
            raise WeightsError(f"{path}: layer name '{name}' cannot be an HDF5 group name ('/' separates "
                               f"groups; Caffe's ToHDF5 fails on it too); save as .caffemodel instead")
        if name in seen:
            raise WeightsError(f"{path}: two layers are named '{name}'; an HDF5 model needs unique layer "
                               f"names (Caffe's ToHDF5 fails on it too); save as .caffemodel instead")
        seen.add(name)
    owned = _owned(net)

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            diff = f.create_group("diff") if write_diff else None
            for li, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
                g = data.create_group(name)
                gd = diff.create_group(name) if write_diff else None
                for j in range(len(layer.blobs)):
                    p = layer.blobs[j]
                    if (li, j) in owned:
                        g.create_dataset(str(j), data=_array(p))
                    if write_diff:
                        grad = raw_blob(layer, j).grad
                        grad = torch.zeros(p.shape) if grad is None else grad.reshape(p.shape)
                        gd.create_dataset(str(j), data=_array(grad))
    atomic_write(path, write, WeightsError)


# -- solver states -----------------------------------------------------------------------------------
def _int(f, path, key):
    ds = f.get(key)
    if ds is None or not hasattr(ds, "shape") or ds.dtype.kind not in "iu" or ds.size < 1:
        raise WeightsError(f"{path}: no integer dataset '{key}'; not a Caffe HDF5 solver state")
    return int(np.asarray(ds[()] if ds.ndim == 0 else ds[(0,) * ds.ndim]).reshape(-1)[0])   # one value read


def write_solverstate(path, iteration, learned_net, history, current_step=0):
    """SnapshotSolverStateToHDF5's layout, written atomically."""
    h5py = _h5py()

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("iter", data=np.array([iteration], dtype=np.int32))
            raw = str(learned_net).encode("utf-8")
            tid = h5py.h5t.C_S1.copy()
            tid.set_size(len(raw) + 1)
            tid.set_strpad(h5py.h5t.STR_NULLTERM)
            space = h5py.h5s.create(h5py.h5s.SCALAR)
            ds = h5py.h5d.create(f.id, b"learned_net", tid, space)
            ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw + b"\0", dtype=f"S{len(raw) + 1}"), mtype=tid)
            f.create_dataset("current_step", data=np.array([current_step], dtype=np.int32))
            g = f.create_group("history")
            for i, t in enumerate(history):
                g.create_dataset(str(i), data=_array(t))
    atomic_write(path, write, WeightsError)


def read_solverstate(path):
    """RestoreSolverStateFromHDF5's reading: (iter, learned_net or "", current_step, [float32 arrays])."""
    h5py = _h5py()
    with _reading(path, "HDF5 solver state") as f:
        iteration = _int(f, path, "iter")
        learned = ""
        if "learned_net" in f:
            ds = f["learned_net"]
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "SUO" or ds.size > 1 or \
                    ds.dtype.itemsize > 1 << 16:
                raise WeightsError(f"{path}: learned_net is not a string dataset (a file name)")
            v = ds[()]
            v = v.reshape(-1)[0] if isinstance(v, np.ndarray) and v.size else v
            try:
                learned = (v if isinstance(v, bytes) else str(v).encode()).split(b"\0", 1)[0].decode("utf-8")
            except UnicodeDecodeError:
                raise WeightsError(f"{path}: learned_net is not a UTF-8 file name") from None
        step = _int(f, path, "current_step")
        g = f.get("history")
        if not isinstance(g, h5py.Group):
            raise WeightsError(f"{path}: no /history group; not a Caffe HDF5 solver state")
        history = []
        for i in range(len(g)):
            ds = g.get(str(i))
            if not isinstance(ds, h5py.Dataset):
                raise WeightsError(f"{path}: /history has {len(g)} entries but no dataset '{i}'")
            history.append(hdf5.read_dataset(ds, f"{path}: /history/{i}", WeightsError))
    return iteration, learned, step, history
