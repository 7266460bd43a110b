"""Parameter wiring of a Net (src/caffe/net.cpp: Net::AppendParam, ShareWeights, ShareTrainedLayersWith).

* ParamSpec entries apply positionally to a layer's blobs; more entries than blobs is an error.
* A named ParamSpec seen before makes the layer a *sharer*: its blob becomes the owner's
  ``nn.Parameter`` (same object, so gradients of all users accumulate in one ``.grad``). STRICT
  (default) needs identical shapes, PERMISSIVE equal counts. lr_mult/decay_mult: the owner's; a sharer
  that sets one the owner left unset supplies it; both set and different is an error.
* Learnable params = owners, in layer x blob order (the solver's history layout). A blob whose users
  all have lr_mult 0 gets ``requires_grad=False`` unless the net has ``force_backward``.
* State dict keys are ``"<layer>.<blob index>"`` via hooks (see register_state_dict_hooks).
"""
import re

from protos import caffe_pb2
from protos.errors import NetError

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


def _share(net, owner, layer, lp, bi, spec):
    src = net.layers[owner.layer_index].blobs[owner.blob_index]
    mine = layer.blobs[bi]
    where = f"layer '{lp.name}' ({lp.type}): shared param '{spec.name}' (blob {bi})"
    if tuple(src.shape) != tuple(mine.shape):
        if spec.share_mode == _STRICT:
            raise NetError(f"{where} has shape {tuple(mine.shape)}, owner has {tuple(src.shape)} "
                           f"(share_mode STRICT needs identical shapes)")
        if src.numel() != mine.numel():
            raise NetError(f"{where} has count {mine.numel()}, owner has {src.numel()} "
                           f"(share_mode PERMISSIVE needs equal counts)")
        raise NetError(f"{where}: PERMISSIVE sharing between different shapes {tuple(mine.shape)} and "
                       f"{tuple(src.shape)} is not supported")
    for field, has in (("lr_mult", "has_lr"), ("decay_mult", "has_decay")):
        if spec.HasField(field):
            if getattr(owner, has):
                if getattr(owner, field) != getattr(spec, field):
                    raise NetError(f"{where} has mismatched {field} ({getattr(spec, field)} vs the owner's "
                                   f"{getattr(owner, field)})")
            else:
                setattr(owner, field, getattr(spec, field))
                setattr(owner, has, True)
    owner.need_grad = owner.need_grad or spec.lr_mult != 0
    layer.blobs[bi] = src


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
            replace.setdefault(id(d), s)
    for layer in net.layers:
        for i, p in enumerate(layer.blobs):
            if id(p) in replace:
                layer.blobs[i] = replace[id(p)]


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
