"""WindowData: R-CNN's window sampler (Caffe 1.0, src/caffe/layers/window_data_layer.cpp and
include/caffe/layers/window_data_layer.hpp).

The window file (``window_data_param.source``) repeats blocks of whitespace-separated tokens::

    # <image_index>
    <image path>            (root_folder is prepended as a plain string)
    <channels> <height> <width>
    <num_windows>
    <class> <overlap> <x1> <y1> <x2> <y2>      (num_windows lines, inclusive pixel corners)

A window with ``overlap >= fg_threshold`` is foreground (its class must be > 0); one with
``overlap < bg_threshold`` is background (class forced to 0); others are dropped. Each batch holds
``batch_size - num_fg`` background windows then ``num_fg = int(float(batch_size) * fg_fraction)``
(float32, as Caffe) foreground ones, each drawn uniformly, each mirrored with probability 1/2 when
``transform_param.mirror`` (in every phase). Images are decoded as 3-channel BGR (``cv::imread``
IMREAD_COLOR), the window (expanded by ``context_pad`` and squared in ``crop_mode: "square"``, with
Caffe's float32 arithmetic and ``round``) is clipped to the image, resized with ``cv::resize``
INTER_LINEAR and pasted into a zeroed ``crop_size`` square at the scaled padding offsets, mirrored
padding included. Pixels become ``(pixel - mean) * window_data_param.scale``, the mean taken from
``transform_param.mean_file`` at ``mean_off + pad + (h, w)`` (``mean_off = (mean_width - crop) / 2``)
or from ``transform_param.mean_value``. As in Caffe, ``crop_size``, ``mirror``, ``mean_file`` and
``mean_value`` come from ``transform_param`` and ``scale`` from ``window_data_param`` (the
same-named ``window_data_param`` fields and ``transform_param.scale`` are not read). Tops: data
``(batch_size, channels, crop, crop)`` (channels from the last image block, which must say 3) and
label ``(batch_size,)``.

Randomness comes from a numpy generator seeded from torch's global generator when the layer is
built (``torch.manual_seed`` / the solver's ``random_seed`` make runs reproducible); set
``layer.seed`` before the first forward to choose it. Batches are made in the calling thread; each
image is decoded at most once per batch (``cache_images`` keeps the encoded files in memory, as
Caffe does).
"""
import os
import re

import numpy as np
import torch

from recaffe.protos import limits
from recaffe.protos.errors import DataError
from recaffe.netspec.data.image import COLOR, cv2, decode_hwc
from .base import Layer
from .registry import register

_INT = re.compile(r"[+-]?\d+\Z")


class _Tokens:
    """The whitespace-separated tokens of a text file, each with its line number."""

    def __init__(self, path, text):
        self.path = path
        self.items = [(tok, n) for n, line in enumerate(text.splitlines(), 1) for tok in line.split()]
        self.pos = 0

    def done(self):
        return self.pos >= len(self.items)

    def line(self):
        return self.items[min(self.pos, len(self.items) - 1)][1]

    def take(self, what, kind=str):
        if self.done():
            raise DataError(f"{self.path}:{self.line()}: window file ends where {what} was expected")
        tok, n = self.items[self.pos]
        self.pos += 1
        if kind is int and not _INT.match(tok):
            raise DataError(f"{self.path}:{n}: {what} must be an integer, got {tok!r}")
        if kind is float:
            try:
                return np.float32(float(tok)), n
            except ValueError:
                raise DataError(f"{self.path}:{n}: {what} must be a number, got {tok!r}") from None
        return (int(tok) if kind is int else tok), n


