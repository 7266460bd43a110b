"""Our side of the per-layer parity harness: replay a golden case written by tests/oracle/layer_oracle.py.

    from layer_harness import check_case
    def test_conv_dilated(): check_case("conv_dilated")

builds the layer from the stored LayerParameter text with netspec's registry, loads the blob values
Caffe used, runs forward, back-propagates Caffe's random top diffs with autograd, and compares tops,
bottom diffs and param diffs (and blob values after forward) within rtol/atol.
"""
import os

import numpy as np
import torch
from google.protobuf import text_format

from recaffe.protos import caffe_pb2
from recaffe.netspec.net.layers import layer_class

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "layers")


def load_case(case_id):
    with np.load(os.path.join(GOLDEN, case_id + ".npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def build_layer(case):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(str(case["layer"]), lp)
    names = str(case["bottom_names"]).split()
    shapes = {n: case["bottom_%d" % i].shape for i, n in enumerate(names)}
    layer = layer_class(lp.type, lp.name)(lp, [shapes[b] for b in lp.bottom], str(case["phase"])).apply_fillers()
    with torch.no_grad():
        for i, p in enumerate(layer.blobs):
            p.copy_(torch.from_numpy(case["param_%d" % i]))
    return lp, layer, names


def assert_close(ours, theirs, what, rtol, atol):
    ours = ours.detach().cpu().numpy() if torch.is_tensor(ours) else np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != Caffe's {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


def check_case(case_id, rtol=1e-5, atol=1e-6, backward=True, no_grad_bottoms=(), dtype=torch.float32):
    """Replay one golden case. no_grad_bottoms: bottom indices Caffe does not back-propagate to
    (labels); their diffs are not compared."""
    case = load_case(case_id)
    lp, layer, names = build_layer(case)
    layer = layer.to(dtype)
    inputs = {}
    for i, n in enumerate(names):
        t = torch.from_numpy(case["bottom_%d" % i]).to(dtype)
        if backward and i not in no_grad_bottoms:
            t.requires_grad_(True)
        inputs[n] = t
    tops = layer(*[inputs[b] for b in lp.bottom])
    assert len(tops) == len(lp.top), f"{case_id}: {len(tops)} tops, Caffe has {len(lp.top)}"
    for i, t in enumerate(tops):
        assert_close(t, case["top_%d" % i], f"{case_id}: top {i} ({lp.top[i]})", rtol, atol)
    for i, p in enumerate(layer.blobs):
        assert_close(p, case["param_after_%d" % i], f"{case_id}: blob {i} after forward", rtol, atol)
    if not backward:
        return layer, tops
    loss = sum((t.to(dtype) * torch.from_numpy(case["top_diff_%d" % i]).to(dtype)).sum()
               for i, t in enumerate(tops) if t.requires_grad)
    if not torch.is_tensor(loss):
        return layer, tops
    loss.backward()
    for i, n in enumerate(names):
        if i in no_grad_bottoms:
            continue
        g = inputs[n].grad
        g = torch.zeros_like(inputs[n]) if g is None else g
        assert_close(g, case["bottom_diff_%d" % i], f"{case_id}: bottom diff {i} ({n})", rtol, atol)
    for i, p in enumerate(layer.blobs):
        if f"param_diff_{i}" not in case:
            continue
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        assert_close(g, case["param_diff_%d" % i], f"{case_id}: param diff {i}", rtol, atol)
    return layer, tops


def assert_build_error(build, text, shapes, what):
    """Building the layer of ``text`` fails with a NetError naming it and containing ``what``."""
    import pytest
    from recaffe.protos.errors import NetError
    with pytest.raises(NetError) as e:
        build(text, shapes)
    name = text.split('"')[1]
    assert f"layer '{name}'" in str(e.value) and what in str(e.value)
