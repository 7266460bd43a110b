"""The Net runtime: a Caffe prototxt, for one phase/stage/level, as a ``torch.nn.Module``
(src/caffe/net.cpp: Net::Init, Forward, ShareTrainedLayersWith).

    net = Net("deploy.prototxt", phase="TEST", weights="model.caffemodel")
    out = net(data=images)            # dict of output blobs (tops no layer consumes)
    net.blobs["pool5"], net.params["conv1"][0], net.loss, net.backward()

Build (build.py): include/exclude filtering and implicit Split layers on the NetParameter, then
each layer class from the registry is built from its LayerParameter and bottom shapes, in file
order, and described by a public ``Step`` (``net.steps``: name, type, bottoms, tops, loss weights,
propagate_down, in-place tops, grad-free). ``net.fusion`` (fuse.py) is the plan of the steps that run
as one fused call. ``forward`` is Caffe's ForwardFromTo over that schedule; every CPU fast path sits
behind netspec.net.kernels' one switch (``net.fast_inference = False`` turns it off for this net).
Parameter wiring (ParamSpec sharing, lr_mult/decay_mult, requires_grad) is in params.py.

State dict: keys are ``"<layer name>.<blob index>"`` (as in a .caffemodel), through state-dict hooks,
so ``net.state_dict()`` / ``net.load_state_dict()`` and ``torch.save(net.state_dict())`` speak Caffe's
names even when the Net is a submodule. Weight files: ``net.load_weights`` / ``net.save_weights``.
"""
import collections
import contextlib

import torch
from torch import nn

from recaffe.protos import caffe_pb2, limits
from recaffe.protos.errors import NetError
from recaffe.protos.io import read_net
from . import build as netbuild, fuse as netfuse, kernels, params as netparams
from .build import AUTO_TOP, Step  # noqa: F401  (AUTO_TOP and Step are part of this module's API)
from .layers import layer_class
from .layers.base import Layer


class _ImplicitSplit(Layer):
    """The Split layer InsertSplits adds: every top is the bottom (autograd sums the gradients)."""
    dynamic_shapes = True
    param_field = ""

    def setup(self, p):
        self.top_shapes = [self.bottom_shapes[0]] * len(self.lp.top)

    def forward(self, x):
        return [x] * len(self.lp.top)


