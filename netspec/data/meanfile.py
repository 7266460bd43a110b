"""Mean files: a BlobProto (num=1, channels, height, width, float ``data`` in C x H x W order), as
written by tools/compute_image_mean.cpp and read by DataTransformer (src/caffe/data_transformer.cpp).
The BlobProto codec is protos.io's (read_blobproto / write_blobproto); this module fixes the layout.
"""
import numpy as np

from recaffe.protos.errors import DataError, RecaffeError
from recaffe.protos.io import read_blobproto, write_blobproto


class MeanArray(np.ndarray):
    """A (C, H, W) float32 array that remembers the file it came from (for error messages)."""
    path = ""


def read_mean(path):
    """The mean image of a .binaryproto as a (C, H, W) float32 array (a leading num of 1 dropped)."""
    path = str(path)
    try:
        arr = np.asarray(read_blobproto(path), np.float32)
    except RecaffeError as e:
        raise DataError(f"cannot read mean file: {e}") from None
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.size == 0:
        raise DataError(f"{path}: mean file has shape {arr.shape}; expected (1, C, H, W)")
    out = np.ascontiguousarray(arr, np.float32).view(MeanArray)
    out.path = path
    return out


def write_mean(mean, path):
    """Write a (C, H, W) or (1, C, H, W) array as compute_image_mean does (legacy dims), atomically."""
    arr = np.asarray(mean, np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise DataError(f"{path}: a mean image is (C, H, W), got shape {arr.shape}")
    write_blobproto(arr, str(path), legacy=True)