def read_window_file(path, root_folder, fg_threshold, bg_threshold):
    """Parse a window file as DataLayerSetUp does.

    Returns ``(images, fg, bg, channels)``: images as ``(path, header line)`` in file order (a window's
    image_index indexes this list, as in Caffe), windows as ``(image_index, label, x1, y1, x2, y2,
    line)``, and the channel count of the last block (Caffe's data top channels)."""
    if os.path.exists(path):    # a regular file of a size that fits (not /dev/zero, a FIFO)
        limits.check_alloc(limits.check_file(path, "window file", DataError), f"{path}: window file", DataError)
    try:
        with open(path, errors="replace") as f:
            toks = _Tokens(path, f.read())
    except OSError as e:
        raise DataError(f"cannot open window file {path!r}: {e.strerror}") from None
    if toks.done():
        raise DataError(f"{path}: window file is empty; expected blocks of '# <image_index>', the image "
                        f"path, channels, height, width, num_windows and that many "
                        f"'<class> <overlap> <x1> <y1> <x2> <y2>' lines")
    fg_t, bg_t = np.float32(fg_threshold), np.float32(bg_threshold)
    images, fg, bg, channels = [], [], [], 0
    while not toks.done():
        tag, n = toks.take("'#'")
        if tag != "#":
            raise DataError(f"{path}:{n}: expected '#' starting an image block, got {tag!r}")
        index, head = toks.take("the image index after '#'", int)
        image, _ = toks.take("the image path")
        channels = toks.take("channels", int)[0]
        toks.take("height", int)
        toks.take("width", int)
        count, n = toks.take("num_windows", int)
        if count < 0:
            raise DataError(f"{path}:{n}: num_windows must be >= 0, got {count}")
        images.append((root_folder + image, head))
        for _ in range(count):
            label, n = toks.take("a window's class", int)
            overlap = toks.take("a window's overlap", float)[0]
            x1, y1, x2, y2 = (toks.take(f"a window's {c}", int)[0] for c in ("x1", "y1", "x2", "y2"))
            if x2 < x1 or y2 < y1:
                raise DataError(f"{path}:{n}: window ({x1}, {y1}, {x2}, {y2}) needs x1 <= x2 and y1 <= y2")
            if overlap >= fg_t:
                if label <= 0:
                    raise DataError(f"{path}:{n}: foreground window (overlap {float(overlap):g} >= fg_threshold "
                                    f"{float(fg_t):g}) has class {label}; foreground classes must be > 0")
                fg.append((index, label, x1, y1, x2, y2, n))
            elif overlap < bg_t:
                bg.append((index, 0, x1, y1, x2, y2, n))
    for win in fg + bg:
        if not 0 <= win[0] < len(images):
            raise DataError(f"{path}:{win[6]}: image_index {win[0]} of this window's block is not the position "
                            f"of an image block (0..{len(images) - 1}); Caffe indexes images by file order")
    return images, fg, bg, channels


def _round(x):
    """C's round() of a float32: half away from zero (exact in float64)."""
    x = float(x)
    return int(np.sign(x) * np.floor(abs(x) + 0.5))


def window_geometry(x1, y1, x2, y2, rows, cols, crop, context_pad, square, mirror):
    """Caffe's load_batch geometry for one window of a ``rows`` x ``cols`` image.

    Returns ``(x1, y1, x2, y2)`` of the clipped source region, the ``(width, height)`` it is resized
    to, and the ``(pad_h, pad_w)`` where it is pasted (``pad_w`` from the right-hand padding when
    mirrored). float32 arithmetic and C ``round`` as in window_data_layer.cpp."""
    if not (context_pad > 0 or square):
        return (x1, y1, x2, y2), (crop, crop), (0, 0)
    f = np.float32
    context_scale = f(crop) / f(crop - 2 * context_pad)
    half_h, half_w = f((y2 - y1 + 1) / 2.0), f((x2 - x1 + 1) / 2.0)
    cx, cy = f(x1) + half_w, f(y1) + half_h
    if square:
        half_h = half_w = max(half_h, half_w)
    x1, x2 = _round(cx - half_w * context_scale), _round(cx + half_w * context_scale)
    y1, y2 = _round(cy - half_h * context_scale), _round(cy + half_h * context_scale)
    unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
    pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
    pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
    x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
    scale_x, scale_y = f(crop) / f(unclipped_w), f(crop) / f(unclipped_h)
    width, height = _round(f(x2 - x1 + 1) * scale_x), _round(f(y2 - y1 + 1) * scale_y)
    pad_h = _round(f(pad_y1) * scale_y)
    pad_w = _round(f(pad_x2 if mirror else pad_x1) * scale_x)
    return (x1, y1, x2, y2), (min(width, crop - pad_w), min(height, crop - pad_h)), (pad_h, pad_w)


