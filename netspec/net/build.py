"""NetParameter-level steps of Caffe's Net::Init, before any layer is built (src/caffe/net.cpp,
src/caffe/util/insert_splits.cpp). Legacy nets (V0/V1, input/input_dim/input_shape...) arrive upgraded by
protos.io.read_net (protos/upgrade.py), the one upgrade path:

* ``make_state``: the NetState of a net built for a phase/level/stages (Net(file, phase, level, stages)
  overwrites phase and level and appends the stages to the file's own state),
* ``state_meets_rule`` / ``filter_net``: include/exclude selection (Net::StateMeetsRule, Net::FilterNet),
* ``insert_splits``: Split layers after every blob instance read more than once (InsertSplits).
"""
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

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
