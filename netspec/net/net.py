"""The Net runtime: a Caffe prototxt, for one phase/stage/level, as a ``torch.nn.Module``
(src/caffe/net.cpp: Net::Init, Forward, ShareTrainedLayersWith).

    net = Net("deploy.prototxt", phase="TEST", weights="model.caffemodel")
    out = net(data=images)            # dict of output blobs (tops no layer consumes)
    net.blobs["pool5"], net.params["conv1"][0], net.loss, net.backward()

Build: include/exclude filtering, implicit Split layers and the blob bookkeeping are done on the
NetParameter (netspec.netbuild); then each layer class from the registry is built from its
LayerParameter and bottom shapes, in file order, inside an ``nn.ModuleList``. Parameter wiring
(ParamSpec sharing, lr_mult/decay_mult, requires_grad) is in netspec.netparams.

State dict: keys are ``"<layer name>.<blob index>"`` (as in a .caffemodel), through state-dict hooks,
so ``net.state_dict()`` / ``net.load_state_dict()`` and ``torch.save(net.state_dict())`` speak Caffe's
names even when the Net is a submodule. Weight files: ``net.load_weights`` / ``net.save_weights``.
"""
import collections
import contextlib

import torch
from torch import nn

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError
from recaffe.protos.io import read_net
from . import build as netbuild, fuse as netfuse, params as netparams
from .layers import layer_class
from .layers.base import Layer

AUTO_TOP = "(automatic)"
#: layer types whose forward copes with new bottom shapes by itself (user Python layers reshape in forward)
_DYNAMIC_TYPES = {"Python"}


class _ImplicitSplit(Layer):
    """The Split layer InsertSplits adds: every top is the bottom (autograd sums the gradients)."""
    dynamic_shapes = True

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        self.top_shapes = [self.bottom_shapes[0]] * len(lp.top)

    def forward(self, x):
        return [x] * len(self.lp.top)


