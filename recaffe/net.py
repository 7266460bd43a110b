"""pycaffe's ``caffe.Net`` over a ``netspec.Net`` (python/caffe/pycaffe.py, python/caffe/_caffe.cpp).

    net = recaffe.Net('deploy.prototxt', 'weights.caffemodel', recaffe.TEST)     # old form
    net = recaffe.Net('deploy.prototxt', recaffe.TEST, weights='w.caffemodel')   # 1.0 form
    net.blobs['data'].data[...] = images
    probs = net.forward()['prob']

Blobs are live numpy views of torch tensors (see recaffe.blob): the facade keeps one persistent tensor
per Input top (what ``net.blobs[<input>].data`` writes into and every forward reads); any other blob is
handed out as the net's own tensor the first time and later forwards copy their values into that same
tensor (a hook on the torch net, so solver steps count too), so arrays held across forwards stay live
and values written into them feed a ``forward(start=...)``. Forward hooks on the layers record the
tensor each blob's diff comes from: for an in-place chain (conv1 -> relu1 -> conv1) the diff is the
gradient at the first tensor of the chain, as Caffe's shared diff memory ends up holding after
backward; implicit Split tops are made distinct views so each branch has its own diff.
"""
import collections

import numpy as np
import torch

from recaffe.netspec.net.net import AUTO_TOP, Net as _TorchNet, _ImplicitSplit
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from . import _batching
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


