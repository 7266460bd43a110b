"""Parameter wiring of a Net (src/caffe/net.cpp: Net::AppendParam, ShareWeights, ShareTrainedLayersWith).

* ParamSpec entries apply positionally to a layer's blobs; more entries than blobs is an error.
* A named ParamSpec seen before makes the layer a *sharer*: its blob becomes the owner's
  ``nn.Parameter`` (same object, so gradients of all users accumulate in one ``.grad``). STRICT
  (default) needs identical shapes, PERMISSIVE equal counts (AppendParam's checks). A PERMISSIVE sharer
  of another shape sees the owner's storage in its own shape, as Caffe's Blob::ShareData/ShareDiff do
  (the same memory read row-major, not a transpose): its layer's ``blobs`` becomes a ``ViewedBlobs``
  that hands out ``owner.view(shape)`` at each access, so autograd sums both users' gradients into the
  owner's ``.grad``. lr_mult/decay_mult: the owner's; a sharer that sets one the owner left unset
  supplies it; both set and different is an error.
* Learnable params = owners, in layer x blob order (the solver's history layout). A blob whose users
  all have lr_mult 0 gets ``requires_grad=False`` unless the net has ``force_backward``.
* State dict keys are ``"<layer>.<blob index>"`` via hooks (see register_state_dict_hooks).
"""
import re

from torch import nn

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

_STRICT = caffe_pb2.ParamSpec.STRICT


class _Learnable:
    __slots__ = ("layer_index", "blob_index", "lr_mult", "decay_mult", "has_lr", "has_decay", "need_grad")

    def __init__(self, li, bi, spec):
        self.layer_index, self.blob_index = li, bi
        self.lr_mult, self.decay_mult = spec.lr_mult, spec.decay_mult
        self.has_lr, self.has_decay = spec.HasField("lr_mult"), spec.HasField("decay_mult")
        self.need_grad = spec.lr_mult != 0


def wire_params(net):
    owners = {}
    net._learnable = []
    for li, (layer, lp) in enumerate(zip(net.layers, net.saved_params)):
        nblobs = len(layer.blobs)
        if len(lp.param) > nblobs:
            raise NetError(f"layer '{lp.name}' ({lp.type}): {len(lp.param)} param specs for {nblobs} blob(s)")
        for bi in range(nblobs):
            spec = lp.param[bi] if bi < len(lp.param) else caffe_pb2.ParamSpec()
            if spec.name and spec.name in owners:
                _share(net, owners[spec.name], layer, lp, bi, spec)
                continue
            entry = _Learnable(li, bi, spec)
            net._learnable.append(entry)
            if spec.name:
                owners[spec.name] = entry
    for e in net._learnable:
        net.layers[e.layer_index].blobs[e.blob_index].requires_grad_(bool(e.need_grad or net.force_backward))


def _dims(shape):
    shape = tuple(int(d) for d in shape)
    n = 1
    for d in shape:
        n *= d
    return f"{shape} (count {n})"


def _share(net, owner, layer, lp, bi, spec):
    src = net.layers[owner.layer_index].blobs[owner.blob_index]
    mine = layer.blobs[bi]
    owner_name = net.layer_names[owner.layer_index]
    where = f"layer '{lp.name}' ({lp.type}): cannot share param '{spec.name}' (blob {bi}) owned by layer " \
            f"'{owner_name}' (blob {owner.blob_index})"
    shape = tuple(mine.shape)
    if shape != tuple(src.shape):
        if spec.share_mode == _STRICT:
            raise NetError(f"{where}: shape mismatch; sharing layer expects shape {_dims(shape)}, owner has "
                           f"{_dims(src.shape)}; share_mode STRICT needs identical shapes (PERMISSIVE: equal "
                           f"counts)")
        if src.numel() != mine.numel():
            raise NetError(f"{where}: count mismatch; sharing layer shape {tuple(mine.shape)} has count "
                           f"{mine.numel()}, owner has {_dims(src.shape)}; share_mode PERMISSIVE needs equal "
                           f"counts")
    for field, has in (("lr_mult", "has_lr"), ("decay_mult", "has_decay")):
        if spec.HasField(field):
            if getattr(owner, has):
                if getattr(owner, field) != getattr(spec, field):
                    raise NetError(f"layer '{lp.name}' ({lp.type}): shared param '{spec.name}' (blob {bi}) has "
                                   f"mismatched {field} ({getattr(spec, field)} vs the owner's "
                                   f"{getattr(owner, field)})")
            else:
                setattr(owner, field, getattr(spec, field))
                setattr(owner, has, True)
    owner.need_grad = owner.need_grad or spec.lr_mult != 0
    set_blob(layer, bi, raw_blob(net.layers[owner.layer_index], owner.blob_index), shape)


