"""Caffe's weight fillers (include/caffe/filler.hpp), filling a torch tensor in place.

``fill(tensor, filler_param)`` dispatches on ``filler_param.type`` (a ``caffe_pb2.FillerParameter``, or
None for Caffe's default: constant 0). Random fillers draw from torch's global generator, so
``torch.manual_seed`` makes them repeatable (Caffe's own RNG stream cannot be reproduced bit for bit).

Fan sizes follow Caffe's legacy accessors (Blob::num()/channels(), blob.hpp LegacyShape): for a blob of
at most 4 axes, ``num`` = shape[0] and ``channels`` = shape[1], either read as 1 when the axis is absent;
fan_in = count // num, fan_out = count // channels (integer division as in Caffe).
"""
import math

import numpy as np
import torch

from recaffe.protos.errors import NetError

_VARIANCE_NORMS = {0: "FAN_IN", 1: "FAN_OUT", 2: "AVERAGE"}


def _error(fp, msg):
    return NetError(f"filler '{fp.type}': {msg}")


def _legacy(fp, shape, index):
    """Blob::LegacyShape: at most 4 axes; an absent axis reads as 1."""
    if len(shape) > 4:
        raise _error(fp, f"needs a blob of at most 4 axes (Caffe's legacy accessors), got shape {tuple(shape)}")
    return int(shape[index]) if index < len(shape) else 1


def fan_in_out(fp, shape):
    """(fan_in, fan_out) as XavierFiller/MSRAFiller compute them."""
    n = 1
    for d in shape:
        n *= int(d)
    return n // _legacy(fp, shape, 0), n // _legacy(fp, shape, 1)


def _scale_n(fp, shape):
    """The n of xavier/msra: fan_in, fan_out or their average (float32 real division)."""
    fan_in, fan_out = fan_in_out(fp, shape)
    norm = fp.variance_norm
    if norm not in _VARIANCE_NORMS:
        raise _error(fp, f"unknown variance_norm {norm}; valid: FAN_IN, FAN_OUT, AVERAGE")
    if norm == 2:
        return np.float32(fan_in + fan_out) / np.float32(2)
    return np.float32(fan_out if norm == 1 else fan_in)


def _no_sparse(fp):
    if fp.sparse != -1:
        raise _error(fp, f"sparse={fp.sparse} is supported only by the gaussian filler")


def _need_count(fp, t):
    if t.numel() == 0:
        raise _error(fp, "cannot fill an empty blob")


def _constant(t, fp):
    _need_count(fp, t)
    t.fill_(fp.value)
    _no_sparse(fp)


def _uniform_into(t, fp, lo, hi):
    if not lo <= hi:
        raise _error(fp, f"needs min <= max, got min={lo} max={hi}")
    t.uniform_(float(lo), float(hi))


def _uniform(t, fp):
    _need_count(fp, t)
    _uniform_into(t, fp, fp.min, fp.max)
    _no_sparse(fp)


def _gaussian_into(t, fp, mean, std):
    if not std > 0:
        raise _error(fp, f"needs std > 0, got {std}")
    t.normal_(float(mean), float(std))


def _gaussian(t, fp):
    _need_count(fp, t)
    _gaussian_into(t, fp, fp.mean, fp.std)
    if fp.sparse < -1:
        raise _error(fp, f"sparse must be >= -1, got {fp.sparse}")
    if fp.sparse >= 0:
        if t.dim() < 1:
            raise _error(fp, "sparse gaussian needs a blob with at least 1 axis")
        p = np.float32(fp.sparse) / np.float32(t.shape[0])
        if p > 1:
            raise _error(fp, f"sparse={fp.sparse} exceeds the number of outputs {t.shape[0]}")
        t.mul_(torch.bernoulli(torch.full_like(t, float(p))))


def _positive_unitball(t, fp):
    _need_count(fp, t)
    t.uniform_(0.0, 1.0)
    num = _legacy(fp, t.shape, 0)
    rows = t.view(num, -1)
    rows.div_(rows.sum(dim=1, keepdim=True))
    _no_sparse(fp)


def _xavier(t, fp):
    _need_count(fp, t)
    scale = np.sqrt(np.float32(3) / _scale_n(fp, t.shape))
    _uniform_into(t, fp, -scale, scale)
    _no_sparse(fp)


def _msra(t, fp):
    _need_count(fp, t)
    std = np.sqrt(np.float32(2) / _scale_n(fp, t.shape))
    _gaussian_into(t, fp, 0.0, std)
    _no_sparse(fp)


def bilinear_kernel(size):
    """The K x K bilinear upsampling kernel of BilinearFiller: f = ceil(K/2),
    c = (2f - 1 - f%2) / (2f), w(x, y) = (1 - |x/f - c|) * (1 - |y/f - c|)."""
    f = int(math.ceil(size / 2.0))
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    x = np.arange(size, dtype=np.float64)
    w = 1 - np.abs(x / f - c)
    return np.outer(w, w).astype(np.float32)


def _bilinear(t, fp):
    _need_count(fp, t)
    if t.dim() != 4:
        raise _error(fp, f"needs a 4-axis blob, got shape {tuple(t.shape)}")
    if t.shape[2] != t.shape[3]:
        raise _error(fp, f"needs a square kernel, got {t.shape[2]}x{t.shape[3]}")
    t.copy_(torch.from_numpy(bilinear_kernel(int(t.shape[3]))).expand_as(t))
    _no_sparse(fp)


_FILLERS = {
    "constant": _constant, "uniform": _uniform, "gaussian": _gaussian,
    "positive_unitball": _positive_unitball, "xavier": _xavier, "msra": _msra, "bilinear": _bilinear,
}


def filler_types():
    return sorted(_FILLERS)


def fill(tensor, filler_param=None):
    """Fill ``tensor`` in place as Caffe's GetFiller(filler_param)->Fill(blob) would; returns it."""
    if filler_param is None:
        from recaffe.protos import caffe_pb2
        filler_param = caffe_pb2.FillerParameter()
    fn = _FILLERS.get(filler_param.type)
    if fn is None:
        raise NetError(f"unknown filler type '{filler_param.type}'; valid: {', '.join(filler_types())}")
    with torch.no_grad():
        target = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
        if target.dtype in (torch.float32, torch.float64):
            fn(target, filler_param)
        else:  # integer blobs are not filled by Caffe fillers, but keep the call total
            tmp = torch.empty(target.shape, dtype=torch.float32)
            fn(tmp, filler_param)
            target.copy_(tmp)
    return tensor
