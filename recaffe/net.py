"""pycaffe's ``caffe.Net`` over a ``netspec.Net`` (python/caffe/pycaffe.py, python/caffe/_caffe.cpp).

    net = recaffe.Net('deploy.prototxt', 'weights.caffemodel', recaffe.TEST)     # old form
    net = recaffe.Net('deploy.prototxt', recaffe.TEST, weights='w.caffemodel')   # 1.0 form
    net.blobs['data'].data[...] = images
    probs = net.forward()['prob']

Blobs are live numpy views of torch tensors; their memory and the per-layer records of the last forward
are in recaffe._memory. As in Caffe, a forward sets up (reshapes) only the layers it runs, so after a
new input shape ``forward(end=L)`` works even when layers past L could not take it; ``backward`` is
Caffe's layer-by-layer BackwardFromTo from the diffs the blobs hold, hand-set ones included
(recaffe._backward). ``before_forward``/``after_forward``/``before_backward``/``after_backward`` take
callables called with each layer's index around its forward/backward, as pycaffe's do.
"""
import collections

import numpy as np
import torch

from recaffe.netspec.net.net import AUTO_TOP, Net as _TorchNet
from recaffe.netspec.net.params import raw_blob
from recaffe.protos.errors import NetError
from . import _backward, _batching
from ._memory import BlobMemory
from .blob import Blob, LayerView

TRAIN, TEST = 0, 1


def _phase_name(phase):
    if phase in (TRAIN, "TRAIN", "train"):
        return "TRAIN"
    if phase in (TEST, "TEST", "test"):
        return "TEST"
    raise NetError(f"phase must be caffe.TRAIN (0) or caffe.TEST (1), got {phase!r}")


def _parse_args(args, kwargs):
    """Net(file, phase, level=0, stages=None, weights=None) or the older Net(file, weights, phase)."""
    weights, phase = kwargs.pop("weights", None), kwargs.pop("phase", None)
    level, stages = kwargs.pop("level", 0), kwargs.pop("stages", None)
    if kwargs:
        raise TypeError(f"Net() got unexpected keyword argument(s) {', '.join(sorted(kwargs))}; valid: "
                        "phase, weights, level, stages")
    args = list(args)
    if args and (isinstance(args[0], (str, bytes)) or hasattr(args[0], "__fspath__")):
        weights = args.pop(0)               # Net(file, weights, phase)
        if len(args) > 1:
            raise TypeError("Net(network_file, weights, phase) takes no further positional arguments")
    if args:
        phase = args.pop(0)
    rest = dict(zip(("level", "stages", "weights"), args))    # Net(file, phase, level, stages, weights)
    level, stages, weights = rest.get("level", level), rest.get("stages", stages), rest.get("weights", weights)
    if len(args) > 3:
        raise TypeError("Net(network_file, phase, level=0, stages=None, weights=None): too many positional "
                        "arguments")
    if phase is None:
        raise TypeError("Net() needs a phase: caffe.TRAIN or caffe.TEST")
    return weights, _phase_name(phase), int(level), tuple(stages or ())


