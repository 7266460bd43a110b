"""NetParameter-level steps of Caffe's Net::Init, before any layer is built (src/caffe/net.cpp,
src/caffe/util/insert_splits.cpp). Legacy nets (V0/V1, input/input_dim/input_shape...) arrive upgraded by
protos.io.read_net (protos/upgrade.py), the one upgrade path:

* ``make_state``: the NetState of a net built for a phase/level/stages (Net(file, phase, level, stages)
  overwrites phase and level and appends the stages to the file's own state),
* ``state_meets_rule`` / ``filter_net``: include/exclude selection (Net::StateMeetsRule, Net::FilterNet),
* ``insert_splits``: Split layers after every blob instance read more than once (InsertSplits),
* ``build_schedule``: the layers built in file order and the forward schedule, one public ``Step``
  per layer (Net::Init's per-layer loop: AppendTop/AppendBottom, loss weights, the backward analysis).
"""
import collections
import dataclasses

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

#: the top name of a loss layer given no top (Caffe's AutoTopBlobs)
AUTO_TOP = "(automatic)"

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


def phase_value(phase):
    """'TRAIN'/'TEST' (any case) or the caffe_pb2 enum value -> the enum value."""
    if isinstance(phase, str) and phase.upper() in PHASES:
        return PHASES[phase.upper()]
    if phase in (caffe_pb2.TRAIN, caffe_pb2.TEST) and not isinstance(phase, str):
        return int(phase)
    raise NetError(f"unknown phase {phase!r}; valid: TRAIN, TEST")


def phase_name(value):
    return "TRAIN" if value == caffe_pb2.TRAIN else "TEST"


def make_state(net_param, phase, level=0, stages=()):
    state = caffe_pb2.NetState()
    state.CopyFrom(net_param.state)
    state.phase = phase_value(phase)
    state.level = int(level)
    if isinstance(stages, str):
        stages = (stages,)
    state.stage.extend(stages)
    return state


def state_meets_rule(state, rule):
    """Net::StateMeetsRule: every field present in the rule must hold for the state."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def layer_included(state, lp):
    """Net::FilterNet for one layer: include rules OR-ed, exclude rules OR-ed, never both."""
    if lp.include and lp.exclude:
        raise NetError(f"layer '{lp.name}': specify either include rules or exclude rules, not both")
    if lp.include:
        return any(state_meets_rule(state, r) for r in lp.include)
    return not any(state_meets_rule(state, r) for r in lp.exclude)


def filter_net(net_param, state):
    """A copy of net_param keeping only the layers the state selects."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    for lp in net_param.layer:
        if layer_included(state, lp):
            out.layer.add().CopyFrom(lp)
    return out


def split_layer_name(layer_name, blob_name, top_index):
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name, blob_name, top_index, split_index):
    return f"{split_layer_name(layer_name, blob_name, top_index)}_{split_index}"


def insert_splits(net_param):
    """Caffe's InsertSplits: returns a copy in which every (layer, top) instance consumed more than once
    (counting an explicit non-zero loss_weight as one consumer) feeds a Split layer whose tops are
    handed to the consumers in order. Also raises the "unknown bottom" error, listing the blobs
    available at that point."""
    layers = list(net_param.layer)
    last_top = {}          # blob name -> (layer idx, top idx) of its latest producer
    source = {}            # (layer idx, bottom idx) -> (layer idx, top idx)
    count = {}             # (layer idx, top idx) -> number of consumers
    loss_w = {}
    for i, lp in enumerate(layers):
        for j, b in enumerate(lp.bottom):
            if b not in last_top:
                avail = ", ".join(last_top) or "none"
                raise NetError(f"layer '{lp.name}' ({lp.type}): unknown bottom blob '{b}' (bottom {j}); "
                               f"blobs available at this point: {avail}")
            source[(i, j)] = last_top[b]
            count[last_top[b]] = count.get(last_top[b], 0) + 1
        for j, t in enumerate(lp.top):
            last_top[t] = (i, j)
        for j in range(min(len(lp.loss_weight), len(lp.top))):
            if lp.loss_weight[j] != 0:
                loss_w[(i, j)] = lp.loss_weight[j]
                count[(i, j)] = count.get((i, j), 0) + 1
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    next_split = {}
    for i, lp in enumerate(layers):
        new = out.layer.add()
        new.CopyFrom(lp)
        for j, b in enumerate(lp.bottom):
            src = source[(i, j)]
            if count.get(src, 0) > 1:
                k = next_split.get(src, 0)
                next_split[src] = k + 1
                new.bottom[j] = split_blob_name(layers[src[0]].name, b, src[1], k)
        for j, t in enumerate(lp.top):
            n = count.get((i, j), 0)
            if n <= 1:
                continue
            w = loss_w.get((i, j), 0.0)
            split = caffe_pb2.LayerParameter(name=split_layer_name(lp.name, t, j), type="Split", bottom=[t])
            split.top.extend(split_blob_name(lp.name, t, j, k) for k in range(n))
            if w:
                new.ClearField("loss_weight")
                split.loss_weight.append(w)
                split.loss_weight.extend([0.0] * (n - 1))
                next_split[(i, j)] = 1
            out.layer.add().CopyFrom(split)
    return out


