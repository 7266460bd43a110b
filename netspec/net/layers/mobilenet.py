"""Layers of the mobile-net forks: ConvolutionDepthwise (github.com/yonghenglh6/DepthwiseConvolution,
used by MobileNet, Xception and ShuffleNet ports: src/caffe/layers/conv_dw_layer.cpp) and
ShuffleChannel (ShuffleNet, github.com/farmingyard/ShuffleNet: shuffle_channel_layer.cpp).

Backward through autograd: depthwise convolution is a grouped convolution (its weight gradient is
what the fork accumulates), the channel shuffle a permutation.
"""
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from .base import Layer
from .registry import register
from .vision import Convolution


@register("ConvolutionDepthwise")
class ConvolutionDepthwise(Convolution):
    """One filter per input channel: a Convolution with group = num_output = C (conv_dw_layer.cpp
    sizes its weight (C, 1, kh, kw) and its top C channels from the bottom, whatever num_output and
    group say; a num_output or group other than C is an error here rather than ignored)."""

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        if not bottom_shapes:       # no bottom: the base's count check names the layer
            super().__init__(lp, bottom_shapes, phase)
        shape = tuple(bottom_shapes[0])
        p = lp.convolution_param
        axis = p.axis if p.axis >= 0 else p.axis + len(shape)
        where = f"layer '{lp.name}' ({lp.type})"
        if not 0 <= axis < len(shape):
            raise NetError(f"{where}: axis {p.axis} out of range for bottom {shape}")
        c = shape[axis]
        for name in ("num_output", "group"):
            if p.HasField(name) and getattr(p, name) != c:
                raise NetError(f"{where}: {name} {getattr(p, name)} must equal the bottom's {c} channels "
                               "(one filter per channel)")
        depthwise = caffe_pb2.LayerParameter()
        depthwise.CopyFrom(lp)
        depthwise.convolution_param.num_output = c
        depthwise.convolution_param.group = c
        super().__init__(depthwise, bottom_shapes, phase)


@register("ShuffleChannel")
class ShuffleChannel(Layer):
    """Channel shuffle (shuffle_channel_layer.cpp): channels viewed as (group, C/group), transposed:
    top channel j*group + i is bottom channel i*(C/group) + j."""
    exact_bottoms = 1
    exact_tops = 1

    fork_param = "shuffle_channel_param"

    def setup(self, p):
        shape = self.bottom_shapes[0]
        self.group = int(p.group)
        if len(shape) < 2 or self.group <= 0 or shape[1] % self.group:
            raise self.error(f"group {self.group} must be > 0 and divide the channels of bottom {shape}")
        self.top_shapes = [shape]

    def forward(self, x):
        n, c = x.shape[:2]
        return [x.reshape((n, self.group, c // self.group) + x.shape[2:]).transpose(1, 2).reshape(x.shape)]