class Net:
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

    def _attach(self, tnet, inputs=None):
        self.torch_net = tnet
        tnet._pycaffe_facade = self
        self._inputs = inputs or {n: torch.zeros(tnet.blob_shapes[n]) for n in tnet.inputs}
        self._built_shapes = {n: tuple(tnet.blob_shapes[n]) for n in tnet.inputs}
        self._diff_src, self._diffs, self._layer_out = {}, {}, {}
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
        self._handed = {}
        for i, layer in enumerate(tnet.layers):
            layer.register_forward_hook(self._make_hook(i))
        tnet.register_forward_hook(self._sync_handed)

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

    # -- tensors behind the blob views -------------------------------------------------------------
    def _blob_tensor(self, name):
        """The tensor behind ``net.blobs[name].data``. The first time a blob is handed out this is the
        net's own tensor; later forwards bring their new values into that same tensor (_sync_handed), so
        an array held across forwards stays live, as Caffe's blob memory does."""
        if name in self._inputs:
            return self._inputs[name]
        blobs = self.torch_net.blobs
        if name not in blobs:
            if name not in self.torch_net.blob_shapes:
                raise KeyError(name)
            blobs[name] = torch.zeros(self.torch_net.blob_shapes[name])
        held = self._handed.get(name)
        current = blobs[name]
        if held is None or tuple(held.shape) != tuple(current.shape):
            held = self._handed[name] = current.detach()
        return held

    def _sync_handed(self, module=None, args=None, output=None):
        """After every forward of the torch net (ours or a solver's): refresh the handed-out arrays."""
        blobs = self.torch_net.blobs
        with torch.no_grad():
            for name, held in self._handed.items():
                t = blobs.get(name)
                if t is None or held.data_ptr() == t.data_ptr():
                    continue
                if tuple(held.shape) == tuple(t.shape):
                    held.copy_(t.detach())
                else:
                    self._handed[name] = t.detach()

    def _push_handed(self):
        """Before a partial forward: values written into handed-out arrays go into the net's tensors
        (through .data, so the autograd graph is kept and backward sees them, as in Caffe)."""
        blobs = self.torch_net.blobs
        for name, held in self._handed.items():
            t = blobs.get(name)
            if t is not None and held.data_ptr() != t.data_ptr() and tuple(held.shape) == tuple(t.shape):
                t.data.copy_(held)

    def _blob_diff(self, name):
        """The tensor behind ``net.blobs[name].diff``: one persistent tensor per blob, refreshed from the
        gradient of the last backward (ours or a solver's)."""
        shape = tuple(self._blob_tensor(name).shape)
        d = self._diffs.get(name)
        if d is None or tuple(d.shape) != shape:
            d = self._diffs[name] = torch.zeros(shape)
        src = self._diff_src.get(name)
        if src is not None and src.grad is not None and tuple(src.grad.shape) == shape:
            d.copy_(src.grad)
            src.grad = None
        return d

    def _reshape_blob(self, name, shape):
        tnet = self.torch_net
        if name in self._inputs:
            if tuple(self._inputs[name].shape) != shape:
                self._inputs[name] = torch.zeros(shape)
        else:
            tnet.blobs[name] = torch.zeros(shape)
            tnet.blob_shapes[name] = shape

    def _sync_input_shapes(self):
        """Layers are built for fixed bottom shapes; when an input blob was given a new shape, rebuild the
        torch net for it (Input shapes changed), keeping the very same parameter tensors (Net::Reshape)."""
        changed = {n: tuple(t.shape) for n, t in self._inputs.items() if tuple(t.shape) != self._built_shapes[n]}
        if not changed:
            return
        old = self.torch_net
        param = caffe_pb2.NetParameter()
        param.CopyFrom(old.net_param)
        for lp in param.layer:
            if lp.type != "Input" or not any(t in changed for t in lp.top):
                continue
            shapes = [list(lp.input_param.shape[i if len(lp.input_param.shape) > 1 else 0].dim)
                      for i in range(len(lp.top))]
            del lp.input_param.shape[:]
            for t, dims in zip(lp.top, shapes):
                lp.input_param.shape.add().dim.extend(changed.get(t, dims))
        new = _TorchNet(param, phase=old.phase, stages=tuple(old.state.stage), level=old.state.level)
        new.share_with(old)
        new.train(old.training)
        self._attach(new, self._inputs)

    def _make_hook(self, i):
        step = self.torch_net.steps[i]

        def hook(module, args, output):
            out = list(output)
            if isinstance(module, _ImplicitSplit):   # one autograd node per branch: per-branch diffs
                out = [o.view_as(o) for o in out]
            for j, top in enumerate(step.tops):
                if top == AUTO_TOP or j >= len(out):
                    continue
                if not (j < len(step.bottoms) and step.bottoms[j] == top):
                    self._diff_src[top] = out[j]
                if out[j].requires_grad and not out[j].is_leaf:
                    out[j].retain_grad()
            self._layer_out[i] = out
            return out
        return hook

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
        tops of ``end``) plus ``blobs``; keyword arguments are copied into the input blobs first."""
        if kwargs:
            self._feed(kwargs)
        self._sync_input_shapes()
        tnet = self.torch_net
        if start is not None:
            self._layer_index(start)
            for name in tnet.blob_names:
                if name != AUTO_TOP and name not in tnet.blobs:
                    self._blob_tensor(name)
            self._push_handed()
        if end is not None:
            wanted = list(self.top_names[self._layer_names[self._layer_index(end)]])
        else:
            wanted = list(self.outputs)
        with torch.enable_grad():
            tnet.forward(start=start, end=end, **self._inputs)
        self._sync_handed()
        for name, t in tnet.input_blobs.items():
            self._diff_src[name] = t
        for name in self._inputs:
            self._diff_src.setdefault(name, self._inputs[name])
        return {n: self.blobs[n].data for n in collections.OrderedDict.fromkeys(wanted + list(blobs or []))}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Back-propagate from layer ``start`` (default: the last) down to ``end`` (default: the first),
        starting from the current top diffs (loss tops hold their loss weight); keyword arguments set
        the diffs of the net outputs first. Returns {blob: diff array} for the inputs (or the bottoms of
        ``end``) plus ``diffs``. Parameter diffs accumulate, as in Caffe, until a solver clears them."""
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise NetError(f"top diff arguments ({', '.join(sorted(kwargs))}) do not match the net "
                               f"outputs ({', '.join(self.outputs)})")
            for name, value in kwargs.items():
                d = self.blobs[name].diff
                d[...] = np.asarray(value, dtype=np.float32)
        i_start = self._layer_index(start) if start is not None else len(self.layers) - 1
        i_end = self._layer_index(end) if end is not None else 0
        roots, grads = self._roots(i_start, start is not None)
        partial = start is not None or end is not None
        only = self._range_inputs(i_end, i_start) if partial else None
        if roots and (only or not partial):
            torch.autograd.backward(roots, grads, retain_graph=True, inputs=only)
        self._collect_diffs()
        wanted = list(self.bottom_names[self._layer_names[i_end]]) if end is not None else list(self.inputs)
        return {n: self.blobs[n].diff for n in collections.OrderedDict.fromkeys(wanted + list(diffs or []))}

    def _roots(self, i_start, from_layer):
        tnet = self.torch_net
        if from_layer:
            step = tnet.steps[i_start]
            pairs = [(self._layer_out.get(i_start, [None] * len(step.tops))[j], t) for j, t in enumerate(step.tops)
                     if t != AUTO_TOP]
        else:
            names = list(self.outputs) + [n for n, w in self.blob_loss_weights.items() if w and n not in self.outputs]
            pairs = [(tnet.blobs.get(n), n) for n in names]
        roots, grads = [], []
        for t, name in pairs:
            if t is None or not t.requires_grad:
                continue
            roots.append(t)
            grads.append(self._blob_diff(name).reshape(t.shape).clone())
        return roots, grads

    def _range_inputs(self, i_end, i_start):
        """Tensors whose gradients a partial backward (layers i_end..i_start) computes."""
        out, seen = [], set()
        tnet = self.torch_net
        for i in range(i_end, i_start + 1):
            for p in tnet.layers[i].blobs:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
            for name in tnet.steps[i].bottoms:
                t = self._diff_src.get(name)
                if t is not None and t.requires_grad and id(t) not in seen:
                    seen.add(id(t))
                    out.append(t)
        return out

    def _collect_diffs(self):
        for name, t in list(self._diff_src.items()):
            if t.grad is not None:
                self._blob_diff(name)   # copies the gradient into the blob's diff and clears it, so the
                                        # next backward over the same forward starts from zero, as Caffe's

    def forward_all(self, blobs=None, **kwargs):
        return _batching.forward_all(self, blobs, **kwargs)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        return _batching.forward_backward_all(self, blobs, diffs, **kwargs)

    def _batch(self, blobs):
        return _batching.batches(self, blobs)

    def reshape(self):
        """Propagate the input shapes through the net (Net::Reshape): afterwards every blob has its new
        shape. Runs the layers after the data layers once without autograd (data is not consumed)."""
        self._sync_input_shapes()
        tnet = self.torch_net
        first = next((i for i, s in enumerate(tnet.steps) if not getattr(s.layer, "is_data", False)), None)
        if first is None:
            return
        for name in tnet.blob_names:
            if name != AUTO_TOP:
                self._blob_tensor(name)
        with torch.no_grad():
            tnet.forward(start=tnet.layer_names[first], **self._inputs)
        self._sync_handed()
        for name, t in tnet.blobs.items():
            tnet.blob_shapes[name] = tuple(t.shape)

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