class ViewedBlobs(nn.ParameterList):
    """A layer's ``blobs`` where some entries are another layer's parameter seen in this layer's shape
    (PERMISSIVE sharing of equal counts, Blob::ShareData + ShareDiff). ``blobs[i]`` returns
    ``param.view(shape)`` (a fresh autograd view at every access, so gradients flow into the owner);
    ``raw(i)`` the registered parameter itself."""

    def __init__(self, params=()):
        super().__init__()
        self.shapes = {}
        for p in params:
            self.append(p)

    def raw(self, idx):
        return super().__getitem__(idx)

    def __getitem__(self, idx):
        p = super().__getitem__(idx)
        if isinstance(idx, slice):
            return p
        shape = self.shapes.get(int(self._get_abs_string_index(idx)))
        return p if shape is None or tuple(p.shape) == shape else p.view(shape)

    def __setitem__(self, idx, param):
        self.shapes.pop(int(self._get_abs_string_index(idx)), None)
        super().__setitem__(idx, param)


def raw_blob(layer, i):
    """The nn.Parameter behind ``layer.blobs[i]`` (the owner's, for a PERMISSIVE sharer's view)."""
    blobs = layer.blobs
    return blobs.raw(i) if isinstance(blobs, ViewedBlobs) else blobs[i]


def set_blob(layer, i, param, shape):
    """Make ``layer.blobs[i]`` the parameter ``param`` seen in ``shape`` (a view when the shapes differ)."""
    shape = tuple(int(d) for d in shape)
    blobs = layer.blobs
    if tuple(param.shape) == shape:
        blobs[i] = param
        return
    if not isinstance(blobs, ViewedBlobs):
        blobs = ViewedBlobs(list(blobs))
        layer.blobs = blobs
    blobs[i] = param
    blobs.shapes[i] = shape


def learnable_params(net):
    """[(nn.Parameter, lr_mult, decay_mult, layer_name, blob_index)] for the owner params."""
    return [(net.layers[e.layer_index].blobs[e.blob_index], e.lr_mult, e.decay_mult,
             net.layer_names[e.layer_index], e.blob_index) for e in net._learnable]


def share_with(net, other):
    """ShareTrainedLayersWith: every layer of ``other`` with a same-named layer here lends its blobs
    (blob counts and shapes must match). Params shared inside ``net`` follow their owner."""
    replace = {}
    for name, src_layer in zip(other.layer_names, other.layers):
        if name not in net._index or not len(src_layer.blobs):
            continue
        dst = net.layers[net._index[name]]
        if len(dst.blobs) != len(src_layer.blobs):
            raise NetError(f"share_with: layer '{name}' has {len(dst.blobs)} blob(s) here and "
                           f"{len(src_layer.blobs)} in the source net")
        for i, (d, s) in enumerate(zip(dst.blobs, src_layer.blobs)):
            if tuple(d.shape) != tuple(s.shape):
                raise NetError(f"share_with: layer '{name}' blob {i} has shape {tuple(d.shape)} here and "
                               f"{tuple(s.shape)} in the source net")
            replace.setdefault(id(raw_blob(dst, i)), raw_blob(src_layer, i))
    for layer in net.layers:
        for i in range(len(layer.blobs)):
            p = raw_blob(layer, i)
            if id(p) in replace:
                set_blob(layer, i, replace[id(p)], layer.blobs[i].shape)


_KEY = re.compile(r"^layers\.(\d+)\.(.*)$")


def register_state_dict_hooks(net):
    net.register_state_dict_post_hook(_to_caffe_keys)
    net.register_load_state_dict_pre_hook(_from_caffe_keys)


def _to_caffe_keys(net, state_dict, prefix, local_metadata):
    items = [(k, v) for k, v in state_dict.items() if k.startswith(prefix + "layers.")]
    for k, v in items:
        del state_dict[k]
    for k, v in items:
        m = _KEY.match(k[len(prefix):])
        rest = m.group(2)
        if rest.startswith("blobs."):
            rest = rest[len("blobs."):]
        state_dict[f"{prefix}{net.layer_names[int(m.group(1))]}.{rest}"] = v


def _from_caffe_keys(net, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                     error_msgs):
    for k in [k for k in state_dict if k.startswith(prefix)]:
        key = k[len(prefix):]
        cut = [i for i, c in enumerate(key) if c == "." and key[:i] in net._index]
        if not cut:
            continue
        i = max(cut)
        li, rest = net._index[key[:i]], key[i + 1:]
        if rest.isdigit():
            rest = "blobs." + rest
        state_dict[f"{prefix}layers.{li}.{rest}"] = state_dict.pop(k)
