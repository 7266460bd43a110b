"""pycaffe's ``caffe.io``: image loading and resizing, the input Transformer, oversampling, and the
BlobProto / Datum <-> numpy helpers (python/caffe/io.py). Images are handled without scikit-image:
PIL decodes; resize_image reproduces scikit-image's resize as pycaffe calls it (numpy, no skimage)."""
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from recaffe.protos import blob as _blob, caffe_pb2
from recaffe.protos.blob import array_to_blobproto  # noqa: F401
from recaffe.protos.errors import ProtoError


# -- protos <-> arrays: one implementation in protos.blob; pycaffe's names and results here ----------
class IOValueError(ProtoError, ValueError):
    """A proto/array mismatch: pycaffe raises ValueError (numpy's reshape) for these."""


def _as_value_error(fn, *args):
    try:
        return fn(*args)
    except ProtoError as e:
        raise IOValueError(str(e)) from None


def blobproto_to_array(blob, return_diff=False):
    """pycaffe's array of a BlobProto: legacy num/channels/height/width when any of them is set, else
    ``shape``; float64, as pycaffe's np.array over the proto's floats gives (values are float32's)."""
    return _as_value_error(_blob.blobproto_to_array, blob, return_diff).astype(np.float64)


def datum_to_array(datum):
    """(channels, height, width): uint8 from ``data``, else float64 from ``float_data`` (pycaffe)."""
    arr = _as_value_error(_blob.datum_to_array, datum)
    return arr if arr.dtype == np.uint8 else arr.astype(np.float64)


def array_to_datum(arr, label=None):
    """Datum of a 3-D array (uint8 -> ``data`` bytes, else ``float_data``); other ranks: ValueError."""
    return _as_value_error(_blob.array_to_datum, arr, label)


def arraylist_to_blobprotovector_str(arraylist):
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(a) for a in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data):
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(b) for b in vec.blobs]


# -- images ----------------------------------------------------------------------------------------
def load_image(filename, color=True):
    """H x W x 3 RGB (or H x W x 1 gray when ``color`` is False) float32 image in [0, 1].

    Bad input is a one-line DataError naming the file: not a regular file, width x height over
    RECAFFE_MAX_IMAGE_PIXELS (read from the header, before decoding; also PIL's own bomb limit),
    not an image PIL reads, or truncated."""
    from recaffe.netspec.data.image import check_pixels
    from recaffe.protos import limits
    from recaffe.protos.errors import DataError
    path = str(filename)
    data = limits.read_file(path, "image", DataError)
    check_pixels(data, path)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if color:
                im = im.convert("RGB")
            elif im.mode not in ("L", "I", "F"):
                im = im.convert("L")
            arr = np.asarray(im)
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: cannot read image: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:   # PIL: unidentified, truncated, corrupt
        raise DataError(f"{path}: cannot read image: {str(e).strip() or type(e).__name__}") from None
    img = arr.astype(np.float32)
    if arr.dtype == np.uint8:
        img /= 255.0
    elif arr.dtype == np.uint16:
        img /= 65535.0
    if img.ndim == 2:
        img = img[:, :, None]
    return img


def resize_image(im, new_dims, interp_order=1):
    """Resize an H x W x K array to ``new_dims`` = (height, width) as pycaffe does (python/caffe/io.py):
    for K = 1 or 3 the image is scaled to [0, 1], resized like scikit-image's ``resize(..., order,
    mode='constant')`` (see _skimage_like_resize), and scaled back; other K: spline zoom (torch here)."""
    im = np.asarray(im, dtype=np.float32)
    h, w = int(new_dims[0]), int(new_dims[1])
    if im.ndim == 2:
        im = im[:, :, None]
    if im.shape[-1] in (1, 3):
        lo, hi = float(im.min()), float(im.max())
        if hi <= lo:
            return np.full((h, w, im.shape[-1]), lo, dtype=np.float32)
        std = (im - np.float32(lo)) / np.float32(hi - lo)
        out = _skimage_like_resize(std, h, w, interp_order)
        return (out * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))[None]
    mode = "nearest" if interp_order == 0 else "bilinear"
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(t, size=(h, w), mode=mode, **kwargs)[0]
    return out.numpy().transpose(1, 2, 0).astype(np.float32)


