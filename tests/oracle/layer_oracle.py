"""Oracle side of the per-layer parity harness (runs inside real Caffe, Python 3.9 + pycaffe).

A family script (e.g. tests/oracle/make_layers_vision.py) calls ``case(...)`` once per parameter
setting; each call builds a tiny net: one Input layer per distinct bottom, then the layer under test,
``force_backward: true``; feeds the given bottoms, optionally overwrites the learnable blobs with
seeded random values, runs forward, sets every top diff to seeded random values, runs backward and
saves everything to tests/golden/layers/<case_id>.npz:

  layer (str, the LayerParameter text), phase (str), bottom_names, top_names (str, space separated),
  bottom_<i>, top_<i>, top_diff_<i>, bottom_diff_<i> (only for bottoms Caffe back-propagates to),
  param_<i> (values used), param_after_<i> (after forward, e.g. BatchNorm statistics), param_diff_<i>.
"""
import os
import tempfile

import numpy as np
import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "layers")
caffe.set_mode_cpu()


def case(case_id, layer_text, bottoms, phase="TEST", params="random", seed=0, top_diff_scale=1.0,
         param_values=None, force_backward=True, grad_bottoms=(), loss_weight=False, backward=True):
    """bottoms: list of arrays, one per distinct bottom name in order of first appearance.
    params: "random" (gaussian, seeded), "filler" (keep Caffe's fillers) or "given" (param_values).

    For layers whose backward Caffe aborts under force_backward (labels, selectors, H of InfogainLoss,
    ArgMax...): force_backward=False; bottoms whose indices are in ``grad_bottoms`` then come from a
    Parameter layer (so Caffe back-propagates to them), the others from Input (their diff stays zero);
    loss_weight=True gives the tested layer's tops loss_weight 1 in the net only (not in the stored
    layer text) so that Caffe runs its backward. backward=False stores the forward pass only."""
    rng = np.random.RandomState(seed + 7919)  # differs from the callers' input streams
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(layer_text, lp)
    names = list(dict.fromkeys(lp.bottom))
    assert len(names) == len(bottoms), (case_id, names)
    net_text = "force_backward: true\n" if force_backward else ""
    for i, (n, arr) in enumerate(zip(names, bottoms)):
        dims = " ".join("dim: %d" % d for d in np.shape(arr))
        if i in grad_bottoms:
            net_text += ('layer { name: "in_%s" type: "Parameter" top: "%s" '
                         'parameter_param { shape { %s } } }\n' % (n, n, dims))
        else:
            net_text += 'layer { name: "in_%s" type: "Input" top: "%s" input_param { shape { %s } } }\n' % (
                n, n, dims)
    extra = "\n" + " ".join("loss_weight: 1" for _ in lp.top) if loss_weight else ""
    net_text += "layer {\n%s%s\n}\n" % (layer_text, extra)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(net_text)
    try:
        net = caffe.Net(f.name, caffe.TRAIN if phase == "TRAIN" else caffe.TEST)
    finally:
        os.unlink(f.name)
    out = {"layer": np.array(layer_text), "phase": np.array(phase),
           "bottom_names": np.array(" ".join(names)), "top_names": np.array(" ".join(lp.top))}
    for i, (n, arr) in enumerate(zip(names, bottoms)):
        arr = np.asarray(arr, dtype=np.float32)
        if i in grad_bottoms:
            net.params["in_" + n][0].data[...] = arr
        else:
            net.blobs[n].data[...] = arr
        out["bottom_%d" % i] = arr.copy()
    blobs = net.params[lp.name] if lp.name in net.params else []
    for i, blob in enumerate(blobs):
        if params == "random":
            blob.data[...] = np.asarray(rng.randn(*blob.data.shape), dtype=np.float32)
        elif params == "given":
            blob.data[...] = param_values[i]
        out["param_%d" % i] = blob.data.copy()
    net.forward()
    for i, blob in enumerate(blobs):
        out["param_after_%d" % i] = blob.data.copy()
    for i, t in enumerate(lp.top):
        out["top_%d" % i] = net.blobs[t].data.copy()
    if backward:
        for i, t in enumerate(lp.top):
            d = np.asarray(rng.randn(*net.blobs[t].diff.shape) * top_diff_scale).astype(np.float32)
            net.blobs[t].diff[...] = d
            out["top_diff_%d" % i] = d
        net.backward()
        # Caffe leaves a bottom's diff untouched (zero) where it does not propagate (labels): the test
        # names such bottoms (no_grad_bottoms in tests/layer_harness.py) and skips them.
        for i, n in enumerate(names):
            out["bottom_diff_%d" % i] = net.blobs[n].diff.copy()
        for i, blob in enumerate(blobs):
            out["param_diff_%d" % i] = blob.diff.copy()
    os.makedirs(GOLDEN, exist_ok=True)
    np.savez(os.path.join(GOLDEN, case_id + ".npz"), **out)
    return out
