"""HDF5 reading as untrusted input: the HDF5Data layer's files (src/caffe/layers/hdf5_data_layer.cpp,
src/caffe/util/hdf5.cpp hdf5_load_nd_dataset), .caffemodel.h5 and .solverstate.h5.

An HDF5 file declares each dataset's shape and type in its header; a dataset of 1e6 x 1e6 floats
takes a few hundred bytes on disk (unwritten chunks read as the fill value) and 4 TB once read. So
every dataset is checked before it is read: a numeric type (Caffe's hdf5_load_nd_dataset takes
H5T_FLOAT and H5T_INTEGER only: a dataset of strings is refused), Caffe's blob limits on its shape
(protos.limits.check_blob: at most 32 axes and INT_MAX elements) and its float32 size against the
memory available. h5py's own failures on a damaged file (OSError, KeyError, ValueError, RuntimeError
and friends, depending on where the damage is) become one line naming the file.
"""
import contextlib
import os

import numpy as np

from recaffe.protos import limits
from recaffe.protos.errors import DataError


def h5py_module(error=DataError):
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is an install requirement
        raise error("HDF5 files need h5py: pip install h5py") from None
    return h5py


#: what h5py raises on a damaged or unexpected file, besides OSError
H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError, AttributeError, OverflowError)


@contextlib.contextmanager
def reading(path, what, error=DataError):
    """``path`` opened read-only for the ``with`` body; a missing, non-regular, unreadable or damaged
    file (h5py's errors while opening or reading) is one line of ``error`` naming it."""
    h5py = h5py_module(error)
    if not os.path.lexists(path):
        raise error(f"{path}: no such {what} file")
    limits.check_file(path, what, error)
    try:
        with h5py.File(path, "r") as f:
            yield f
    except H5_ERRORS as e:
        msg = str(e).replace("Unable to synchronously open file ", "").replace("Unable to open file ", "")
        msg = msg.strip().split("\n", 1)[0] or type(e).__name__
        raise error(f"{path}: cannot read {what}: {msg}") from None


def read_dataset(ds, where, error=DataError, dtype=np.float32):
    """The whole of an h5py dataset as a ``dtype`` array, after checking that it is a numeric dataset
    whose shape is a valid blob (protos.limits) and whose size fits in the memory available."""
    h5py = h5py_module(error)
    if not isinstance(ds, h5py.Dataset):
        raise error(f"{where}: is a group, not a dataset")
    kind = ds.dtype.kind
    if kind not in "fiub":
        raise error(f"{where}: dataset of {_type_name(ds.dtype)}; expected numbers (float or integer), as "
                    f"Caffe's hdf5_load_nd_dataset")
    shape = tuple(int(d) for d in ds.shape)
    n = limits.check_blob(shape, f"{where}: dataset", error)
    limits.check_alloc(n * np.dtype(dtype).itemsize, f"{where}: dataset of shape {shape}", error)
    try:
        return np.asarray(ds[()], dtype=dtype)
    except H5_ERRORS as e:
        raise error(f"{where}: cannot read dataset: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None


def _type_name(dt):
    if dt.kind in "SUO":
        return "strings"
    if dt.kind == "V":
        return "compound/opaque records"
    return str(dt)


def read_source_list(source, layer_name):
    """The HDF5 file names of an hdf5_data_param.source list (whitespace-separated), relative names as
    given (Caffe reads them relative to the working directory)."""
    data = limits.read_file(source, f"HDF5 source list (layer '{layer_name}')", DataError, 64 << 20,
                            "64 MiB for a list of file names")
    try:
        files = data.decode("utf-8").split()
    except UnicodeDecodeError as e:
        raise DataError(f"{source}: HDF5 source list is not UTF-8 text (byte {e.start})") from None
    if not files:
        raise DataError(f"{source}: the HDF5 source list names no files")
    return files


def load_tops(path, names, layer_name):
    """The datasets ``names`` of one HDF5Data file as float32 arrays with the same non-zero number of
    rows (HDF5DataLayer::LoadHDF5FileData)."""
    arrays = []
    with reading(path, f"HDF5 data file (layer '{layer_name}')") as f:
        for name in names:
            if name not in f:
                raise DataError(f"{path}: no dataset '{name}' (layer '{layer_name}'); datasets: "
                                f"{', '.join(sorted(f.keys()))}")
            arrays.append(read_dataset(f[name], f"{path}: '{name}'"))
    rows = arrays[0].shape[0] if arrays[0].ndim else 0
    for name, a in zip(names, arrays):
        if a.ndim == 0 or a.shape[0] != rows or rows == 0:
            raise DataError(f"{path}: dataset '{name}' has shape {a.shape}; all datasets need the same "
                            f"non-zero number of rows ({rows})")
    return arrays

