"""SENet's Axpy layer (github.com/hujie-frank/SENet: src/caffe/layers/axpy_layer.cpp): the channel
rescaling and the residual sum of a squeeze-and-excitation block in one layer.

top = a * x + y, with a (N, C) or (N, C, 1, 1) (one scale per sample and channel), x and y of one
shape (N, C, ...). Backward through autograd: da = sum over the spatial positions of x * dtop,
dx = a * dtop, dy = dtop, as axpy_layer.cpp computes them.
"""
from .base import Layer
from .registry import register


@register("Axpy")
class Axpy(Layer):
    exact_bottoms = 3
    exact_tops = 1

    param_field = ""      # no message of its own

    def setup(self, p):
        a, x, y = self.bottom_shapes
        if len(x) < 2 or a[:2] != x[:2] or any(d != 1 for d in a[2:]):
            raise self.error(f"bottom 0 (the scale) must be (N, C) or (N, C, 1, 1) for bottom 1 {x}, got {a}")
        if x != y:
            raise self.error(f"bottoms 1 and 2 must have the same shape, got {x} and {y}")
        self.top_shapes = [x]

    def forward(self, a, x, y):
        a = a.reshape(a.shape[:2] + (1,) * (x.dim() - 2))
        return [a * x + y]
