"""pycaffe's ``caffe.coord_map`` (python/caffe/coord_map.py): how coordinates of one NetSpec top map to
another's, and ``crop(top_from, top_to)``, the Crop layer FCN's net definitions use to align an upsampled
score map with the input.

A map is a triple ``(axis, scale, shift)``: output coordinate ``x * scale + shift`` corresponds to input
coordinate ``x`` along the spatial axes from ``axis`` on (``axis`` None: any axis, as for pointwise
layers). ``scale``/``shift`` are numpy arrays with one entry per spatial axis (or scalars for the
identity), as pycaffe computes them, so ``crop`` writes the same Crop layer pycaffe writes.

Per layer type (coord_map in pycaffe):
  * Convolution, Pooling, Im2col: scale 1/stride, shift (pad - (k_eff - 1)/2) / stride, where
    k_eff = (kernel_size - 1) * dilation + 1 (the dilated kernel extent);
  * Deconvolution: scale stride, shift (k_eff - 1)/2 - pad;
  * pointwise layers (PASS_THROUGH_LAYERS): the identity;
  * Crop: axis crop_param.axis - 1, scale 1, shift -offset;
  * anything else has no map (UndefinedMapException), which stops the graph walk there.
"""
import numpy as np

from recaffe.netspec.spec import layers as L

__all__ = ["PASS_THROUGH_LAYERS", "UndefinedMapException", "AxisMismatchException", "conv_params",
           "crop_params", "coord_map", "compose", "inverse", "coord_map_from_to", "crop"]

#: layers that keep every coordinate where it is (pycaffe's list)
PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
                       "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold"]

_IDENTITY = (None, 1, 0)


class UndefinedMapException(Exception):
    """The layer type has no coordinate mapping (e.g. InnerProduct, Concat)."""


class AxisMismatchException(Exception):
    """Two maps act on different spatial axes and cannot be composed."""


class _NoKernelSize(KeyError):
    """A KeyError (what pycaffe raises) with a readable one-line message."""

    def __str__(self):
        return str(self.args[0])


def _vector(value):
    return np.array(value, ndmin=1)


def conv_params(fn):
    """(axis, stride, effective kernel extent, pad) of a Convolution/Deconvolution/Im2col/Pooling
    Function; Pooling keeps them in its own fields, the others in convolution_param. The legacy
    kernel_h/_w, stride_h/_w, pad_h/_w spellings are refused, as pycaffe refuses them."""
    params = fn.params.get("convolution_param", fn.params)
    if "kernel_size" not in params:
        raise _NoKernelSize(f"coord_map: L.{fn.type_name} has no kernel_size (cropping needs kernel_size, "
                            "stride, pad; the legacy kernel_h/kernel_w are not supported)")
    legacy = sorted({"kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w"} & set(fn.params))
    if legacy:
        raise AssertionError(f"coord_map: L.{fn.type_name}: cropping does not support the legacy _h/_w params "
                             f"({', '.join(legacy)}); use kernel_size/stride/pad")
    kernel = _vector(params["kernel_size"])
    extent = (kernel - 1) * _vector(params.get("dilation", 1)) + 1
    return params.get("axis", 1), _vector(params.get("stride", 1)), extent, _vector(params.get("pad", 0))


def crop_params(fn):
    """(axis, offset) of a Crop Function, with Caffe's defaults (axis 2, offset 0)."""
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), _vector(params.get("offset", 0))


def coord_map(fn):
    """The (axis, scale, shift) map from the bottom of Function ``fn`` to its top."""
    kind = fn.type_name
    if kind in ("Convolution", "Pooling", "Im2col"):
        axis, stride, extent, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if kind == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if kind in PASS_THROUGH_LAYERS:
        return _IDENTITY
    if kind == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset          # axis - 1: the last axis that is not cropped
    raise UndefinedMapException(f"layer type '{kind}' has no coordinate mapping")


def compose(base_map, next_map):
    """``next_map`` applied after ``base_map``: scales multiply, the further shift is scaled by the base
    scale. The axes must agree unless one of them is None (pointwise)."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is not None and ax2 is not None and ax1 != ax2:
        raise AxisMismatchException(f"coord_map: cannot compose maps on axis {ax1} and axis {ax2}")
    axis = ax2 if ax1 is None else ax1
    return axis, a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    """The map back: scale 1/a, shift -b/a."""
    axis, a, b = coord_map
    return axis, 1 / a, -b / a


def _mapped_bottoms(top):
    """The bottoms a walk goes through: all of them, except Crop's second (reference) bottom."""
    inputs = top.fn.inputs
    return inputs[:1] if top.fn.type_name == "Crop" else inputs


def _maps_down_from(top):
    """{ancestor: composed map}: every ancestor of ``top`` reachable through layers that have a map,
    with the map composed along the path it was reached by (``top`` itself: the identity)."""
    maps, frontier = {top: _IDENTITY}, [top]
    while frontier:
        cur = frontier.pop()
        try:
            step = coord_map(cur.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(cur):
            maps[bottom] = compose(maps[cur], step)
            frontier.append(bottom)
    return maps


def coord_map_from_to(top_from, top_to):
    """The map from coordinates of ``top_from`` to those of ``top_to``: walk back from both tops to a
    common ancestor, composing the maps on the way, then invert the ``from`` side."""
    from_maps = _maps_down_from(top_from)
    to_maps, frontier = {top_to: _IDENTITY}, [top_to]
    while frontier:
        cur = frontier.pop()
        if cur in from_maps:
            return compose(to_maps[cur], inverse(from_maps[cur]))
        try:
            step = coord_map(cur.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(cur):
            to_maps[bottom] = compose(to_maps[cur], step)
            frontier.append(bottom)
    raise RuntimeError("coord_map: could not compute a map between the tops; are they connected by spatial "
                       "layers (Convolution, Pooling, Deconvolution, Crop, pointwise layers)?")


def crop(top_from, top_to):
    """An ``L.Crop(top_from, top_to)`` whose axis and offsets align ``top_from`` with ``top_to``
    (FCN's score crop). The map between them must have scale 1 and a non-positive integer shift."""
    axis, a, b = coord_map_from_to(top_from, top_to)
    if not np.all(np.asarray(a) == 1):
        raise AssertionError(f"coord_map.crop: scale mismatch on crop (a = {a}); the tops must have the same "
                             "resolution")
    if not np.all(np.asarray(b) <= 0):
        raise AssertionError(f"coord_map.crop: cannot crop negative offset (b = {b})")
    if not np.all(np.round(b) == b):
        raise AssertionError(f"coord_map.crop: cannot crop noninteger offset (b = {b})")
    offset = [int(v) for v in -np.round(_vector(b)).astype(int)]
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis + 1, offset=offset))
