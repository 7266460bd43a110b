"""Common (structural) layers: Concat, Slice, Eltwise, Flatten, Reshape, Tile, Reduction, ArgMax,
Softmax, BatchReindex, Filter, Split, Silence (src/caffe/layers/<name>_layer.cpp).

Each checks parameters and bottom shapes as Caffe's LayerSetUp/Reshape do and forwards with native
torch ops (views where Caffe shares data). Backward is autograd's, equal to Caffe's here; where Caffe
differs it is explicit: Eltwise MAX routes the gradient to the bottom Caffe picks, PROD without
stable_prod_grad divides y by x_i (a custom Function), ArgMax has no gradient, Filter and
BatchReindex none to their selector / indices."""
import torch

from .base import Layer, canonical_axis, count
from .precision import fp32
from .registry import register

_PROD, _SUM, _MAX = 0, 1, 2          # EltwiseParameter.EltwiseOp
_R_SUM, _R_ASUM, _R_SUMSQ, _R_MEAN = 1, 2, 3, 4   # ReductionParameter.ReductionOp


class _OneToOne(Layer):
    exact_bottoms = 1
    exact_tops = 1


def _no_in_place(layer):
    """Caffe's CHECK_NE(top, bottom) of Flatten, Reshape, Split."""
    for t in layer.lp.top:
        if t in layer.lp.bottom:
            raise layer.error(f"does not allow in-place computation (top '{t}' is also a bottom)")


def _legacy_or_axis(layer, p, legacy, num_axes):
    """Concat/Slice axis: the deprecated uint field (non-negative only) or `axis`, not both."""
    if p.HasField("axis") and p.HasField(legacy):
        raise layer.error(f"give either axis or {legacy}, not both")
    if p.HasField(legacy):
        axis = getattr(p, legacy)
        if axis >= num_axes:
            raise layer.error(f"{legacy} {axis} out of range for a {num_axes}-axis bottom")
        return axis
    return canonical_axis(layer, p.axis, num_axes)


@register("Concat")
class Concat(Layer):
    """Concatenate along `axis` (concat_layer.cpp); one bottom is passed through."""
    min_bottoms = 1
    exact_tops = 1

    def setup(self, p):
        first = self.bottom_shapes[0]
        self.axis = _legacy_or_axis(self, p, "concat_dim", len(first))
        top = list(first)
        for i, s in enumerate(self.bottom_shapes[1:], 1):
            if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first)) if j != self.axis):
                raise self.error(f"bottom {i} has shape {s}, bottom 0 {first}: must match except on axis {self.axis}")
            top[self.axis] += s[self.axis]
        self.top_shapes = [tuple(top)]

    def forward(self, *xs):
        return [xs[0] if len(xs) == 1 else torch.cat(xs, self.axis)]


