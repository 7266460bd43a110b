"""Caffe's Net::BackwardFromTo for the pycaffe facade: layer by layer, from the diffs the top blobs hold.

Caffe's backward does not start from a loss: each layer in [end, start] (reverse order) reads its tops'
diffs (a loss top's diff holds its loss weight; any diff a script set by hand stays what it set) and its
bottoms' data, overwrites its bottoms' diffs and adds into its parameters' diffs (src/caffe/net.cpp
BackwardFromTo, layer.hpp Backward). Which layers and bottoms take part is fixed when the net is built
(Net::Init; caffe-spec.md 2.7): see ``need_backward``.

Each layer's backward is autograd's over that layer alone: ``torch.autograd.grad(tops, bottoms +
params, top diffs)``. The tops and bottoms are the tensors the layer saw in the last forward (recorded
by the facade's forward hooks), so stochastic or in-place layers (Dropout masks, BatchNorm batch
statistics, a ReLU over a blob it then overwrote) differentiate the forward that ran, as Caffe's stored
state does. A layer with no usable record (no forward since the net was built, a layer run fused with
its neighbour, weights shared with an earlier layer) is run again on its inputs: the values it saw in
the last forward when they can be had, else the blobs' current data (Caffe's memory).
"""
import torch

from recaffe.netspec.net.net import AUTO_TOP
from recaffe.netspec.net.params import raw_blob
from recaffe.protos.errors import NetError


def _allow_force_backward(layer, i):
    """Layer::AllowForceBackward: loss layers keep their label bottom (index 1) out of force_backward;
    EuclideanLoss allows both bottoms, ContrastiveLoss forbids its third."""
    if not getattr(layer, "is_loss", False) or layer.type == "EuclideanLoss":
        return True
    return i != (2 if layer.type == "ContrastiveLoss" else 1)


def _params(layer):
    """The distinct parameters (the owners', for sharers) behind a layer's blobs."""
    out, seen = [], set()
    for i in range(len(layer.blobs)):
        p = raw_blob(layer, i)
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def need_backward(tnet):
    """(layer_need, bottom_need) as Net::Init decides them: a layer needs backward when a bottom blob
    does or one of its params learns (lr_mult != 0); a bottom needs it when its blob does, unless
    propagate_down says otherwise; then, from the last layer back, a layer that does not feed a loss
    (or whose tops no consumer propagates into) does none. force_backward: every layer, every bottom
    its layer allows."""
    steps = tnet.steps
    blob_need, layer_need, bottom_need = {}, [], []
    for k, s in enumerate(steps):
        pd = list(tnet.saved_params[k].propagate_down)
        need = any(blob_need.get(b, False) for b in s.bottoms) or any(p.requires_grad for p in _params(s.layer))
        bottom_need.append([bool(pd[i]) if pd else blob_need.get(b, False) for i, b in enumerate(s.bottoms)])
        layer_need.append(need)
        if need:
            for t in s.tops:
                blob_need[t] = True
    under_loss, skip = set(), set()
    for k in range(len(steps) - 1, -1, -1):
        s = steps[k]
        contributes = bool(s.loss) or any(t in under_loss for t in s.tops)
        if layer_need[k] and s.tops and all(t in skip for t in s.tops):
            layer_need[k] = False
            bottom_need[k] = [False] * len(s.bottoms)
        if not contributes:
            layer_need[k] = False
        for i, b in enumerate(s.bottoms):
            if contributes:
                under_loss.add(b)
            else:
                bottom_need[k][i] = False
            if not bottom_need[k][i]:
                skip.add(b)
    if tnet.force_backward:
        for k, s in enumerate(steps):
            layer_need[k] = True
            bottom_need[k] = [n or _allow_force_backward(s.layer, i) for i, n in enumerate(bottom_need[k])]
    return layer_need, bottom_need


def _producer(steps, name, k):
    """The last step before k that writes blob ``name`` (its in-place chain included)."""
    for p in range(k - 1, -1, -1):
        if name in steps[p].tops:
            return p
    return None


