"""The contract every Caffe layer class follows (how to write a layer).

A layer is one ``nn.Module`` class, registered under its exact Caffe type name, built from its
``LayerParameter`` (``self.lp``), the shapes of its bottoms (``self.bottom_shapes``, tuples) and the
net phase (``self.phase``, "TRAIN"/"TEST")::

    @register("Square")
    class Square(Layer):
        exact_bottoms = exact_tops = 1          # Caffe's Exact/Min/MaxNum{Bottom,Top}Blobs
        param_field = "power_param"             # optional: which *_param message setup() receives

        def setup(self, p):                     # p: this layer's *_param message (or None)
            self.top_shapes = [self.bottom_shapes[0]]

        def forward(self, x):                   # bottoms in order -> list of tops
            return [x * x]

Construction (``Layer.__init__``, never overridden by built-in layers):

1. stores ``lp``, ``name``, ``type``, ``phase``, ``bottom_shapes``; ``blobs`` (an ``nn.ParameterList``)
   and ``top_shapes`` start empty;
2. checks the bottom/top counts against the class attributes below (``check_counts``);
3. calls ``self.setup(p)`` with the layer's own parameter message: ``lp.<param_field>``. By default
   ``param_field`` is found from the layer's type through the LayerParameter descriptor ("InnerProduct"
   -> ``inner_product_param``, "ReLU" -> ``relu_param``, "HDF5Data" -> ``hdf5_data_param``); set it
   on the class where Caffe's naming differs ("Deconvolution" reads ``convolution_param``), or to
   ``""`` for none. ``p`` is None when the type has no message of its own. Other messages
   (``loss_param``, ``transform_param``) are read from ``self.lp``.

``setup(p)`` does what Caffe's LayerSetUp + Reshape do:

* checks parameters and bottom shapes, raising ``self.error(...)`` (a NetError naming the layer);
* declares the learnable blobs, in Caffe's order, with ``self.add_blob(shape, filler)``. The blob is
  allocated (zeros) and its filler (a FillerParameter, or None: stays zero) recorded in
  ``self.blob_fillers``; the Net applies the fillers once, right after the layer is built
  (``apply_fillers()``), so the random stream is consumed in layer/blob order, as Caffe's
  Net::Init does. A rebuild for new bottom shapes (``rebuilt``, Caffe's Reshape; see
  ``dynamic_shapes``) runs setup again but ``add_blob`` hands back the existing blobs: nothing is
  allocated or refilled. A layer built on its own (outside a Net) calls ``apply_fillers()`` itself;
* sets ``self.top_shapes``: one shape tuple per top (a loss top has shape ``()``).

Sizes are checked before anything is allocated, as Caffe's Blob::Reshape does (protos.limits: at most
32 axes and INT_MAX elements): every parameter blob in ``add_blob`` (then against the memory budget of
the Net being built), every shape assigned to ``top_shapes``. A layer that allocates something else
from its parameters (a padded buffer) checks it itself with ``limits.check_blob``.

A subclass of another layer class calls ``super().setup(p)`` first (NeuronLayer, LossBase do the
shared part of a family there).

``forward(*bottoms)`` takes the bottom tensors in order and returns a list of top tensors. Backward
is autograd's; a layer whose Caffe gradient differs from the mathematical one (or is absent) makes
its forward produce Caffe's gradient (a custom ``torch.autograd.Function``, or ``detach``).

Class-level queries used by the runtime and the recipes instead of type-name strings: ``is_data``,
``feeds_inputs``, ``is_loss``, ``dynamic_shapes``, ``learnable_blobs``, ``classifier`` and
``blob_count(lp)`` (see their comments below).

Old style, still supported (user code written before ``setup``): a class that overrides
``__init__(self, lp, bottom_shapes, phase)``, calls ``super().__init__(lp, bottom_shapes, phase)`` and
then sets ``top_shapes`` / calls ``add_blob`` works unchanged (the base ``setup`` does nothing).
"""
import re

import torch
from torch import nn

from recaffe.protos import caffe_pb2, limits
from recaffe.protos.errors import NetError

_LP_FIELDS = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
_AUTO_FIELDS = {}


