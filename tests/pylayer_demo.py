"""Small Python layers in pycaffe's style for tests/test_layers_python.py (module: "pylayer_demo")."""
import json

import numpy as np

from recaffe.netspec.net.layers.python import PythonLayer


class ScaledIdentity(PythonLayer):
    """top = scale * bottom with scale from param_str (JSON); records what it was told."""

    def setup(self, bottom, top):
        self.scale = float(json.loads(self.param_str)["scale"])
        self.seen_phase = self.phase
        self.propagate_log = []

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.scale * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.propagate_log.append(list(propagate_down))
        if propagate_down[0]:
            bottom[0].diff[...] = self.scale * top[0].diff


class ChannelAffine(PythonLayer):
    """top[n, c] = w[c] * bottom[n, c] + b[c], with learnable w (init 1) and b (init 0.5)."""

    def setup(self, bottom, top):
        c = bottom[0].channels
        self.blobs.add_blob(c)
        self.blobs.add_blob(c)
        self.blobs[0].data[...] = 1.0
        self.blobs[1].data[...] = 0.5

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def _bcast(self, v, nd):
        return v.reshape((1, -1) + (1,) * (nd - 2))

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = self._bcast(self.blobs[0].data, x.ndim) * x + self._bcast(self.blobs[1].data, x.ndim)

    def backward(self, top, propagate_down, bottom):
        x, g = bottom[0].data, top[0].diff
        axes = tuple(i for i in range(x.ndim) if i != 1)
        self.blobs[0].diff[...] += (g * x).sum(axis=axes)
        self.blobs[1].diff[...] += g.sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = self._bcast(self.blobs[0].data, x.ndim) * g


class EuclideanLossLayer(PythonLayer):
    """Caffe's examples/pycaffe/layers/pyloss.py idea: sum((a - b)^2) / N / 2, scalar top."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("Need two inputs to compute distance.")

    def reshape(self, bottom, top):
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if not propagate_down[i]:
                continue
            sign = 1 if i == 0 else -1
            bottom[i].diff[...] = sign * self.diff * top[0].diff[0] / bottom[i].num


class NoInit:
    """Not derived from PythonLayer and without an __init__ taking the LayerParameter."""

    def setup(self, bottom, top):
        self.blobs = []

    def reshape(self, bottom, top):
        top[0].reshape(2, 3)

    def forward(self, bottom, top):
        top[0].data[...] = float(self.param_str)

    def backward(self, top, propagate_down, bottom):
        pass