class Net(nn.Module):
    def __init__(self, source, phase="TEST", weights=None, stages=(), level=0, lenient=False):
        super().__init__()
        param = caffe_pb2.NetParameter()
        param.CopyFrom(read_net(source, lenient=lenient))
        if len(param.layers):
            raise NetError(f"net '{param.name}': V1 'layers' entries must be upgraded first (protos.io.read_net)")
        netbuild.upgrade_input_fields(param)
        self.state = netbuild.make_state(param, phase, level, stages)
        self.phase = netbuild.phase_name(self.state.phase)
        self.name = param.name
        self.force_backward = param.force_backward
        filtered = netbuild.filter_net(param, self.state)
        self.net_param = netbuild.insert_splits(filtered)
        self._inserted_splits = {l.name for l in self.net_param.layer} - {l.name for l in filtered.layer}
        self.layers = nn.ModuleList()
        self._build()
        netparams.wire_params(self)
        self._register_state_dict_hooks()
        self.blobs = collections.OrderedDict()
        self.loss = None
        #: the tensors fed to the Input tops in the last forward (with force_backward: leaves that
        #: require grad, so ``net.input_blobs[name].grad`` is Caffe's input diff after backward)
        self.input_blobs = {}
        #: run BatchNorm(global stats) + in-place Scale pairs as one batch_norm call (netspec.netfuse)
        self.fuse_bn_scale = True
        #: run Convolution/InnerProduct [+ BatchNorm + Scale] [+ ReLU] in-place chains as one oneDNN call
        #: with cached reordered weights when no gradient is wanted (netspec.netfuse.plan_chains)
        self.fast_inference = True
        #: when True, forward calls retain_grad() on every blob that requires grad (diffs for inspection)
        self.retain_blob_grads = False
        #: follows net.to(device/dtype): where fed arrays and data layer tops go (see ``device``)
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        if weights:
            self.load_weights(weights)

    # -- construction ------------------------------------------------------------------------------
    def _build(self):
        shapes = collections.OrderedDict()   # blob name -> shape (creation order)
        available = set()                    # Caffe's available_blobs (for net outputs)
        self.layer_names, self.layer_types, self._steps = [], [], []
        self.inputs, self.blob_loss_weights = [], {}
        self.saved_params = []               # the LayerParameter as the layer holds it (Net::ToProto)
        for lp in self.net_param.layer:
            lp = _copy(lp)
            if not lp.HasField("phase"):
                lp.phase = self.state.phase
            lphase = netbuild.phase_name(lp.phase)
            if lp.type == "Split" and lp.name in self._inserted_splits:
                cls = _ImplicitSplit
            else:
                cls = layer_class(lp.type, lp.name)
            if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
                raise NetError(f"layer '{lp.name}' ({lp.type}): propagate_down needs one entry per bottom "
                               f"({len(lp.bottom)}), got {len(lp.propagate_down)}")
            build_lp = lp
            if not lp.top and getattr(cls, "is_loss", False):   # Caffe's AutoTopBlobs for loss layers
                build_lp = _copy(lp)
                build_lp.top.append(AUTO_TOP)
            layer = cls(build_lp, [shapes[b] for b in lp.bottom], lphase)
            tops = list(build_lp.top)
            if len(layer.top_shapes) != len(tops):
                raise NetError(f"layer '{lp.name}' ({lp.type}): computed {len(layer.top_shapes)} top shape(s) "
                               f"for {len(tops)} top(s)")
            weights = list(lp.loss_weight)
            if not weights and getattr(layer, "is_loss", False):
                weights = [1.0]
                lp.loss_weight.append(1.0)
            if weights and len(weights) != len(tops):
                raise NetError(f"layer '{lp.name}' ({lp.type}): loss_weight must be given once per top "
                               f"({len(tops)}), got {len(weights)}")
            for b in lp.bottom:
                available.discard(b)
            for j, t in enumerate(tops):
                in_place = j < len(lp.bottom) and lp.bottom[j] == t
                if t == AUTO_TOP:
                    continue
                if t in shapes and not in_place:
                    raise NetError(f"layer '{lp.name}' ({lp.type}): top blob '{t}' produced by multiple sources")
                if in_place and tuple(layer.top_shapes[j]) != tuple(shapes[t]):
                    raise NetError(f"layer '{lp.name}' ({lp.type}): in-place top '{t}' has shape "
                                   f"{tuple(layer.top_shapes[j])}, bottom has {tuple(shapes[t])}")
                shapes[t] = tuple(layer.top_shapes[j])
                available.add(t)
            loss = [(j, float(w)) for j, w in enumerate(weights) if w != 0]
            for j, w in loss:
                if tops[j] != AUTO_TOP:
                    self.blob_loss_weights[tops[j]] = w
            if getattr(layer, "feeds_inputs", False):
                self.inputs.extend(tops)
            detach = [i for i, p in enumerate(lp.propagate_down) if not p]
            self.layers.append(layer)
            self.layer_names.append(lp.name)
            self.layer_types.append(lp.type)
            self.saved_params.append(lp)
            self._steps.append(_Step(layer, list(lp.bottom), tops, loss, detach))
        self.blob_shapes = shapes
        self.blob_names = list(shapes)
        self.outputs = sorted(available)     # std::set order, as Caffe's net outputs
        self._mark_grad_free_layers()
        netfuse.plan(self)
        netfuse.plan_chains(self)
        netfuse.plan_inplace_relu(self)
        self._index = {n: i for i, n in reversed(list(enumerate(self.layer_names)))}

    def _mark_grad_free_layers(self):
        """Caffe's backward analysis (Net::Init): a layer none of whose tops reaches a loss does no
        backward. When the net has a loss, such layers (Accuracy, extra outputs) run without autograd.
        A net without loss keeps autograd everywhere, so it can be used as an ordinary module."""
        has_loss = any(s.loss for s in self._steps)
        under_loss = set()
        for s in reversed(self._steps):
            contributes = bool(s.loss) or any(t in under_loss for t in s.tops)
            s.grad_free = has_loss and not contributes and not self.force_backward
            if contributes:
                under_loss.update(b for i, b in enumerate(s.bottoms) if i not in s.detach)

    # -- running -----------------------------------------------------------------------------------
    def forward(self, start=None, end=None, **inputs):
        """Run layers start..end (layer names, inclusive; default all). Keyword arguments feed the
        Input tops (and may override any other blob, e.g. a data layer's tops). Returns the net
        outputs, or the tops of ``end`` when given."""
        i0 = self._layer_index(start) if start is not None else 0
        i1 = self._layer_index(end) if end is not None else len(self._steps) - 1
        blobs = self.blobs if i0 > 0 else collections.OrderedDict()
        fed = {k: self._place(v) for k, v in inputs.items()}
        unknown = [k for k in fed if k not in self.blob_shapes]
        if unknown:
            raise NetError(f"net '{self.name}': no blob named {', '.join(map(repr, unknown))}; "
                           f"inputs are {', '.join(self.inputs) or 'none'}")
        total = None
        blobs.update(fed)
        skip = 0
        for k in range(i0, i1 + 1):
            s = self._steps[k]
            if skip:        # this step ran inside a fused step before it
                skip -= 1
                continue
            if s.chain and k + s.chain - 1 <= i1 \
                    and self.fast_inference and self.fuse_bn_scale and s.bottoms[0] in blobs \
                    and netfuse.chain_ready(self, k, blobs[s.bottoms[0]]):
                blobs[s.tops[0]] = netfuse.run_chain(self, k, blobs[s.bottoms[0]])
                skip = s.chain - 1
                continue
            if s.fuse and k < i1 and self.fuse_bn_scale:
                skip, nxt = 1, self._steps[k + 1]
                with torch.no_grad() if s.grad_free else contextlib.nullcontext():
                    y = blobs[nxt.tops[0]] = netfuse.bn_scale(s.layer, nxt.layer, blobs[s.bottoms[0]])
                if self.retain_blob_grads and y.requires_grad:
                    y.retain_grad()
                continue
            if s.source and all(t in fed for t in s.tops):   # fed tops of an Input/data layer
                tops = [fed[t] for t in s.tops]
                if s.feeds and self.force_backward:
                    tops = [t if t.requires_grad else t.detach().requires_grad_(True) for t in tops]
                if s.feeds:
                    self.input_blobs.update(zip(s.tops, tops))
            elif s.feeds:
                missing = [t for t in s.tops if t not in blobs]
                if missing:
                    raise NetError(f"net '{self.name}': input blob '{missing[0]}' (layer '{s.layer.name}') "
                                   f"was not given; inputs are {', '.join(self.inputs)}")
                tops = s.layer(*[blobs[t] for t in s.tops])
            elif s.source:
                tops = s.layer()
            else:
                bottoms = [blobs[b] for b in s.bottoms]
                for i in s.detach:
                    bottoms[i] = bottoms[i].detach()
                layer = s.layer
                if s.key is not None:
                    key = tuple(tuple(b.shape) for b in bottoms)
                    if key != s.key:
                        layer = self._reshaped(k, key)
                if s.relu_inplace and k > i0 and netfuse.relu_in_place_ok(self, k, bottoms[0]):
                    tops = [torch.relu_(bottoms[0])]
                elif s.grad_free:
                    with torch.no_grad():
                        tops = layer(*bottoms)
                else:
                    tops = layer(*bottoms)
            for j, t in enumerate(s.tops):
                if t != AUTO_TOP:
                    blobs[t] = tops[j]
                    if self.retain_blob_grads and tops[j].requires_grad and not tops[j].is_leaf:
                        tops[j].retain_grad()
            for j, w in s.loss:
                term = tops[j].sum() * w if w != 1 else tops[j].sum()
                total = term if total is None else total + term
        self.blobs = blobs
        self.loss = total
        names = self._steps[i1].tops if end is not None else self.outputs
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
            feed[name] = torch.zeros(tuple(shape), dtype=self.dtype, device=self.device)
        with torch.no_grad():
            self.forward(**feed)
        for name, t in self.blobs.items():
            self.blob_shapes[name] = tuple(t.shape)

    def _reshaped(self, k, key):
        """The layer of step k set up for bottom shapes ``key`` (Caffe's Reshape before Forward): the
        layer's setup is re-run without fillers and handed the existing blobs; variants are cached."""
        s = self._steps[k]
        layer = s.variants.get(key)
        if layer is None:
            old = s.layer
            Layer._skip_fill = True
            try:
                layer = type(old)(old.lp, list(key), old.phase)
            finally:
                Layer._skip_fill = False
            want = [tuple(p.shape) for p in layer.blobs]
            have = [tuple(p.shape) for p in old.blobs]
            if want != have:
                raise NetError(f"layer '{old.name}' ({old.type}): bottom shapes {list(key)} need blob shapes "
                               f"{want}, the net's blobs are {have} (a net's parameters fix some input sizes)")
            layer.blobs = old.blobs
            layer.train(old.training)
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


