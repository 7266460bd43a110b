"""Weights: .caffemodel (binary NetParameter) and .pth files <-> a Net's parameter blobs.

Reading (Net::CopyTrainedLayersFrom, src/caffe/net.cpp; Blob::ShapeEquals, src/caffe/blob.cpp): each
layer of the file is matched by name to the first net layer of that name (file layers absent from the
net are ignored; net layers absent from the file keep their fillers); blob counts must agree; each blob
must have the net's shape, where a legacy num/channels/height/width blob is compared right-aligned
against the net shape padded with leading 1s (so (1,1,N,K) fits an (N,K) weight). Diffs in the file are
ignored. V1 (``layers``) and V0 (``layers { layer {...} }``) files are read the same way: only layer
names and blobs matter.

Speed: the file is read once into a bytearray and its wire format walked here (netspec.wire); the packed
float ``data`` of each blob is viewed with ``np.frombuffer`` and copied straight into the parameter, so
peak memory is about file size + the net's parameters.

Writing follows Net::ToProto: the net name, then every layer's LayerParameter as the net holds it (phase
set, default loss_weight) with its blobs (``shape`` + packed ``data``), fields in field-number order as
Caffe's serializer emits them. ``.pth``: ``{"<layer>.<i>": tensor}`` saved with ``torch.save`` and read
back with ``torch.load(weights_only=True)``. HDF5 (``.h5``/``.hdf5``, or any file with HDF5's signature when
reading, as Caffe's H5Fis_hdf5 test): netspec.weights_h5. Writes are atomic (temporary file + rename).
"""
import os

import numpy as np
import torch

from recaffe.protos import limits
from recaffe.protos.files import atomic_write
from recaffe.protos.errors import WeightsError
from . import h5 as weights_h5, pth, wire


def _format(path):
    p = str(path).lower()
    if p.endswith((".pth", ".pt")):
        return "pth"
    if p.endswith((".h5", ".hdf5")):
        return "h5"
    return "caffemodel"


def load_weights(net, path):
    """Copy weights from ``path`` (.caffemodel, .pth/.pt, .caffemodel.h5) into ``net``; returns the names
    of the file's layers that the net does not have (ignored, as Caffe logs them)."""
    fmt = _format(path)
    if fmt == "pth":
        return _load_pth(net, path)
    # HDF5 or binary proto by content, as Caffe (H5Fis_hdf5); the suffix decides only for a missing file
    if weights_h5.is_hdf5(path) or (fmt == "h5" and not os.path.exists(path)):
        return weights_h5.load(net, path)
    size = limits.check_file(path, "weights", WeightsError)      # not /dev/zero, a FIFO, a directory
    limits.check_alloc(size, f"{path}: reading weights", WeightsError)
    try:
        with open(path, "rb") as f:
            buf = bytearray(size)
            if f.readinto(buf) != size:
                raise WeightsError(f"{path}: weights file changed size while being read")
    except OSError as e:
        raise WeightsError(f"{path}: cannot read weights: {e.strerror}") from None
    try:
        layers = wire.read_caffemodel_layers(buf)
    except wire.WireError as e:
        raise WeightsError(f"{path}: not a valid .caffemodel (binary NetParameter): {e}") from None
    ignored = []
    with torch.no_grad():
        for name, blobs in layers:
            if name not in net._index:
                ignored.append(name)
                continue
            target = net.layers[net._index[name]].blobs
            if len(blobs) != len(target):
                raise WeightsError(f"{path}: incompatible number of blobs for layer '{name}': file has "
                                   f"{len(blobs)}, net has {len(target)}")
            for i, (blob, p) in enumerate(zip(blobs, target)):
                _check_shape(path, name, i, blob, tuple(p.shape))
                arr = blob.array()
                p.copy_(torch.from_numpy(arr).view(p.shape))
    del buf
    return ignored


def _check_shape(path, name, i, blob, shape):
    """Blob::ShapeEquals, plus the element count of the data field."""
    if blob.legacy is not None:
        ok = len(shape) <= 4 and (1,) * (4 - len(shape)) + shape == blob.legacy
        src = blob.legacy
    else:
        ok = tuple(blob.shape) == shape
        src = tuple(blob.shape)
    if not ok:
        raise WeightsError(f"{path}: cannot copy param {i} weights from layer '{name}': shape mismatch; "
                           f"file blob shape {src}{' (legacy num/channels/height/width)' if blob.legacy else ''}, "
                           f"net blob shape {shape}. To learn this layer's parameters from scratch rather "
                           f"than copying from a saved net, rename the layer")
    n = int(np.prod(src, dtype=np.int64))
    if blob.count != n:
        raise WeightsError(f"{path}: layer '{name}' blob {i}: {blob.count} data values for shape {src} "
                           f"({n} expected)")


def _load_pth(net, path):
    state = pth.tensor_dict(pth.load(path, ".pth weights", WeightsError), path, ".pth weights", WeightsError)
    ignored = []
    with torch.no_grad():
        for key, value in state.items():
            name, _, idx = str(key).rpartition(".")
            if name not in net._index or not idx.isdigit():
                ignored.append(key)
                continue
            blobs = net.layers[net._index[name]].blobs
            i = int(idx)
            if i >= len(blobs):
                raise WeightsError(f"{path}: layer '{name}' has {len(blobs)} blob(s), file has blob {i}")
            if tuple(value.shape) != tuple(blobs[i].shape):
                raise WeightsError(f"{path}: cannot copy param {i} weights from layer '{name}': shape "
                                   f"mismatch; file blob shape {tuple(value.shape)}, net blob shape "
                                   f"{tuple(blobs[i].shape)}")
            blobs[i].copy_(value)
    return ignored


def save_weights(net, path, fmt=None):
    """Write the net's blobs to ``path``: .pth/.pt as a torch dict, .h5/.hdf5 in Caffe's HDF5 layout
    (netspec.weights_h5), anything else as a .caffemodel; ``fmt`` ("pth", "h5", "caffemodel")
    overrides the suffix."""
    fmt = fmt or _format(path)
    if fmt == "h5":
        return weights_h5.save(net, path)

    def write(tmp):
        with open(tmp, "wb") as f:
            if fmt == "pth":
                torch.save(dict(net.caffe_state_dict()), f)
            else:
                wire.write_caffemodel(f, net.name, net.saved_params,
                                      [[p.detach() for p in l.blobs] for l in net.layers])
    atomic_write(path, write, WeightsError)