def _gaussian_1d(x, sigma, axis):
    """scipy.ndimage.gaussian_filter1d(mode='constant', cval=0, truncate=4) along ``axis``."""
    if sigma <= 0:
        return x
    radius = int(4.0 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    xp = np.pad(x.astype(np.float64), pad)
    out = np.zeros(x.shape, np.float64)
    n = x.shape[axis]
    for i, kv in enumerate(k):
        out += kv * np.take(xp, np.arange(i, i + n), axis=axis)
    return out.astype(x.dtype)


def _skimage_like_resize(im, h, w, order):
    """scikit-image 0.18 ``resize(im, (h, w), order, mode='constant', cval=0, anti_aliasing=None)`` on an
    H x W x K float32 image in [0, 1]: Gaussian anti-aliasing with sigma (factor - 1) / 2 on the
    down-scaled axes, then for each output pixel the input point factor * (i + 0.5) - 0.5, sampled
    bilinearly (order 1) or nearest, round half away from zero (order 0), with 0 outside the image;
    finally clipped to [0, 1] (its clip=True)."""
    H, W = im.shape[:2]
    fr, fc = H / float(h), W / float(w)
    x = _gaussian_1d(im, max(0.0, (fr - 1) / 2), 0)
    x = _gaussian_1d(x, max(0.0, (fc - 1) / 2), 1)
    if h == 1 and w == 1:
        r, c = np.array([H / 2.0 - 0.5]), np.array([W / 2.0 - 0.5])
    else:
        r = fr * (np.arange(h) + 0.5) - 0.5
        c = fc * (np.arange(w) + 0.5) - 0.5
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))               # index i of x is i + 1 of xp; borders are 0

    def idx(v, n):
        return np.clip(v + 1, 0, n + 1).astype(np.int64)

    if order == 0:
        ri = np.where(r >= 0, np.floor(r + 0.5), np.ceil(r - 0.5))
        ci = np.where(c >= 0, np.floor(c + 0.5), np.ceil(c - 0.5))
        out = xp[idx(ri, H)][:, idx(ci, W)]
    else:
        r0, c0 = np.floor(r), np.floor(c)
        dr, dc = (r - r0)[:, None, None], (c - c0)[None, :, None]
        rows0, rows1 = xp[idx(r0, H)], xp[idx(r0 + 1, H)]
        top = (1 - dc) * rows0[:, idx(c0, W)] + dc * rows0[:, idx(c0 + 1, W)]
        bottom = (1 - dc) * rows1[:, idx(c0, W)] + dc * rows1[:, idx(c0 + 1, W)]
        out = (1 - dr) * top + dr * bottom
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def oversample(images, crop_dims):
    """The 4 corner crops, the centre crop and their mirrors: (10 N) x h x w x K."""
    ch, cw = int(crop_dims[0]), int(crop_dims[1])
    H, W, K = images[0].shape
    cy, cx = H / 2.0, W / 2.0
    boxes = [(0, 0), (0, W - cw), (H - ch, 0), (H - ch, W - cw), (int(cy - ch / 2.0), int(cx - cw / 2.0))]
    out = np.empty((10 * len(images), ch, cw, K), dtype=np.float32)
    i = 0
    for im in images:
        for (y, x) in boxes:
            out[i] = im[y:y + ch, x:x + cw, :]
            i += 1
        out[i:i + 5] = out[i - 5:i, :, ::-1, :]
        i += 5
    return out


class Transformer:
    """Prepares H x W x K images for a net input: resize, transpose, channel swap, raw scale, mean,
    input scale, in pycaffe's order; ``deprocess`` undoes it."""

    def __init__(self, inputs):
        self.inputs = {k: tuple(v) for k, v in inputs.items()}
        self.transpose, self.channel_swap, self.raw_scale = {}, {}, {}
        self.mean, self.input_scale = {}, {}

    def _check(self, in_):
        if in_ not in self.inputs:
            raise KeyError(f"{in_} is not one of the net inputs: {sorted(self.inputs)}")

    def preprocess(self, in_, data):
        self._check(in_)
        x = np.asarray(data, dtype=np.float32)
        dims = self.inputs[in_][2:]
        if x.shape[:2] != tuple(dims):
            x = resize_image(x, dims)
        if in_ in self.transpose:
            x = x.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            x = x[list(self.channel_swap[in_]), :, :]
        x = np.array(x, dtype=np.float32)
        if in_ in self.raw_scale:
            x *= self.raw_scale[in_]
        if in_ in self.mean:
            x -= self.mean[in_]
        if in_ in self.input_scale:
            x *= self.input_scale[in_]
        return x

    def deprocess(self, in_, data):
        self._check(in_)
        x = np.array(data, dtype=np.float32).squeeze()
        if in_ in self.input_scale:
            x /= self.input_scale[in_]
        if in_ in self.mean:
            x += self.mean[in_]
        if in_ in self.raw_scale:
            x /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            x = x[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            x = x.transpose(np.argsort(self.transpose[in_]))
        return x

    def set_transpose(self, in_, order):
        self._check(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError("transpose order needs as many dimensions as the input minus the batch axis")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        self._check(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError("channel swap needs as many entries as the input has channels")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        self._check(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Per-channel (1-D) or element-wise (C x H x W) mean; an element-wise mean of another size is
        resized to the input's."""
        self._check(in_)
        mean = np.asarray(mean, dtype=np.float32)
        if mean.ndim == 1:
            if mean.shape[0] != self.inputs[in_][1]:
                raise ValueError("mean channels incompatible with input")
            mean = mean[:, None, None]
        else:
            if mean.ndim == 2:
                mean = mean[None]
            if mean.ndim != 3:
                raise ValueError("mean shape invalid")
            want = tuple(self.inputs[in_][1:])
            if mean.shape != want:
                mean = resize_image(mean.transpose(1, 2, 0), want[1:]).transpose(2, 0, 1)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        self._check(in_)
        self.input_scale[in_] = scale