class Net(BlobMemory):
    """pycaffe's Net; ``net.torch_net`` is the underlying ``netspec.Net`` (an ``nn.Module``)."""

    def __init__(self, network_file, *args, **kwargs):
        weights, phase, level, stages = _parse_args(args, kwargs)
        if isinstance(weights, bytes):
            weights = weights.decode()
        self._attach(_TorchNet(network_file, phase=phase, stages=stages, level=level, weights=weights))

    @classmethod
    def _wrap(cls, torch_net):
        """A facade over an existing netspec.Net (the solver's nets)."""
        existing = getattr(torch_net, "_pycaffe_facade", None)
        if existing is not None:
            return existing
        self = cls.__new__(cls)
        self._attach(torch_net)
        return self

    def _attach(self, tnet):
        self.torch_net = tnet
        tnet._pycaffe_facade = self
        self._init_memory(tnet)
        self._callbacks = {k: [] for k in ("before_forward", "after_forward", "before_backward", "after_backward")}
        self._need = None
        names = [n for n in tnet.blob_names if n != AUTO_TOP]
        self.blobs = collections.OrderedDict((n, Blob(self, n)) for n in names)
        # a Python layer is handed out as the user's own object, as pycaffe does
        self.layers = [l.py if hasattr(l, "py") else LayerView(l) for l in tnet.layers]
        self._layer_names = list(tnet.layer_names)
        self.layer_dict = collections.OrderedDict(zip(self._layer_names, self.layers))
        self.top_names = collections.OrderedDict(
            (n, [t for t in s.tops if t != AUTO_TOP]) for n, s in zip(self._layer_names, tnet.steps))
        self.bottom_names = collections.OrderedDict(
            (n, list(s.bottoms)) for n, s in zip(self._layer_names, tnet.steps))
        self.blob_loss_weights = collections.OrderedDict((n, float(tnet.blob_loss_weights.get(n, 0.0))) for n in names)
        for n, w in self.blob_loss_weights.items():   # Caffe: a loss top's diff holds its loss weight
            if w:
                self._diffs[n] = torch.full(tnet.blob_shapes[n], w)

    # -- pycaffe attributes ------------------------------------------------------------------------
    @property
    def inputs(self):
        return list(self.torch_net.inputs)

    @property
    def outputs(self):
        return [o for o in self.torch_net.outputs if o != AUTO_TOP]

    @property
    def params(self):
        return collections.OrderedDict((n, l.blobs) for n, l in zip(self._layer_names, self.layers) if len(l.blobs))

    @property
    def phase(self):
        return TRAIN if self.torch_net.phase == "TRAIN" else TEST

    # -- callbacks (pycaffe's before_forward ... after_backward) -----------------------------------
    def before_forward(self, callback):
        """Call ``callback(i)`` before layer i's forward, in every forward of this net."""
        self._callbacks["before_forward"].append(callback)

    def after_forward(self, callback):
        self._callbacks["after_forward"].append(callback)

    def before_backward(self, callback):
        self._callbacks["before_backward"].append(callback)

    def after_backward(self, callback):
        self._callbacks["after_backward"].append(callback)

    # -- running -----------------------------------------------------------------------------------
    def _layer_index(self, name):
        try:
            return self._layer_names.index(name)
        except ValueError:
            raise NetError(f"net '{self.torch_net.name}': no layer named '{name}'") from None

    def _feed(self, kwargs, what="Input blob"):
        if set(kwargs) != set(self.inputs):
            raise NetError(f"{what} arguments ({', '.join(sorted(kwargs))}) do not match the net inputs "
                           f"({', '.join(self.inputs) or 'none'})")
        for name, value in kwargs.items():
            arr = np.asarray(value, dtype=np.float32)
            if arr.shape != tuple(self._inputs[name].shape):
                self._reshape_blob(name, arr.shape)
            self._inputs[name].numpy()[...] = arr

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Run layers start..end (inclusive) and return {blob: data array} for the net outputs (or the
        tops of ``end``) plus ``blobs``; keyword arguments are copied into the input blobs first. Only
        the layers run are set up for new shapes (Net::ForwardFromTo)."""
        if kwargs:
            self._feed(kwargs)
        tnet = self.torch_net
        i0 = self._layer_index(start) if start is not None else 0
        i1 = self._layer_index(end) if end is not None else len(self._layer_names) - 1
        self._shape_layers(i0, i1)
        if start is not None:
            for name in tnet.blob_names:
                if name != AUTO_TOP and name not in tnet.blobs:
                    self._blob_tensor(name)
            self._push_handed()
        self._mark_run(i0, i1)
        with torch.enable_grad():
            if any(self._callbacks[k] for k in ("before_forward", "after_forward")):
                self._forward_layer_by_layer(i0, i1)
            else:
                tnet.forward(start=start, end=end, **self._inputs)
        self._sync_handed()
        for name, t in tnet.input_blobs.items():
            self._diff_src[name] = t
        for name in self._inputs:
            self._diff_src.setdefault(name, self._inputs[name])
        wanted = list(self.top_names[self._layer_names[i1]]) if end is not None else list(self.outputs)
        return {n: self.blobs[n].data for n in collections.OrderedDict.fromkeys(wanted + list(blobs or []))}

    def _forward_layer_by_layer(self, i0, i1):
        """ForwardFromTo with callbacks: one layer per torch forward, callbacks around each."""
        tnet, names = self.torch_net, self._layer_names
        for k in range(i0, i1 + 1):
            for fn in self._callbacks["before_forward"]:
                fn(k)
            if k == 0:
                tnet.forward(end=names[0], **self._inputs)
            else:
                tnet.forward(start=names[k], end=names[k])
            for fn in self._callbacks["after_forward"]:
                fn(k)

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Caffe's BackwardFromTo from layer ``start`` (default: the last) down to ``end`` (default: the
        first), from the diffs the top blobs hold (a loss top's diff is its loss weight; a diff set by
        hand is used as set); keyword arguments set the diffs of the net outputs first. Bottom diffs are
        overwritten, parameter diffs accumulate until cleared (a solver step, clear_param_diffs).
        Returns {blob: diff array} for the inputs (or the bottoms of ``end``) plus ``diffs``."""
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise NetError(f"top diff arguments ({', '.join(sorted(kwargs))}) do not match the net "
                               f"outputs ({', '.join(self.outputs)})")
            for name, value in kwargs.items():
                d = self.blobs[name].diff
                d[...] = np.asarray(value, dtype=np.float32)
        i_start = self._layer_index(start) if start is not None else len(self.layers) - 1
        i_end = self._layer_index(end) if end is not None else 0
        _backward.run(self, i_start, i_end)
        wanted = list(self.bottom_names[self._layer_names[i_end]]) if end is not None else list(self.inputs)
        return {n: self.blobs[n].diff for n in collections.OrderedDict.fromkeys(wanted + list(diffs or []))}

    def _need_backward(self):
        if self._need is None:
            self._need = _backward.need_backward(self.torch_net)
        return self._need

    def clear_param_diffs(self):
        """Zero every parameter diff in place (Net::ClearParamDiffs), so held diff arrays read 0."""
        for layer in self.torch_net.layers:
            for i in range(len(layer.blobs)):
                p = raw_blob(layer, i)
                if p.grad is not None:
                    p.grad.zero_()

    def forward_all(self, blobs=None, **kwargs):
        return _batching.forward_all(self, blobs, **kwargs)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        return _batching.forward_backward_all(self, blobs, diffs, **kwargs)

    def _batch(self, blobs):
        return _batching.batches(self, blobs)

    def reshape(self):
        """Net::Reshape: every layer is set up for the current input shapes and every blob takes its new
        shape; nothing is computed, and as Caffe's SyncedMemory the memory of a blob whose shape changed
        is allocated (zeros) when it is next read or written. A layer that cannot take the new shapes
        raises, as Caffe's CHECKs do."""
        tnet = self.torch_net
        self._shaped_for = None
        self._shape_layers(0, len(self._layer_names) - 1)
        for name in tnet.blob_names:
            t = tnet.blobs.get(name)
            if t is not None and name not in self._inputs and tuple(t.shape) != tuple(tnet.blob_shapes[name]):
                del tnet.blobs[name]

    def set_input_arrays(self, data, labels):
        """Feed a MemoryData layer (the net's first layer) with N x C x H x W data and N labels."""
        first = self.torch_net.layers[0] if len(self.torch_net.layers) else None
        if first is None or first.type != "MemoryData":
            raise NetError(f"net '{self.torch_net.name}': set_input_arrays needs a MemoryData layer as the first "
                           f"layer, the first is {first.type if first is not None else 'none'}")
        first.set_input_arrays(data, np.asarray(labels).reshape(len(labels)))

    # -- weights -----------------------------------------------------------------------------------
    def copy_from(self, path):
        """Load weights by layer name from a .caffemodel, .caffemodel.h5 or .pth file."""
        self.torch_net.load_weights(path)

    def save(self, path):
        """Write the weights: .pth/.pt as a torch dict, anything else (even .h5, as pycaffe's Net.save)
        as a binary .caffemodel; save_hdf5 writes HDF5."""
        low = str(path).lower()
        self.torch_net.save_weights(path, "pth" if low.endswith((".pth", ".pt")) else "caffemodel")

    def save_hdf5(self, path):
        """pycaffe's save_hdf5 (Net::ToHDF5 without diffs): Caffe's HDF5 layout whatever the file name."""
        from recaffe.netspec.weights import h5 as weights_h5
        weights_h5.save(self.torch_net, path)

    def load_hdf5(self, path):
        """pycaffe's load_hdf5 (Net::CopyTrainedLayersFromHDF5): read an HDF5 model whatever its name."""
        from recaffe.netspec.weights import h5 as weights_h5
        weights_h5.load(self.torch_net, path)

    def share_with(self, other):
        """Use ``other``'s parameter blobs for the layers both nets have (ShareTrainedLayersWith)."""
        self.torch_net.share_with(other.torch_net if isinstance(other, Net) else other)

    def __repr__(self):
        t = self.torch_net
        return f"<recaffe.Net {t.name!r} {t.phase}: inputs={self.inputs} outputs={self.outputs}>"
