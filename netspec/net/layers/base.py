"""The contract every Caffe layer class follows.

A layer is an ``nn.Module`` built from its ``LayerParameter`` (``self.lp``), the shapes of its bottoms
and the net phase. In ``__init__`` it

* checks its parameters and bottom shapes the way Caffe's ``LayerSetUp``/``Reshape`` do, raising
  ``NetError`` via ``self.error(...)`` (message names the layer),
* creates its learnable blobs, in Caffe's order, with ``self.add_blob(shape, filler)``; they live in
  ``self.blobs`` (an ``nn.ParameterList``), so ``.caffemodel`` I/O and ``lr_mult`` pairing need no
  special cases,
* sets ``self.top_shapes``: a list with one shape tuple per top (a loss top has shape ``()``).

``forward(*bottoms)`` takes the bottom tensors in order and returns a list of top tensors. Backward is
autograd's; a layer whose Caffe gradient differs from the mathematical one (or is absent) must make
its forward produce Caffe's gradient (custom ``torch.autograd.Function`` or ``detach``).

Class attributes describing top/bottom counts (None = unchecked), as Caffe's Exact/Min/Max counts.
"""
import torch
from torch import nn

from recaffe.protos import limits
from recaffe.protos.errors import NetError


class Layer(nn.Module):
    exact_bottoms = None
    min_bottoms = None
    max_bottoms = None
    exact_tops = None
    min_tops = None
    max_tops = None
    #: loss layers: the first top gets loss_weight 1 by default (Caffe's LossLayer)
    is_loss = False
    #: Caffe's EqualNumBottomTopBlobs
    equal_bottom_top = False
    #: layers whose tops depend on data fed from outside (Input, data layers)
    is_data = False
    #: True for layers whose forward accepts any bottom shapes by itself. The Net re-runs the setup
    #: (``__init__``, fillers skipped, blobs kept) of other layers when their bottom shapes change,
    #: as Caffe calls Reshape before every Forward.
    dynamic_shapes = False
    #: set by the Net while it re-runs a layer's setup for new bottom shapes: add_blob then only
    #: allocates (the Net hands the layer its existing blobs afterwards)
    _skip_fill = False

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__()
        self.lp = lp
        self.name = lp.name
        self.type = lp.type
        self.phase = phase
        self.bottom_shapes = [tuple(s) for s in bottom_shapes]
        self.blobs = nn.ParameterList()
        self.top_shapes = []
        self._check_counts(len(lp.bottom), len(lp.top))

    # -- helpers for subclasses -------------------------------------------------------------------
    def error(self, msg):
        """A NetError naming this layer: ``layer 'conv1' (Convolution): <msg>``."""
        return NetError(f"layer '{self.name}' ({self.type}): {msg}")

    def add_blob(self, shape, filler=None, dtype=torch.float32):
        """Append a learnable blob of ``shape``, filled by ``filler`` (a FillerParameter) if given."""
        shape = tuple(int(d) for d in shape)
        n = limits.check_blob(shape, f"layer '{self.name}' ({self.type}): parameter blob {len(self.blobs)}", NetError)
        if limits.active_budget() is not None and not Layer._skip_fill:
            limits.active_budget().param(n * dtype.itemsize, f"layer '{self.name}' ({self.type}): parameter "
                                         f"blob {len(self.blobs)} {shape}")
        data = torch.empty(shape, dtype=dtype) if Layer._skip_fill else torch.zeros(shape, dtype=dtype)
        if filler is not None and not Layer._skip_fill:
            from recaffe.netspec.net.fillers import fill
            fill(data, filler)
        p = nn.Parameter(data)
        self.blobs.append(p)
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

    def _check_counts(self, nb, nt):
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
