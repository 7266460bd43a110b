"""Input and DummyData layers (src/caffe/layers/input_layer.cpp, dummy_data_layer.cpp).

``Input`` declares the shapes of blobs the caller feeds; the Net passes the fed tensors in and the
layer hands them on (``feeds_inputs``). ``DummyData`` produces its tops itself: constant fillers are
applied once at setup, other fillers refill the top on every forward, as Caffe does.
"""
import torch

from recaffe.netspec.net.fillers import fill
from recaffe.protos import caffe_pb2
from .base import Layer
from .registry import register


def _shape_list(layer, n_shape, n_top, what):
    if n_shape not in (0, 1, n_top):
        raise layer.error(f"{what}: give 0, 1 or one per top ({n_top}) shape(s), got {n_shape}")


@register("Input")
class Input(Layer):
    exact_bottoms = 0
    min_tops = 1
    is_data = True
    feeds_inputs = True

    def setup(self, p):
        shapes = p.shape
        n_top = len(self.lp.top)
        _shape_list(self, len(shapes), n_top, "input_param")
        self.top_shapes = [tuple(int(d) for d in shapes[i if len(shapes) > 1 else 0].dim) if shapes else ()
                           for i in range(n_top)]
        for s in self.top_shapes:
            if any(d < 0 for d in s):
                raise self.error(f"negative dimension in input shape {s}")

    def forward(self, *fed):
        return list(fed)


@register("DummyData")
class DummyData(Layer):
    exact_bottoms = 0
    min_tops = 1
    is_data = True

    def setup(self, p):
        n_top = len(self.lp.top)
        n_fill = len(p.data_filler)
        if n_fill not in (0, 1, n_top):
            raise self.error(f"give 0, 1 or one data_filler per top ({n_top}), got {n_fill}")
        _shape_list(self, len(p.shape), n_top, "dummy_data_param.shape")
        legacy = (p.num, p.channels, p.height, p.width)
        for field, vals in zip(("num", "channels", "height", "width"), legacy):
            if len(vals) not in (0, 1, n_top):
                raise self.error(f"give 0, 1 or one '{field}' per top ({n_top}), got {len(vals)}")
        if any(len(v) for v in legacy):
            if len(p.shape):
                raise self.error("both shape and legacy num/channels/height/width were given; use one")
            pick = lambda v, i: int(v[i if len(v) > 1 else 0]) if len(v) else 0  # noqa: E731
            self.top_shapes = [tuple(pick(v, i) for v in legacy) for i in range(n_top)]
        else:
            self.top_shapes = [tuple(int(d) for d in p.shape[i if len(p.shape) > 1 else 0].dim)
                               if len(p.shape) else () for i in range(n_top)]
        self.fillers = list(p.data_filler) if n_fill else [caffe_pb2.FillerParameter()]
        self.refill = [f.type != "constant" for f in self.fillers]
        for i, shape in enumerate(self.top_shapes):   # constant tops: filled once (non-persistent buffers)
            k = i if len(self.fillers) > 1 else 0
            fixed = None if self.refill[k] else fill(torch.empty(shape), self.fillers[k])
            self.register_buffer(f"fixed_{i}", fixed, persistent=False)
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)   # follows net.to()

    def forward(self):
        tops = []
        for i, shape in enumerate(self.top_shapes):
            k = i if len(self.fillers) > 1 else 0
            if self.refill[k]:
                probe = self._device_probe   # [scale-out] refilled on the net's device and dtype
                tops.append(fill(torch.empty(shape), self.fillers[k]).to(probe.device, probe.dtype))
            else:
                tops.append(getattr(self, f"fixed_{i}"))
        return tops
