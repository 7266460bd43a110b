"""Caffe's ``Python`` layer: user code with pycaffe's interface (include/caffe/layers/python_layer.hpp,
src/caffe/layer_factory.cpp ``GetPythonLayer``).

``python_param { module: "m" layer: "C" param_str: "..." }`` imports module ``m`` (from sys.path) and
builds ``m.C(layer_param)``; before ``setup(bottom, top)`` the instance gets ``param_str`` and
``phase`` (0 = TRAIN, 1 = TEST, as ``caffe.TRAIN``/``caffe.TEST``). Each forward pass calls
``reshape(bottom, top)`` then ``forward(bottom, top)``; back-propagation calls
``backward(top, propagate_down, bottom)``. ``bottom``/``top`` are lists of blobs with ``.data`` and
``.diff`` float32 numpy arrays, ``.reshape(*shape)``, ``.shape``, ``.count`` (and num/channels/
height/width); ``self.blobs.add_blob(*shape)`` in ``setup`` declares learnable blobs, which become this
layer's parameters (so ``lr_mult``, solvers and .caffemodel I/O see them) and whose ``.data`` views
the parameter's storage. Python layers run on CPU tensors.

A prototxt naming a Python layer runs arbitrary code, so it is refused unless the user opts in:
``RECAFFE_ALLOW_PYTHON_LAYERS=1`` in the environment, or ``allow_python_layers(True)``.
User classes should subclass :class:`PythonLayer` (what ``caffe.Layer`` is in recaffe's facade);
any class with the four methods works.
"""
import importlib
import inspect
import os

import numpy as np
import torch

from .base import Layer
from .registry import register

ENV_VAR = "RECAFFE_ALLOW_PYTHON_LAYERS"
_allowed = None  # None: decided by the environment variable


def allow_python_layers(flag=True):
    """Allow (True) or forbid (False) building Python layers in this process, overriding
    RECAFFE_ALLOW_PYTHON_LAYERS; None goes back to the environment variable."""
    global _allowed
    _allowed = bool(flag) if flag is not None else None


def python_layers_allowed():
    if _allowed is not None:
        return _allowed
    return os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


class Blob:
    """pycaffe's Blob as a Python layer sees it: ``data`` and ``diff`` numpy arrays of one shape."""

    def __init__(self, shape=(0,)):
        self.data = np.zeros(shape, np.float32)
        self.diff = np.zeros(shape, np.float32)

    def reshape(self, *shape):
        shape = tuple(int(d) for d in (shape[0] if len(shape) == 1 and not np.isscalar(shape[0]) else shape))
        if shape != self.data.shape:
            self.data = np.zeros(shape, np.float32)
            self.diff = np.zeros(shape, np.float32)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def count(self):
        return int(self.data.size)

    def _legacy(self, i):
        return self.shape[i] if i < len(self.shape) else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))


class _ParamBlob(Blob):
    """A learnable blob after setup: ``data`` views the layer's parameter, ``diff`` is the buffer
    the user's backward fills (handed to autograd as the parameter's gradient)."""

    def __init__(self, owner, index):
        self._owner, self._index = owner, index
        self.diff = np.zeros(tuple(owner.blobs[index].shape), np.float32)

    @property
    def data(self):
        return self._owner.blobs[self._index].detach().numpy()

    def reshape(self, *shape):
        raise self._owner.error("learnable blobs cannot be reshaped after setup")


class BlobVec(list):
    """pycaffe's ``layer.blobs``: a list of blobs with ``add_blob(*shape)``."""

    def add_blob(self, *shape):
        b = Blob()
        b.reshape(*shape)
        self.append(b)
        return b


class PythonLayer:
    """Base class of user Python layers (pycaffe's ``caffe.Layer``)."""

    def __init__(self, layer_param=None):
        self.layer_param = layer_param
        self.blobs = BlobVec()
        self.param_str = layer_param.python_param.param_str if layer_param is not None else ""
        self.phase = 1

    @property
    def type(self):
        return "Python"

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


def _instantiate(layer, cls, lp):
    if isinstance(cls, type) and issubclass(cls, PythonLayer):
        return cls(lp)
    try:
        takes_param = len(inspect.signature(cls).parameters) >= 1
    except (TypeError, ValueError):
        takes_param = True
    return cls(lp) if takes_param else cls()


def _call(layer, method, *args):
    try:
        return getattr(layer.py, method)(*args)
    except Exception as e:
        e.add_note(f"in {method}() of Python layer '{layer.name}' ({layer.where})")
        raise


