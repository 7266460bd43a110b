"""pycaffe's ``Blob`` as seen through ``net.blobs`` / ``net.params`` (python/caffe/_caffe.cpp: the Blob
class exposes ``data``, ``diff``, ``shape``, ``count``, ``num``/``channels``/``height``/``width`` and
``reshape``).

A blob here is a *view*: it does not own memory but asks its owner (the facade Net) for the tensor that
currently holds the blob, and hands out ``tensor.numpy()``, which shares memory with it. So
``net.blobs['data'].data[...] = x`` writes into the tensor the next forward reads, and
``net.params['conv1'][0].data[...] = w`` changes the layer's ``nn.Parameter`` in place.
"""
import numpy as np
import torch

from recaffe.netspec.net.params import raw_blob
from recaffe.protos import limits
from recaffe.protos.errors import NetError


def _as_shape(args):
    """reshape(2, 3), reshape((2, 3)) and reshape([2, 3]) all mean shape (2, 3), as in pycaffe."""
    if len(args) == 1 and not np.isscalar(args[0]):
        args = tuple(args[0])
    shape = tuple(int(d) for d in args)
    if any(d < 0 for d in shape):
        raise ValueError(f"blob shape must not have negative dimensions, got {shape}")
    limits.check_blob(shape, "Blob.reshape", NetError)     # Blob::Reshape's limits, before zeros are made
    return shape


class _BlobBase:
    """Shape accessors shared by data and parameter blobs; subclasses define ``_tensor`` and ``_grad``."""

    def _tensor(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _grad(self):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def data(self):
        return self._tensor().detach().numpy()

    @property
    def diff(self):
        return self._grad().numpy()

    @property
    def shape(self):
        return tuple(self._tensor().shape)

    @property
    def count(self):
        return int(self._tensor().numel())

    def _legacy(self, axis):
        """Caffe's Blob::LegacyShape: axes beyond the blob's count as 1; more than 4 axes is an error."""
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"num/channels/height/width need a blob of at most 4 axes, shape is {shape}")
        padded = shape + (1,) * (4 - len(shape))
        return padded[axis]

    @property
    def num(self):
        return self._legacy(0)

    @property
    def channels(self):
        return self._legacy(1)

    @property
    def height(self):
        return self._legacy(2)

    @property
    def width(self):
        return self._legacy(3)

    def __repr__(self):
        return f"<{type(self).__name__} shape={self.shape}>"


class Blob(_BlobBase):
    """A net blob (``net.blobs[name]``): data is the tensor the net holds under ``name``, diff the
    gradient of the last backward (zeros when none was computed)."""

    def __init__(self, owner, name):
        self._owner, self.name = owner, name

    def _tensor(self):
        return self._owner._blob_tensor(self.name)

    def _grad(self):
        return self._owner._blob_diff(self.name)

    def reshape(self, *shape):
        """Give the blob a new shape (zero-filled); call ``net.reshape()`` or ``net.forward()`` to
        propagate it, as in Caffe."""
        self._owner._reshape_blob(self.name, _as_shape(shape))


class ParamBlob(_BlobBase):
    """A learnable blob (``net.params[layer][i]``): data is the layer's ``nn.Parameter`` itself, diff its
    ``.grad`` (created as zeros on first access, so writing into it is seen by a solver update)."""

    def __init__(self, layer, index):
        self._layer, self._index = layer, index

    def _tensor(self):
        return self._layer.blobs[self._index]

    def _grad(self):
        p = raw_blob(self._layer, self._index)   # the owner's parameter for a PERMISSIVE sharer's view
        if p.grad is None or tuple(p.grad.shape) != tuple(p.shape):
            p.grad = torch.zeros_like(p.detach())
        seen = self._tensor()
        return p.grad if seen is p else p.grad.view(seen.shape)

    def reshape(self, *shape):
        shape = _as_shape(shape)
        p = self._tensor()
        if shape != tuple(p.shape):
            with torch.no_grad():
                p.data = torch.zeros(shape, dtype=p.dtype)
            p.grad = None


class LayerView:
    """An element of ``net.layers``: the layer's ``type`` and its parameter ``blobs`` (pycaffe's Layer
    object as a Net hands it out)."""

    def __init__(self, layer):
        self._layer = layer
        self.type = layer.type
        self.name = layer.name
        self.blobs = [ParamBlob(layer, i) for i in range(len(layer.blobs))]

    def __repr__(self):
        return f"<Layer {self.name!r} ({self.type}), {len(self.blobs)} blob(s)>"