@register("Slice")
class Slice(Layer):
    """Split along `axis` at slice_point, or into equal parts (slice_layer.cpp)."""
    exact_bottoms = 1
    min_tops = 1

    def setup(self, p):
        shape = self.bottom_shapes[0]
        self.axis = _legacy_or_axis(self, p, "slice_dim", len(shape))
        self.sizes = self.slice_sizes(shape[self.axis])
        self.top_shapes = [shape[:self.axis] + (s,) + shape[self.axis + 1:] for s in self.sizes]

    def slice_sizes(self, dim):
        pts, n_top = list(self.lp.slice_param.slice_point), len(self.lp.top)
        if not pts:
            if dim % n_top:
                raise self.error(f"{n_top} tops do not divide axis {self.axis} of size {dim} evenly")
            return [dim // n_top] * n_top
        if len(pts) != n_top - 1:
            raise self.error(f"needs one slice_point fewer than tops ({n_top}), got {len(pts)}")
        bounds = [0] + pts + [dim]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        if any(s <= 0 for s in sizes):
            raise self.error(f"slice_point {pts} must increase strictly within (0, {dim}) on axis {self.axis}")
        return sizes

    def forward(self, x):
        if x.shape[self.axis] != sum(self.sizes):  # a new shape at run time (Caffe's Reshape)
            self.sizes = self.slice_sizes(x.shape[self.axis])
        return list(torch.split(x, self.sizes, self.axis))


def _prod(xs):
    y = xs[0] * xs[1]
    for x in xs[2:]:
        y = y * x
    return y


class _ProdDivGrad(torch.autograd.Function):
    """Eltwise PROD with stable_prod_grad false: dx_i = dy * (y / x_i), as eltwise_layer.cpp."""

    @staticmethod
    def forward(ctx, *xs):
        y = _prod(xs)
        ctx.save_for_backward(y, *xs)
        return y

    @staticmethod
    def backward(ctx, dy):
        y, *xs = ctx.saved_tensors
        return tuple(y / x * dy for x in xs)


@register("Eltwise")
class Eltwise(Layer):
    """Element-wise SUM (with per-bottom coeff), PROD or MAX of same-shaped bottoms (eltwise_layer.cpp).

    MAX follows Caffe's argmax: bottom 0 wins over bottom 1 only if strictly greater, later bottoms
    only if strictly greater than the running max; the gradient goes to that bottom alone."""
    min_bottoms = 2
    exact_tops = 1

    def setup(self, p):
        lp = self.lp
        self.op = p.operation
        if self.op not in (_PROD, _SUM, _MAX):
            raise self.error(f"unknown operation {self.op}; valid: PROD, SUM, MAX")
        if self.op == _PROD and len(p.coeff):
            raise self.error("takes coeff only for SUM")
        if len(p.coeff) not in (0, len(lp.bottom)):
            raise self.error(f"takes one coeff per bottom ({len(lp.bottom)}), got {len(p.coeff)}")
        self.coeff = [float(c) for c in p.coeff] or [1.0] * len(lp.bottom)
        self.stable_prod_grad = p.stable_prod_grad
        for i, s in enumerate(self.bottom_shapes[1:], 1):
            if s != self.bottom_shapes[0]:
                raise self.error(f"bottom {i} has shape {s}, bottom 0 {self.bottom_shapes[0]}: shapes must match")
        self.top_shapes = [self.bottom_shapes[0]]

    def forward(self, *xs):
        if self.op == _SUM:
            c = self.coeff
            y = xs[0] if c[0] == 1.0 else xs[0] * c[0]
            for x, k in zip(xs[1:], c[1:]):
                y = torch.add(y, x, alpha=k) if k != 1.0 else y + x
            return [y]
        if self.op == _PROD:
            return [_prod(xs) if self.stable_prod_grad else _ProdDivGrad.apply(*xs)]
        y = torch.where(xs[0] > xs[1], xs[0], xs[1])
        for x in xs[2:]:
            y = torch.where(x > y, x, y)
        return [y]


@register("Flatten")
class Flatten(_OneToOne):
    """Merge axes axis..end_axis (inclusive) into one (flatten_layer.cpp); a view."""

    def setup(self, p):
        _no_in_place(self)
        shape = self.bottom_shapes[0]
        self.start = canonical_axis(self, p.axis, len(shape))
        self.end = canonical_axis(self, p.end_axis, len(shape))
        if self.end < self.start - 1:  # Blob::count(start, end + 1) needs start <= end + 1
            raise self.error(f"end_axis {p.end_axis} comes before axis {p.axis}")
        self.top_shapes = [shape[:self.start] + (count(shape, self.start, self.end + 1),) + shape[self.end + 1:]]

    def forward(self, x):
        if self.end == self.start - 1:
            return [x.unsqueeze(self.start)]
        return [torch.flatten(x, self.start, self.end)]


@register("Reshape")
class Reshape(_OneToOne):
    """Replace axes [axis, axis+num_axes) by reshape_param.shape; 0 copies the bottom's dim at that
    position, one -1 is inferred (reshape_layer.cpp). A view of the bottom."""

    def setup(self, p):
        _no_in_place(self)
        dims = [int(d) for d in p.shape.dim]
        if dims.count(-1) > 1:
            raise self.error(f"shape {dims} has more than one -1; at most one dimension is inferred")
        if any(d < -1 for d in dims):
            raise self.error(f"shape {dims}: dims must be >= 0, 0 (copy) or -1 (infer)")
        self.dims, self._cache = dims, {}
        self.top_shapes = [self.new_shape(self.bottom_shapes[0])]

    def new_shape(self, shape):
        if shape in self._cache:
            return self._cache[shape]
        p, n = self.lp.reshape_param, len(shape)
        start = p.axis if p.axis >= 0 else n + p.axis + 1
        if not 0 <= start <= n:
            raise self.error(f"axis {p.axis} out of range for a {n}-axis bottom")
        if p.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all; got {p.num_axes}")
        end = n if p.num_axes == -1 else start + p.num_axes
        if end > n:
            raise self.error(f"axis + num_axes = {end} is beyond the bottom's {n} axes")
        new = list(self.dims)
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= n:
                    raise self.error(f"shape dim {i} is 0 but the bottom has no axis {start + i} to copy")
                new[i] = shape[start + i]
        top = list(shape[:start]) + new + list(shape[end:])
        total = count(shape)
        if -1 in new:
            known = count([d for d in top if d != -1])
            if known == 0 or total % known:
                raise self.error(f"bottom count {total} is not divisible by the given dims' product {known}")
            top[start + new.index(-1)] = total // known
        if count(top) != total:
            raise self.error(f"top shape {tuple(top)} has {count(top)} elements, bottom {shape} has {total}")
        self._cache[shape] = tuple(top)
        return tuple(top)

    def forward(self, x):
        return [x.reshape(self.new_shape(x.shape))]


@register("Tile")
class Tile(_OneToOne):
    """Repeat the block of axes from `axis` on `tiles` times (tile_layer.cpp)."""

    def setup(self, p):
        shape = self.bottom_shapes[0]
        axis = canonical_axis(self, p.axis, len(shape))
        if not p.HasField("tiles") or p.tiles <= 0:
            raise self.error(f"tile_param.tiles must be given and positive, got {p.tiles}")
        self.reps = [1] * len(shape)
        self.reps[axis] = p.tiles
        self.top_shapes = [tuple(d * r for d, r in zip(shape, self.reps))]

    def forward(self, x):
        return [x.repeat(self.reps)]


@register("Reduction")
class Reduction(_OneToOne):
    """SUM, ASUM, SUMSQ or MEAN over all axes from `axis` on, times coeff (reduction_layer.cpp)."""

    def setup(self, p):
        shape = self.bottom_shapes[0]
        if p.operation not in (_R_SUM, _R_ASUM, _R_SUMSQ, _R_MEAN):
            raise self.error(f"unknown operation {p.operation}; valid: SUM, ASUM, SUMSQ, MEAN")
        axis = canonical_axis(self, p.axis, len(shape))
        self.op, self.dims = p.operation, tuple(range(axis, len(shape)))
        coeff = torch.tensor(p.coeff, dtype=torch.float32)
        if self.op == _R_MEAN:
            coeff = coeff / count(shape, axis)  # Caffe: coeff_ /= dim_ (float)
        self.coeff = float(coeff)
        self.top_shapes = [shape[:axis]]

    def forward(self, x):
        if self.op == _R_ASUM:
            x = x.abs()
        elif self.op == _R_SUMSQ:
            x = x * x
        y = x.sum(self.dims)
        return [y if self.coeff == 1.0 else y * self.coeff]


@register("ArgMax")
class ArgMax(_OneToOne):
    """Indices (and optionally values) of the top_k largest entries, per sample or along `axis`
    (argmax_layer.cpp). Ties go to the larger index (Caffe sorts (value, index) pairs descending).
    No gradient."""

    def setup(self, p):
        shape = self.bottom_shapes[0]
        self.top_k, self.out_max_val = p.top_k, p.out_max_val
        if self.top_k < 1:
            raise self.error(f"top_k must be at least 1, got {self.top_k}")
        self.axis = canonical_axis(self, p.axis, len(shape)) if p.HasField("axis") else None
        if self.axis is not None:
            if self.top_k > shape[self.axis]:
                raise self.error(f"top_k {self.top_k} exceeds axis {self.axis} of size {shape[self.axis]}")
            top = list(shape)
            top[self.axis] = self.top_k
        else:
            if self.top_k > count(shape, 1):
                raise self.error(f"top_k {self.top_k} exceeds the {count(shape, 1)} values per sample")
            top = [1] * max(3, len(shape))
            top[0], top[2] = shape[0], self.top_k
            if self.out_max_val:
                top[1] = 2
        self.top_shapes = [tuple(top)]

    def forward(self, x):
        x = x.detach()
        v = x.movedim(self.axis, -1) if self.axis is not None else x.reshape(x.shape[0], -1)
        d = v.shape[-1]
        if self.top_k == 1:  # max() returns the first maximum: of the flipped row, Caffe's last
            vals, idx = v.flip(-1).max(-1, keepdim=True)
        else:
            vals, idx = torch.sort(v.flip(-1), dim=-1, descending=True, stable=True)
            vals, idx = vals[..., :self.top_k], idx[..., :self.top_k]
        idx = (d - 1 - idx).to(x.dtype)
        if self.axis is not None:
            return [(vals if self.out_max_val else idx).movedim(-1, self.axis)]
        out = torch.stack([idx, vals], 1) if self.out_max_val else idx
        return [out.reshape((x.shape[0],) + self.top_shapes[0][1:])]


@register("Softmax")
class Softmax(_OneToOne):
    """exp(x - max) / sum exp(x - max) along `axis` (softmax_layer.cpp)."""

    def setup(self, p):
        self.axis = canonical_axis(self, p.axis, len(self.bottom_shapes[0]))
        self.top_shapes = [self.bottom_shapes[0]]

    @fp32   # [scale-out] float32 under autocast (layers/precision.py)
    def forward(self, x):
        return [torch.softmax(x, self.axis)]


@register("BatchReindex")
class BatchReindex(Layer):
    """top[i] = bottom0[int(bottom1[i])]; gradients of repeated indices add up; none to the indices
    (batch_reindex_layer.cpp)."""
    exact_bottoms = 2
    exact_tops = 1

    def setup(self, p):
        data, index = self.bottom_shapes
        if len(index) != 1:
            raise self.error(f"bottom 1 (indices) must be 1-D, got shape {index}")
        self.top_shapes = [index + data[1:]]

    def forward(self, x, index):
        idx = index.detach().long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= x.shape[0]):
            raise self.error(f"indices must lie in [0, {x.shape[0]}), got {idx.tolist()}")
        return [x.index_select(0, idx)]