@dataclasses.dataclass(eq=False)
class Step:
    """One layer of the forward schedule (Caffe's per-layer vectors in Net: layers_, bottom_vecs_,
    top_vecs_, bottom_need_backward_, the loss weights). Built once by build_schedule; ``layer`` and
    ``key`` change only when the Net sets the layer up again for new bottom shapes (Reshape)."""
    index: int
    name: str
    type: str
    layer: object = dataclasses.field(repr=False)
    bottoms: list
    tops: list
    #: (top index, weight) for every top with a non-zero loss weight
    loss: tuple = ()
    #: bottom indices with ``propagate_down: false`` (detached before the call)
    detach: tuple = ()
    #: top indices j written in place over bottom j (the same blob name)
    in_place: tuple = ()
    #: a data layer without bottoms (its tops may be fed); feeds: an Input layer (they must be)
    source: bool = False
    feeds: bool = False
    #: none of its tops reaches a loss (Net::Init's backward analysis): runs without autograd
    grad_free: bool = False
    #: the bottom shapes the layer is set up for (None: it copes with any shapes itself)
    key: tuple = None
    #: the layer set up for each bottom-shape key seen so far
    variants: dict = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass
class Schedule:
    """What build_schedule returns: the steps and the blob bookkeeping of Net::Init."""
    steps: list
    blob_shapes: collections.OrderedDict    # blob name -> shape, in creation order
    outputs: list                           # tops no layer consumes, std::set order (Caffe's net outputs)
    inputs: list                            # the tops of Input layers
    blob_loss_weights: dict                 # top -> non-zero loss weight
    saved_params: list                      # the LayerParameter each layer holds (Net::ToProto)


def build_schedule(net_param, phase, class_for, force_backward=False):
    """Build the layers of a filtered, split-inserted NetParameter in file order and their Steps.
    ``phase``: the net's phase value (layers without their own get it); ``class_for(lp)``: the layer
    class for a LayerParameter. Checks propagate_down and loss_weight counts, top shapes and top
    sources as Net::Init does."""
    shapes = collections.OrderedDict()
    available = set()                    # Caffe's available_blobs (for net outputs)
    steps, inputs, loss_weights, saved = [], [], {}, []
    for lp in net_param.layer:
        lp = _copy(lp)
        if not lp.HasField("phase"):
            lp.phase = phase
        cls = class_for(lp)
        where = f"layer '{lp.name}' ({lp.type})"
        if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
            raise NetError(f"{where}: propagate_down needs one entry per bottom ({len(lp.bottom)}), got "
                           f"{len(lp.propagate_down)}")
        build_lp = lp
        if not lp.top and getattr(cls, "is_loss", False):   # Caffe's AutoTopBlobs for loss layers
            build_lp = _copy(lp)
            build_lp.top.append(AUTO_TOP)
        layer = cls(build_lp, [shapes[b] for b in lp.bottom], phase_name(lp.phase))
        layer.apply_fillers()    # right after the layer is built: Caffe's random stream order
        tops = list(build_lp.top)
        if len(layer.top_shapes) != len(tops):
            raise NetError(f"{where}: computed {len(layer.top_shapes)} top shape(s) for {len(tops)} top(s)")
        weights = list(lp.loss_weight)
        if not weights and getattr(layer, "is_loss", False):
            weights = [1.0]
            lp.loss_weight.append(1.0)
        if weights and len(weights) != len(tops):
            raise NetError(f"{where}: loss_weight must be given once per top ({len(tops)}), got {len(weights)}")
        for b in lp.bottom:
            available.discard(b)
        in_place = []
        for j, t in enumerate(tops):
            if j < len(lp.bottom) and lp.bottom[j] == t:
                in_place.append(j)
            if t == AUTO_TOP:
                continue
            if t in shapes and j not in in_place:
                raise NetError(f"{where}: top blob '{t}' produced by multiple sources")
            if j in in_place and tuple(layer.top_shapes[j]) != tuple(shapes[t]):
                raise NetError(f"{where}: in-place top '{t}' has shape {tuple(layer.top_shapes[j])}, bottom has "
                               f"{tuple(shapes[t])}")
            shapes[t] = tuple(layer.top_shapes[j])
            available.add(t)
        loss = tuple((j, float(w)) for j, w in enumerate(weights) if w != 0)
        loss_weights.update((tops[j], w) for j, w in loss if tops[j] != AUTO_TOP)
        if getattr(layer, "feeds_inputs", False):
            inputs.extend(tops)
        saved.append(lp)
        steps.append(_step(len(steps), lp, layer, tops, loss, in_place))
    mark_grad_free(steps, force_backward)
    return Schedule(steps, shapes, sorted(available), inputs, loss_weights, saved)


def _step(index, lp, layer, tops, loss, in_place):
    bottoms = list(lp.bottom)
    source = not bottoms and getattr(layer, "is_data", False)
    dynamic = getattr(layer, "dynamic_shapes", False) or not bottoms
    key = None if dynamic else tuple(tuple(b) for b in layer.bottom_shapes)
    return Step(index, lp.name, lp.type, layer, bottoms, tops, loss=loss,
                detach=tuple(i for i, p in enumerate(lp.propagate_down) if not p), in_place=tuple(in_place),
                source=source, feeds=source and getattr(layer, "feeds_inputs", False), key=key,
                variants={key: layer})


def mark_grad_free(steps, force_backward):
    """Caffe's backward analysis (Net::Init): a layer none of whose tops reaches a loss does no
    backward. When the net has a loss, such layers (Accuracy, extra outputs) run without autograd.
    A net without loss keeps autograd everywhere, so it can be used as an ordinary module."""
    has_loss = any(s.loss for s in steps)
    under_loss = set()
    for s in reversed(steps):
        contributes = bool(s.loss) or any(t in under_loss for t in s.tops)
        s.grad_free = has_loss and not contributes and not force_backward
        if contributes:
            under_loss.update(b for i, b in enumerate(s.bottoms) if i not in s.detach)


def _copy(lp):
    out = caffe_pb2.LayerParameter()
    out.CopyFrom(lp)
    return out
