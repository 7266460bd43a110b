"""Mean files: a BlobProto (num=1, channels, height, width, float ``data`` in C x H x W order), as
written by tools/compute_image_mean.cpp and read by DataTransformer (src/caffe/data_transformer.cpp).

Uses ``protos.io.read_blobproto`` / ``write_blobproto`` when the protos package provides them; the
small private codec below is the fallback (and what is used until then).
"""
import os

import numpy as np
from google.protobuf.message import DecodeError

from protos import caffe_pb2
from protos.errors import DataError, RecaffeError


class MeanArray(np.ndarray):
    """A (C, H, W) float32 array that remembers the file it came from (for error messages)."""
    path = ""


def _blob_to_array(blob, path):
    if blob.HasField("shape"):
        dims = tuple(int(d) for d in blob.shape.dim)
    else:
        dims = (blob.num, blob.channels, blob.height, blob.width)
    n = int(np.prod(dims)) if dims else 0
    if len(blob.data) != n:
        raise DataError(f"{path}: BlobProto has {len(blob.data)} values for shape {dims}")
    return np.asarray(blob.data, np.float32).reshape(dims)


def read_mean(path):
    """The mean image of a .binaryproto as a (C, H, W) float32 array (a leading num of 1 dropped)."""
    path = str(path)
    arr = None
    try:
        from protos.io import read_blobproto
    except ImportError:
        read_blobproto = None
    if read_blobproto is not None:
        try:
            arr = np.asarray(read_blobproto(path), np.float32)
        except RecaffeError as e:
            raise DataError(f"{path}: cannot read mean file: {e}") from None
    else:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise DataError(f"{path}: cannot read mean file: {e.strerror}") from None
        blob = caffe_pb2.BlobProto()
        try:
            blob.ParseFromString(raw)
        except DecodeError as e:
            raise DataError(f"{path}: not a BlobProto (.binaryproto) mean file: {e}") from None
        arr = _blob_to_array(blob, path)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.size == 0:
        raise DataError(f"{path}: mean file has shape {arr.shape}; expected (1, C, H, W)")
    out = np.ascontiguousarray(arr, np.float32).view(MeanArray)
    out.path = path
    return out


def write_mean(mean, path):
    """Write a (C, H, W) or (1, C, H, W) array as Caffe's legacy-dims BlobProto, atomically."""
    arr = np.asarray(mean, np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise DataError(f"{path}: a mean image is (C, H, W), got shape {arr.shape}")
    blob = caffe_pb2.BlobProto()
    blob.num, blob.channels, blob.height, blob.width = (int(d) for d in arr.shape)
    blob.data.extend(arr.ravel().tolist())
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(blob.SerializeToString())
    os.replace(tmp, path)