class _PythonFunction(torch.autograd.Function):
    """Runs the user's reshape+forward, and the user's backward as the gradient."""

    @staticmethod
    def forward(ctx, layer, n_bottoms, *tensors):
        bottoms = tensors[:n_bottoms]
        bot = []
        for t in bottoms:
            b = Blob()
            b.data = t.detach().float().cpu().numpy().astype(np.float32, copy=True)
            b.diff = np.zeros_like(b.data)
            bot.append(b)
        top = [Blob(s) for s in layer.top_shapes_now]
        _call(layer, "reshape", bot, top)
        _call(layer, "forward", bot, top)
        layer.top_shapes_now = [t.shape for t in top]
        ctx.layer, ctx.n, ctx.bot, ctx.top = layer, n_bottoms, bot, top
        # [scale-out] tops on the bottoms' device and dtype (a source layer: the net's, via its probe)
        like = bottoms[0] if bottoms else layer._device_probe
        return tuple(torch.from_numpy(t.data.copy()).to(like.device, like.dtype) for t in top)

    @staticmethod
    def backward(ctx, *grads):
        layer, n = ctx.layer, ctx.n
        for t, g in zip(ctx.top, grads):
            t.diff = (np.zeros_like(t.data) if g is None else
                      g.detach().float().cpu().numpy().astype(np.float32).reshape(t.data.shape).copy())
        for b in ctx.bot:
            b.diff = np.zeros_like(b.data)
        params = layer.py_param_blobs
        for p in params:
            p.diff = np.zeros_like(p.diff)
        need = ctx.needs_input_grad[2:]
        _call(layer, "backward", ctx.top, [bool(x) for x in need[:n]], ctx.bot)
        dev = layer._device_probe.device   # [scale-out] diffs on the net's device
        out = [torch.from_numpy(np.array(b.diff, np.float32)).to(dev) if need[i] else None
               for i, b in enumerate(ctx.bot)]
        out += [torch.from_numpy(np.array(p.diff, np.float32)).to(dev) if need[n + i] else None
                for i, p in enumerate(params)]
        return (None, None) + tuple(out)


class _Ctx:
    needs_input_grad = ()


@register("Python")
class Python(Layer):
    """The user's Python layer (see the module docstring); refused unless opted in. Its forward
    reshapes its tops itself (the user's reshape runs before every forward)."""
    dynamic_shapes = True

    @classmethod
    def blob_count(cls, lp):
        return None   # declared by the user's setup()

    def setup(self, pp):
        lp = self.lp
        self.where = f"module '{pp.module}', class '{pp.layer}'"
        if not python_layers_allowed():
            raise self.error(f"refusing to run Python layer code ({self.where}): a Python layer executes "
                             f"arbitrary code; opt in with {ENV_VAR}=1 or "
                             "recaffe.netspec.net.layers.python.allow_python_layers(True)")
        if not pp.module or not pp.layer:
            raise self.error("python_param needs both 'module' and 'layer'")
        try:
            module = importlib.import_module(pp.module)
        except ImportError as e:
            raise self.error(f"cannot import python_param.module '{pp.module}' ({e}); it must be on "
                             "sys.path / PYTHONPATH") from None
        cls = getattr(module, pp.layer, None)
        if cls is None:
            raise self.error(f"module '{pp.module}' has no class '{pp.layer}'")
        self.py = _instantiate(self, cls, lp)
        self.py.param_str = pp.param_str
        self.py.phase = 0 if self.phase == "TRAIN" else 1
        if not isinstance(getattr(self.py, "blobs", None), list):
            self.py.blobs = BlobVec()
        bot = [Blob(s) for s in self.bottom_shapes]
        top = [Blob() for _ in lp.top]
        _call(self, "setup", bot, top)
        for i, b in enumerate(self.py.blobs):
            p = self.add_blob(b.shape)
            with torch.no_grad():
                p.copy_(torch.from_numpy(np.asarray(b.data, np.float32)))
        self.py.blobs = BlobVec(_ParamBlob(self, i) for i in range(len(self.blobs)))
        self.py_param_blobs = list(self.py.blobs)
        _call(self, "reshape", bot, top)
        self.top_shapes = [t.shape for t in top]
        self.top_shapes_now = list(self.top_shapes)
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)   # follows net.to()

    def forward(self, *bottoms):
        if not self.lp.top:  # a sink (e.g. a logger): nothing to differentiate
            with torch.no_grad():
                _PythonFunction.forward(_Ctx(), self, len(bottoms), *bottoms)
            return []
        return list(_PythonFunction.apply(self, len(bottoms), *bottoms, *self.blobs))