def param_field_for_type(type_name):
    """The ``*_param`` field of LayerParameter named after a Caffe type, or None: the type's
    snake_case ("InnerProduct" -> inner_product_param) or its lower case ("ReLU" -> relu_param)
    when that field exists and is a message."""
    if type_name not in _AUTO_FIELDS:
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type_name).lower()
        found = None
        for cand in (snake + "_param", type_name.lower() + "_param"):
            f = _LP_FIELDS.get(cand)
            if f is not None and f.message_type is not None:
                found = cand
                break
        _AUTO_FIELDS[type_name] = found
    return _AUTO_FIELDS[type_name]


class Layer(nn.Module):
    exact_bottoms = None
    min_bottoms = None
    max_bottoms = None
    exact_tops = None
    min_tops = None
    max_tops = None
    #: the LayerParameter field whose message ``setup`` receives: None = found from the type name
    #: (param_field_for_type), "" = no message (setup gets None)
    param_field = None
    #: loss layers: the first top gets loss_weight 1 by default (Caffe's LossLayer)
    is_loss = False
    #: Caffe's EqualNumBottomTopBlobs
    equal_bottom_top = False
    #: layers whose tops depend on data fed from outside (Input, data layers)
    is_data = False
    #: the Net feeds this layer's tops from its call arguments (Input)
    feeds_inputs = False
    #: True for layers whose forward accepts any bottom shapes by itself. The Net re-builds other
    #: layers for new bottom shapes (a new instance, its blobs replaced by the existing ones, no
    #: fillers applied), as Caffe calls Reshape before every Forward.
    dynamic_shapes = False
    #: False where the blobs are statistics the layer updates itself, never learned by gradient
    #: (BatchNorm: Caffe forces lr_mult 0 on them)
    learnable_blobs = True
    #: a layer that can be a net's classifier head (num_output outputs, weights + optional bias in
    #: the message ``param_field`` names: weight_filler, bias_filler, bias_term): recipes.finetune
    classifier = False
    #: a fork layer's message (e.g. "norm_param"), read through the fork schema that keeps the fork's
    #: field numbers (recaffe.protos.forks.layer_param) instead of BVLC's LayerParameter
    fork_param = None

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__()
        self.lp = lp
        self.name = lp.name
        self.type = lp.type
        self.phase = phase
        self.bottom_shapes = [tuple(s) for s in bottom_shapes]
        self.blobs = nn.ParameterList()
        #: one entry per blob: its FillerParameter, or None (left as allocated: zeros)
        self.blob_fillers = []
        self._fillers_applied = False
        self.top_shapes = []
        self.check_counts()
        self.setup(self.param_message(lp))

    @classmethod
    def param_field_name(cls, type_name):
        """The LayerParameter field holding this class's parameters for a layer of ``type_name``."""
        if cls.param_field is not None:
            return cls.param_field or None
        return param_field_for_type(type_name)

    @classmethod
    def param_message(cls, lp):
        """``lp``'s own parameter message for this class (None if the type has none)."""
        if cls.fork_param:
            from recaffe.protos.forks import layer_param
            return layer_param(lp, cls.fork_param)
        field = cls.param_field_name(lp.type)
        return getattr(lp, field) if field else None

    @classmethod
    def blob_count(cls, lp):
        """How many blobs a layer of this LayerParameter declares, known without bottom shapes
        (0 for a layer without blobs; None where only building the layer can tell, e.g. Python).
        Classes with blobs override it."""
        return 0

    def setup(self, p):
        """Check parameters and bottom shapes, declare blobs and ``top_shapes`` (see the module
        docstring). The base class declares nothing (old-style layers do it in ``__init__``)."""

    # -- helpers for subclasses -------------------------------------------------------------------
    def error(self, msg):
        """A NetError naming this layer: ``layer 'conv1' (Convolution): <msg>``."""
        return NetError(f"layer '{self.name}' ({self.type}): {msg}")

    def add_blob(self, shape, filler=None, dtype=torch.float32):
        """Append a blob of ``shape`` (zeros) whose filler (a FillerParameter, or None: stays zero) is
        applied by ``apply_fillers``. Returns the parameter. In a rebuild (``rebuilt``) the original
        layer's blob of that index and shape is taken instead: nothing is allocated or filled."""
        shape = tuple(int(d) for d in shape)
        src, i = self.__dict__.get("_blob_source"), len(self.blobs)
        if src is not None and i < len(src.blobs) and tuple(src.blobs[i].shape) == shape \
                and src.blobs[i].dtype == dtype:
            p = src.blobs[i]
        else:       # Blob::Reshape's limits, then the memory budget of the Net being built, first
            n = limits.check_blob(shape, f"layer '{self.name}' ({self.type}): parameter blob {i}", NetError)
            if limits.active_budget() is not None:
                limits.active_budget().param(n * dtype.itemsize, f"layer '{self.name}' ({self.type}): "
                                             f"parameter blob {i} {shape}")
            p = nn.Parameter(torch.zeros(shape, dtype=dtype))
        self.blobs.append(p)
        self.blob_fillers.append(filler)
        return p

    @property
    def top_shapes(self):
        return self._top_shapes

    @top_shapes.setter
    def top_shapes(self, shapes):
        """Every top shape a layer computes is checked as Caffe's Blob::Reshape does (protos.limits),
        before the layer can allocate anything of that size."""
        for i, s in enumerate(shapes):
            top = f" ('{self.lp.top[i]}')" if i < len(self.lp.top) else ""
            limits.check_blob(s, f"layer '{self.name}' ({self.type}): top {i}{top}", NetError)
        self._top_shapes = shapes

    def rebuilt(self, bottom_shapes):
        """A new layer of this class and LayerParameter set up for other bottom shapes (Caffe's Reshape
        before Forward), holding this layer's blobs where their shapes agree: no allocation, no
        fillers (its ``apply_fillers`` does nothing). The caller checks the blob shapes."""
        cls = type(self)
        new = cls.__new__(cls)
        object.__setattr__(new, "_blob_source", self)   # read by add_blob during __init__/setup
        try:
            cls.__init__(new, self.lp, bottom_shapes, self.phase)
        finally:
            new.__dict__.pop("_blob_source", None)
        new._fillers_applied = True
        new.train(self.training)
        return new

    def apply_fillers(self):
        """Fill the blobs from their recorded fillers, in blob order, once (later calls do nothing).
        The Net calls it right after building the layer; a layer built on its own calls it itself."""
        if self._fillers_applied:
            return self
        self._fillers_applied = True
        from recaffe.netspec.net.fillers import fill
        for blob, filler in zip(self.blobs, self.blob_fillers):
            if filler is not None:
                fill(blob, filler)
        return self

    def check_counts(self):
        """Caffe's CheckBlobCounts against the count attributes (of the class or the instance)."""
        nb, nt = len(self.lp.bottom), len(self.lp.top)

        def chk(what, n, exact, lo, hi):
            if exact is not None and n != exact:
                raise self.error(f"takes exactly {exact} {what} blob(s), got {n}")
            if lo is not None and n < lo:
                raise self.error(f"takes at least {lo} {what} blob(s), got {n}")
            if hi is not None and n > hi:
                raise self.error(f"takes at most {hi} {what} blob(s), got {n}")
        chk("bottom", nb, self.exact_bottoms, self.min_bottoms, self.max_bottoms)
        chk("top", nt, self.exact_tops, self.min_tops, self.max_tops)
        if self.equal_bottom_top and nb != nt:
            raise self.error(f"needs as many tops as bottoms, got {nb} bottom(s) and {nt} top(s)")

    def forward(self, *bottoms):  # pragma: no cover - abstract
        raise NotImplementedError


def canonical_axis(layer, axis, num_axes):
    """Caffe's Blob::CanonicalAxisIndex: negative axes count from the end; out of range is an error."""
    if not -num_axes <= axis < num_axes:
        raise layer.error(f"axis {axis} out of range for a {num_axes}-axis blob")
    return axis + num_axes if axis < 0 else axis


def count(shape, start=0, end=None):
    n = 1
    for d in tuple(shape)[start:end]:
        n *= int(d)
    return n