@register("WindowData")
class WindowData(Layer):
    exact_bottoms = 0
    exact_tops = 2
    is_data = True

    def setup(self, p):
        tp = self.lp.transform_param
        if not p.source:
            raise self.error("window_data_param.source is empty; give the path of a window file")
        self.crop = int(tp.crop_size)
        if self.crop <= 0:
            hint = " (window_data_param.crop_size is not read by Caffe 1.0)" if p.crop_size else ""
            raise self.error(f"transform_param.crop_size must be > 0{hint}")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error(f"window_data_param.batch_size must be > 0, got {self.batch_size}")
        if p.crop_mode not in ("warp", "square"):
            raise self.error(f"window_data_param.crop_mode {p.crop_mode!r}; valid: \"warp\", \"square\"")
        self.square, self.context_pad = p.crop_mode == "square", int(p.context_pad)
        if self.context_pad and 2 * self.context_pad >= self.crop:
            raise self.error(f"context_pad {self.context_pad} leaves no room in crop_size {self.crop}")
        self.mirror, self.scale = bool(tp.mirror), np.float32(p.scale)
        self.source = p.source
        self.images, self.fg, self.bg, channels = read_window_file(p.source, p.root_folder, p.fg_threshold,
                                                                   p.bg_threshold)
        if channels != 3:
            raise DataError(f"{p.source}:{self.images[-1][1]}: the last image block says {channels} channels; "
                            f"Caffe decodes every image as 3-channel BGR and sizes its data top from this "
                            f"value, so it must be 3")
        if not 0 <= p.fg_fraction <= 1:
            raise self.error(f"window_data_param.fg_fraction must be in [0, 1], got {p.fg_fraction:g}")
        self.num_fg = int(np.float32(self.batch_size) * np.float32(p.fg_fraction))
        for n, wins, what in ((self.batch_size - self.num_fg, self.bg, "background"),
                              (self.num_fg, self.fg, "foreground")):
            if n > 0 and not wins:
                raise DataError(f"{p.source}: a batch needs {n} {what} window(s) but the file has none "
                                f"(fg_threshold {p.fg_threshold}, bg_threshold {p.bg_threshold})")
        self._setup_mean(tp, channels)
        self._encoded = [self._read(k) for k in range(len(self.images))] if p.cache_images else None
        self.top_shapes = [(self.batch_size, channels, self.crop, self.crop), (self.batch_size,)]
        self.seed = int(torch.randint(0, 2 ** 62, ()).item())
        self._rng = None
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        self.rank, self.world = 0, 1   # [scale-out] data-parallel shard (see shard())
        self._served = self._local = 0

    def shard(self, rank, world):
        """[scale-out] local batch b is global batch b * world + rank of the sampling stream: the other
        ranks' batches are drawn (same random numbers) but not rendered."""
        self.rank, self.world = int(rank), int(world)

    def _draw(self):
        """One batch's (window, mirror) picks: background windows first, then foreground ones."""
        picks = []
        for n, wins in ((self.batch_size - self.num_fg, self.bg), (self.num_fg, self.fg)):
            for _ in range(n):
                win = wins[int(self._rng.integers(len(wins)))]
                picks.append((win, self.mirror and bool(self._rng.integers(2))))
        return picks

    def _setup_mean(self, tp, channels):
        self.mean_file = self.mean_values = None
        if tp.HasField("mean_file"):
            if len(tp.mean_value):
                raise self.error("transform_param: give mean_file or mean_value, not both")
            from recaffe.netspec.data.meanfile import read_mean
            mean = read_mean(tp.mean_file)
            mc, mh, mw = mean.shape
            self.mean_off = (mw - self.crop) // 2
            if mc != channels or mw < self.crop or mh < self.crop + self.mean_off:
                raise DataError(f"{tp.mean_file}: mean image of shape {tuple(mean.shape)} is too small for "
                                f"{channels} channels and crop_size {self.crop} (Caffe reads it at an offset of "
                                f"(width - crop_size) / 2 on both axes)")
            self.mean_file = np.asarray(mean, np.float32)
        elif len(tp.mean_value):
            if len(tp.mean_value) not in (1, channels):
                raise self.error(f"give 1 mean_value or {channels} (one per channel), got {len(tp.mean_value)}")
            values = list(tp.mean_value) * (channels if len(tp.mean_value) == 1 else 1)
            self.mean_values = np.asarray(values, np.float32)[:, None, None]

    def _read(self, k):
        """The encoded bytes of image ``k`` (Caffe's ReadFileToDatum), or a DataError naming it."""
        path, line = self.images[k]
        try:
            if os.path.exists(path):    # a regular file of a size that fits (not /dev/zero, a FIFO)
                limits.check_alloc(limits.check_file(path, "image", DataError), f"{path}: image", DataError)
            with open(path, "rb") as f:
                return f.read()
        except DataError as e:
            raise DataError(f"{self.source}:{line}: {e}") from None
        except OSError as e:
            raise DataError(f"{self.source}:{line}: cannot read image {path!r}: {e.strerror}") from None

    def _decode(self, k):
        """Image ``k`` as OpenCV's H x W x 3 BGR array (cv::imread(IMREAD_COLOR) on its bytes)."""
        path, line = self.images[k]
        if self._encoded is None and not os.path.isfile(path):
            raise DataError(f"{self.source}:{line}: image {path!r} not found (root_folder is prepended as is)")
        data = self._encoded[k] if self._encoded is not None else self._read(k)
        return decode_hwc(data, COLOR, where=f"{self.source}:{line}: image {path!r}")

    def render(self, window, img, mirror, out=None):
        """One window of a decoded H x W x 3 BGR image as a (3, crop, crop) float32 array (written into
        ``out``, a zeroed array of that shape, when given)."""
        _, _, x1, y1, x2, y2, line = window
        rows, cols = img.shape[:2]
        if self.context_pad == 0 and not self.square and not (0 <= x1 and 0 <= y1 and x2 < cols and y2 < rows):
            raise DataError(f"{self.source}:{line}: window ({x1}, {y1}, {x2}, {y2}) lies outside its "
                            f"{cols}x{rows} image")
        (x1, y1, x2, y2), (w, h), (pad_h, pad_w) = window_geometry(
            x1, y1, x2, y2, rows, cols, self.crop, self.context_pad, self.square, mirror)
        if w <= 0 or h <= 0 or x1 > x2 or y1 > y2:
            raise DataError(f"{self.source}:{line}: window leaves an empty region inside its {cols}x{rows} image")
        cv = cv2()
        patch = cv.resize(img[y1:y2 + 1, x1:x2 + 1], (w, h), interpolation=cv.INTER_LINEAR)
        if mirror:
            patch = patch[:, ::-1]
        pix = patch.transpose(2, 0, 1).astype(np.float32)
        if self.mean_file is not None:
            o = self.mean_off
            pix = pix - self.mean_file[:, o + pad_h:o + pad_h + h, o + pad_w:o + pad_w + w]
        elif self.mean_values is not None:
            pix = pix - self.mean_values
        out = np.zeros((3, self.crop, self.crop), np.float32) if out is None else out
        out[:, pad_h:pad_h + h, pad_w:pad_w + w] = pix * self.scale
        return out

    def forward(self):
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        while self._served < self._local * self.world + self.rank:   # other ranks' batches
            self._draw()
            self._served += 1
        self._served += 1
        self._local += 1
        data = np.zeros(self.top_shapes[0], np.float32)
        labels = np.zeros(self.batch_size, np.float32)
        decoded = {}
        for item, (win, mirror) in enumerate(self._draw()):
            if win[0] not in decoded:
                decoded[win[0]] = self._decode(win[0])
            self.render(win, decoded[win[0]], mirror, data[item])
            labels[item] = win[1]
        probe = self._device_probe
        return [torch.from_numpy(data).to(probe.device, probe.dtype),
                torch.from_numpy(labels).to(probe.device, probe.dtype)]