class _Step:
    """One layer of the forward schedule: bottoms/tops by blob name, (top index, weight) losses,
    bottom indices to detach (propagate_down false); source: no bottoms (Input/data layers);
    feeds: an Input layer, whose tops come from the call's arguments."""
    __slots__ = ("layer", "bottoms", "tops", "loss", "detach", "grad_free", "fuse", "source", "feeds", "key",
                 "variants", "chain", "relu_inplace")

    def __init__(self, layer, bottoms, tops, loss, detach):
        self.layer, self.bottoms, self.tops, self.loss, self.detach = layer, bottoms, tops, loss, detach
        self.source = not bottoms and getattr(layer, "is_data", False)
        self.feeds = self.source and getattr(layer, "feeds_inputs", False)
        dynamic = getattr(layer, "dynamic_shapes", False) or layer.type in _DYNAMIC_TYPES or not bottoms
        #: the bottom shapes the layer is set up for (None: it handles any shapes itself)
        self.key = None if dynamic else tuple(tuple(b) for b in layer.bottom_shapes)
        self.variants = {self.key: layer}
        self.grad_free = self.fuse = False
        self.chain = 0
        self.relu_inplace = False


def _copy(lp):
    out = caffe_pb2.LayerParameter()
    out.CopyFrom(lp)
    return out


def _as_tensor(v, dtype=torch.float32):
    if torch.is_tensor(v):
        return v
    return torch.as_tensor(v, dtype=dtype)