@register("Filter")
class Filter(Layer):
    """Keep the items (axis 0) of bottoms 0..K-1 whose selector (last bottom) is non-zero
    (filter_layer.cpp). Declared top shapes keep all N items, as Caffe's first Reshape does; the
    forward returns only the kept ones. Filtered-out items get zero gradient; the selector none."""
    min_bottoms = 2
    min_tops = 1

    def setup(self, p):
        lp = self.lp
        if len(lp.top) != len(lp.bottom) - 1:
            raise self.error(f"needs one top per filtered bottom ({len(lp.bottom) - 1}), got {len(lp.top)}")
        sel = self.bottom_shapes[-1]
        if len(sel) < 1 or any(d != 1 for d in sel[1:]):
            raise self.error(f"selector (last bottom) must have shape (N, 1, ...), got {sel}")
        for i, s in enumerate(self.bottom_shapes[:-1]):
            if not s or s[0] != sel[0]:
                raise self.error(f"bottom {i} has shape {s}: its first axis must match the selector's {sel[0]}")
        self.top_shapes = list(self.bottom_shapes[:-1])

    def forward(self, *xs):
        keep = torch.nonzero(xs[-1].detach().reshape(-1) != 0).squeeze(1)
        return [x.index_select(0, keep) for x in xs[:-1]]


@register("Split")
class Split(Layer):
    """The bottom to every top; gradients of the tops add up (split_layer.cpp)."""
    exact_bottoms = 1
    min_tops = 1

    def setup(self, p):
        _no_in_place(self)
        self.top_shapes = [self.bottom_shapes[0]] * len(self.lp.top)

    def forward(self, x):
        return [x] * len(self.top_shapes)


@register("Silence")
class Silence(Layer):
    """Consumes its bottoms, produces nothing; their gradient from it is zero (silence_layer.cpp)."""
    min_bottoms = 1
    exact_tops = 0  # top_shapes stays []

    def forward(self, *xs):
        return []