class _Inputs:
    """What layer k saw in the last forward, per bottom (memoised over one backward call)."""

    def __init__(self, net):
        self.net, self.cache = net, {}

    def outs(self, p):
        """The tops layer p produced in the last forward: recorded, or recomputed without autograd."""
        net = self.net
        rec = net._record(p)
        if rec is not None:
            return rec[1]
        if p not in self.cache:
            ins = self.values(p)
            with net._replaying(), torch.no_grad():
                self.cache[p] = list(net.torch_net.layers[p](*ins))
        return self.cache[p]

    def values(self, k):
        net = self.net
        steps = net.torch_net.steps
        rec = net._record(k)
        if rec is not None:
            return list(rec[0])
        out = []
        for b in steps[k].bottoms:
            p = _producer(steps, b, k)
            if p is not None and net._ran.get(p) is not None and net._ran.get(p) == net._ran.get(k):
                out.append(self.outs(p)[steps[p].tops.index(b)])
            else:
                out.append(net._blob_tensor(b))     # no forward ran it: the blob's memory, as Caffe
        return out


def _top_diffs(net, k, outs):
    """(outs, grads): the tops that carry a gradient and the diffs their blobs hold (a loss without a
    named top: its loss weight)."""
    s = net.torch_net.steps[k]
    weights = dict(s.loss)
    pairs = []
    for j, t in enumerate(s.tops):
        if j >= len(outs) or not outs[j].requires_grad:
            continue
        if t == AUTO_TOP:
            grad = torch.full(outs[j].shape, float(weights.get(j, 0.0)))
        else:
            d = net._blob_diff(t)
            if d.numel() != outs[j].numel():
                raise NetError(f"layer '{s.layer.name}': top '{t}' holds {tuple(d.shape)} diffs for data of shape "
                               f"{tuple(outs[j].shape)}; run forward after reshaping")
            grad = d.reshape(outs[j].shape).clone()
        pairs.append((outs[j], grad))
    return [o for o, _ in pairs], [g for _, g in pairs]


def _shared_with_earlier(net, k, params):
    ids = {id(p) for p in params}
    return any(id(p) in ids for i in range(k) for p in _params(net.torch_net.layers[i]))


def backward_layer(net, k, bottom_need, inputs):
    """Layer k's Backward: overwrite its needed bottoms' diffs, add into its params' diffs."""
    tnet = net.torch_net
    s, layer = tnet.steps[k], tnet.layers[k]
    want = [i for i, n in enumerate(bottom_need) if n]
    params = [p for p in _params(layer) if p.requires_grad]
    if not want and not params:
        return
    rec = net._record(k)
    usable = (rec is not None and all(rec[0][i].requires_grad for i in want)
              and not (params and _shared_with_earlier(net, k, params)))
    if usable:
        ins, outs = list(rec[0]), rec[1]
    else:
        ins = [v.detach().clone().requires_grad_(i in want) for i, v in enumerate(inputs.values(k))]
        with net._replaying(), torch.enable_grad():
            outs = list(layer(*ins))
    roots, grads = _top_diffs(net, k, outs)
    if not roots:
        return
    targets = [ins[i] for i in want] + params
    got = torch.autograd.grad(roots, targets, grads, retain_graph=True, allow_unused=True)
    for i, g in zip(want, got[:len(want)]):
        if g is not None:
            d = net._blob_diff(s.bottoms[i])
            d.copy_(g.reshape(d.shape))
    for p, g in zip(params, got[len(want):]):
        if g is None:
            continue
        g = g.detach().reshape(p.shape)
        if p.grad is None or tuple(p.grad.shape) != tuple(p.shape):
            p.grad = g.clone()
        else:
            p.grad.add_(g)


def run(net, i_start, i_end):
    """BackwardFromTo(i_start, i_end) with the net's before/after_backward callbacks."""
    layer_need, bottom_need = net._need_backward()
    inputs = _Inputs(net)
    for k in range(i_start, i_end - 1, -1):
        for fn in net._callbacks["before_backward"]:
            fn(k)
        if layer_need[k]:
            backward_layer(net, k, bottom_need[k], inputs)
        for fn in net._callbacks["after_backward"]:
            fn(k)