class Net(nn.Module):
    def __init__(self, source, phase="TEST", weights=None, stages=(), level=0, lenient=False):
        super().__init__()
        param = caffe_pb2.NetParameter()
        param.CopyFrom(read_net(source, lenient=lenient))   # upgraded: V2 layers, inputs as an Input layer
        self.state = netbuild.make_state(param, phase, level, stages)
        self.phase = netbuild.phase_name(self.state.phase)
        self.name = param.name
        self.force_backward = param.force_backward
        filtered = netbuild.filter_net(param, self.state)
        self.net_param = netbuild.insert_splits(filtered)
        self._inserted_splits = {l.name for l in self.net_param.layer} - {l.name for l in filtered.layer}
        self.layers = nn.ModuleList()
        with limits.building(NetError) as budget:   # sizes checked before anything is allocated
            self._build()
            budget.blob(4 * sum(limits.blob_count(s) for s in self.blob_shapes.values()))
            budget.close(f"net '{self.name}' ({self.phase})")
        netparams.wire_params(self)
        self._register_state_dict_hooks()
        self.blobs = collections.OrderedDict()
        self.loss = None
        #: the tensors fed to the Input tops in the last forward (with force_backward: leaves that
        #: require grad, so ``net.input_blobs[name].grad`` is Caffe's input diff after backward)
        self.input_blobs = {}
        #: run the fused calls of ``net.fusion`` (BatchNorm(global stats) + Scale pairs, inference chains)
        self.fuse_bn_scale = True
        #: False: this net's forward runs with every CPU fast path off (inside kernels.disabled()): no
        #: fused oneDNN chains, GEMM convolutions, LRN/pooling/InnerProduct kernels; plain torch ops
        self.fast_inference = True
        #: when True, forward calls retain_grad() on every blob that requires grad (diffs for inspection)
        self.retain_blob_grads = False
        #: follows net.to(device/dtype): where fed arrays and data layer tops go (see ``device``)
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        if weights:
            self.load_weights(weights)

    # -- construction ------------------------------------------------------------------------------
    def _build(self):
        splits = self._inserted_splits
        sched = netbuild.build_schedule(
            self.net_param, self.state.phase, force_backward=self.force_backward,
            class_for=lambda lp: _ImplicitSplit if lp.name in splits else layer_class(lp.type, lp.name))
        #: the forward schedule: one public build.Step per layer, in file order
        self.steps = sched.steps
        self.layers.extend(s.layer for s in self.steps)
        self.layer_names = [s.name for s in self.steps]
        self.layer_types = [s.type for s in self.steps]
        self.saved_params = sched.saved_params     # the LayerParameter as the layer holds it (Net::ToProto)
        self.inputs, self.blob_loss_weights = sched.inputs, sched.blob_loss_weights
        self.blob_shapes = sched.blob_shapes
        self.blob_names = list(self.blob_shapes)
        self.outputs = sched.outputs
        #: which steps run as one fused call (fuse.FusionPlan)
        self.fusion = netfuse.FusionPlan(self.steps)
        self._index = {n: i for i, n in reversed(list(enumerate(self.layer_names)))}

    # -- running -----------------------------------------------------------------------------------
    def forward(self, start=None, end=None, **inputs):
        """Caffe's ForwardFromTo: run layers start..end (layer names, inclusive; default all), each
        step either a fused call of ``self.fusion`` or the layer itself. Keyword arguments feed the
        Input tops (and may override any other blob, e.g. a data layer's tops). Returns the net
        outputs, or the tops of ``end`` when given; ``self.loss`` is the weighted sum of loss tops."""
        first = self._layer_index(start) if start is not None else 0
        last = self._layer_index(end) if end is not None else len(self.steps) - 1
        blobs = self.blobs if first > 0 else collections.OrderedDict()
        fed = self._fed(inputs)
        blobs.update(fed)
        loss, k = None, first
        with contextlib.nullcontext() if self.fast_inference else kernels.disabled():
            while k <= last:
                fused = self.fusion.call(self, k, last, blobs)     # (steps covered, tops) or None
                n, tops = fused or (1, self._forward_step(k, k == first, blobs, fed))
                s = self.steps[k + n - 1]
                self._keep(s, tops, blobs)
                for j, w in s.loss:
                    term = tops[j].sum() * w if w != 1 else tops[j].sum()
                    loss = term if loss is None else loss + term
                k += n
        self.blobs, self.loss = blobs, loss
        return self._outputs(blobs, self.steps[last].tops if end is not None else self.outputs)

    def _fed(self, inputs):
        fed = {k: self._place(v) for k, v in inputs.items()}
        unknown = [k for k in fed if k not in self.blob_shapes]
        if unknown:
            raise NetError(f"net '{self.name}': no blob named {', '.join(map(repr, unknown))}; "
                           f"inputs are {', '.join(self.inputs) or 'none'}")
        return fed

    def _forward_step(self, k, first, blobs, fed):
        """Layer::Forward of step k: its tops. Data layers make theirs (or take them from ``fed``);
        other layers get their bottoms (detached where propagate_down is false), set up again when
        the bottom shapes changed (Caffe's Reshape), without autograd when grad-free."""
        s = self.steps[k]
        if s.source:
            return self._source_tops(s, blobs, fed)
        bottoms = [blobs[b] for b in s.bottoms]
        for i in s.detach:
            bottoms[i] = bottoms[i].detach()
        layer = s.layer
        if s.key is not None:
            key = tuple(tuple(b.shape) for b in bottoms)
            if key != s.key:
                layer = self._reshaped(k, key)
        if not first and self.fusion.relu_in_place(self, k, bottoms):
            return [torch.relu_(bottoms[0])]
        if s.grad_free:
            with torch.no_grad():
                return layer(*bottoms)
        return layer(*bottoms)

    def _source_tops(self, s, blobs, fed):
        if all(t in fed for t in s.tops):   # fed tops of an Input/data layer
            tops = [fed[t] for t in s.tops]
            if s.feeds and self.force_backward:
                tops = [t if t.requires_grad else t.detach().requires_grad_(True) for t in tops]
            if s.feeds:
                self.input_blobs.update(zip(s.tops, tops))
            return tops
        if s.feeds:
            missing = [t for t in s.tops if t not in blobs]
            if missing:
                raise NetError(f"net '{self.name}': input blob '{missing[0]}' (layer '{s.name}') was not "
                               f"given; inputs are {', '.join(self.inputs)}")
            return s.layer(*[blobs[t] for t in s.tops])
        return s.layer()

    def _keep(self, s, tops, blobs):
        """Store the tops of step s as blobs (retaining their grads when asked)."""
        for j, t in enumerate(s.tops):
            if t != AUTO_TOP:
                blobs[t] = tops[j]
                if self.retain_blob_grads and tops[j].requires_grad and not tops[j].is_leaf:
                    tops[j].retain_grad()

    @staticmethod
    def _outputs(blobs, names):
        for n in names:     # hand back plain NCHW tensors (the fused chains compute channels-last)
            if n != AUTO_TOP and not blobs[n].is_contiguous() and not blobs[n].requires_grad:
                blobs[n] = blobs[n].contiguous()
        return collections.OrderedDict((n, blobs[n]) for n in names if n != AUTO_TOP)

    def backward(self):
        """Back-propagate the last forward's loss (pycaffe's net.backward(), gradients in .grad)."""
        if self.loss is None:
            raise NetError(f"net '{self.name}': no loss to back-propagate (no top has a loss_weight)")
        if self.loss.requires_grad:   # otherwise nothing needs backward (Caffe does nothing either)
            self.loss.backward()

    def reshape(self, **shapes):
        """Propagate new input shapes through the net (pycaffe's net.reshape()): runs a forward on zeros
        without autograd; afterwards ``net.blobs`` holds tensors of the new shapes."""
        feed = {}
        for name in self.inputs:
            shape = shapes.get(name)
            if shape is None:
                shape = tuple(self.blobs[name].shape) if name in self.blobs else self.blob_shapes[name]
            limits.check_blob(shape, f"net '{self.name}': input '{name}'", NetError)
            feed[name] = torch.zeros(tuple(shape), dtype=self.dtype, device=self.device)
        with torch.no_grad():
            self.forward(**feed)
        for name, t in self.blobs.items():
            self.blob_shapes[name] = tuple(t.shape)

    def reshape_layers(self, input_shapes=None, start=None, end=None):
        """Caffe's Layer::Reshape over layers start..end (default all; net.cpp ForwardFromTo reshapes only
        the layers it runs), computing nothing: each layer is set up for its bottoms' shapes (the cached
        variants of ``_reshaped``; a Python layer by its user ``reshape``) and ``blob_shapes`` gets the
        tops' new shapes. ``input_shapes``: new Input top shapes. A layer that cannot take its new
        bottoms raises, as Caffe's CHECKs."""
        i0 = self._layer_index(start) if start is not None else 0
        i1 = self._layer_index(end) if end is not None else len(self.steps) - 1
        shapes = self.blob_shapes
        shapes.update((n, tuple(int(d) for d in v)) for n, v in (input_shapes or {}).items())
        for k in range(i0, i1 + 1):
            s = self.steps[k]
            if not s.bottoms:               # Input / data layers: their tops keep (or were given) shapes
                continue
            key = tuple(tuple(shapes[b]) for b in s.bottoms)
            if s.key is not None:
                tops = (self._reshaped(k, key) if key != s.key else s.layer).top_shapes
            elif isinstance(s.layer, _ImplicitSplit):
                tops = [key[0]] * len(s.tops)
            else:
                tops = _dynamic_top_shapes(s.layer, key)
            for t, shape in zip(s.tops, tops):
                if t != AUTO_TOP:
                    shapes[t] = tuple(shape)
        return shapes

    def _reshaped(self, k, key):
        """The layer of step k set up for bottom shapes ``key`` (Caffe's Reshape before Forward): the
        layer is built again for these shapes holding the existing blobs (Layer.rebuilt: nothing
        allocated or filled); variants are cached."""
        s = self.steps[k]
        layer = s.variants.get(key)
        if layer is None:
            old = s.layer
            layer = old.rebuilt(list(key))
            want = [tuple(p.shape) for p in layer.blobs]
            have = [tuple(p.shape) for p in old.blobs]
            if want != have:
                raise NetError(f"layer '{old.name}' ({old.type}): bottom shapes {list(key)} need blob shapes "
                               f"{want}, the net's blobs are {have} (a net's parameters fix some input sizes)")
            layer.blobs = old.blobs
            s.variants[key] = layer
        self.layers[k] = s.layer = layer
        s.key = key
        return layer

    # -- placement ---------------------------------------------------------------------------------
    @property
    def device(self):
        """The device the net lives on (``net.to(device)`` moves weights, buffers and data layer tops)."""
        return self._device_probe.device

    @property
    def dtype(self):
        return self._device_probe.dtype

    def _place(self, v):
        """A fed blob on the net's device: numpy/lists become tensors of the net's dtype; tensors keep
        their dtype and move (no copy when already there)."""
        if not torch.is_tensor(v):
            v = _as_tensor(v, self.dtype if self.dtype.is_floating_point else torch.float32)
        return v if v.device == self.device else v.to(self.device)

    def _layer_index(self, name):
        if name not in self._index:
            raise NetError(f"net '{self.name}': no layer named '{name}'")
        return self._index[name]

    # -- introspection -----------------------------------------------------------------------------
    def layer(self, name):
        return self.layers[self._layer_index(name)]

    @property
    def params(self):
        """OrderedDict layer name -> list of its parameter blobs (Caffe's order), for layers with blobs."""
        return collections.OrderedDict((n, list(l.blobs)) for n, l in zip(self.layer_names, self.layers)
                                       if len(l.blobs))

    def learnable_params(self):
        return netparams.learnable_params(self)

    def share_with(self, other):
        netparams.share_with(self, other)

    def caffe_state_dict(self):
        """OrderedDict "<layer>.<i>" -> parameter tensor (sharers included, as in a .caffemodel)."""
        return collections.OrderedDict((f"{n}.{i}", p.detach()) for n, l in zip(self.layer_names, self.layers)
                                       for i, p in enumerate(l.blobs))

    def _register_state_dict_hooks(self):
        netparams.register_state_dict_hooks(self)

    # -- weights -----------------------------------------------------------------------------------
    def load_weights(self, path):
        """Copy weights from a .caffemodel / .caffemodel.h5 / .pth file (by extension); returns the
        names of file layers this net lacks (ignored, as Caffe does)."""
        from recaffe.netspec.weights import load_weights
        return load_weights(self, path)

    def save_weights(self, path, fmt=None):
        """Write the weights: by suffix (.pth/.pt, .h5/.hdf5, else .caffemodel) or ``fmt``."""
        from recaffe.netspec.weights import save_weights
        save_weights(self, path, fmt)

    def extra_repr(self):
        return f"name={self.name!r}, phase={self.phase}, inputs={self.inputs}, outputs={self.outputs}"


def _as_tensor(v, dtype=torch.float32):
    if torch.is_tensor(v):
        return v
    return torch.as_tensor(v, dtype=dtype)


def _dynamic_top_shapes(layer, bottom_shapes):
    """Top shapes of a self-shaping (Python) layer for new bottoms: its user ``reshape`` on zero blobs."""
    py = getattr(layer, "py", None)
    if py is None:
        with torch.no_grad():
            return [tuple(t.shape) for t in layer(*[torch.zeros(s) for s in bottom_shapes])]
    from .layers.python import Blob
    top = [Blob(s) for s in layer.top_shapes_now]
    py.reshape([Blob(s) for s in bottom_shapes], top)
    layer.top_shapes_now = [t.shape for t in top]
    return list(layer.top_shapes_now)
