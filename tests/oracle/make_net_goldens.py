"""Whole-net parity goldens: run inside real Caffe (re-runnable):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_net_goldens.py [net id ...]

For each net of net_recipe.NETS (deploy nets of /work/shared/corpus made of standard layers, copied
to tests/golden/net/models): set its
input to the small shape listed there, build it in TEST with caffe.Net, overwrite every parameter blob
with the seed-reproducible recipe of net_recipe.py (weights are not stored: VGG16's fc6 alone is
400 MB), feed the recipe input, run forward and save tests/golden/net/<id>.npz with:
  input_shape, checksum (recipe check), output_names (space separated), out_<i> (net outputs in
  Caffe's order), pre_names / pre_<i> (the bottom of each output made by a Softmax: the logits,
  which a saturated softmax would hide), layer_names / param_shapes (for diagnosis).
"""
import os
import sys
import tempfile

import numpy as np
import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import net_recipe  # noqa: E402

GOLDEN = os.path.join(HERE, "..", "golden", "net")
MODELS = os.path.join(GOLDEN, "models")
caffe.set_mode_cpu()


def make(net_id):
    path, shape, seed = net_recipe.NETS[net_id]
    param = caffe_pb2.NetParameter()
    with open(os.path.join(MODELS, path)) as f:
        text_format.Merge(f.read(), param)
    net_recipe.set_input_shape(param, shape)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text_format.MessageToString(param))
    try:
        net = caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)
    names = list(net._layer_names)
    layers = [(net.layers[i].type, [b.data.shape for b in net.layers[i].blobs])
              for i in range(len(names)) if len(net.layers[i].blobs)]
    weights = net_recipe.net_weights(seed, layers)
    k = 0
    for i in range(len(names)):
        if len(net.layers[i].blobs):
            for b, v in zip(net.layers[i].blobs, weights[k]):
                b.data[...] = v
            k += 1
    assert len(net.inputs) == 1, net.inputs
    data = net_recipe.net_input(seed, shape)
    out = net.forward(**{net.inputs[0]: data})
    res = {"input_shape": np.array(shape), "checksum": np.array(net_recipe.checksum(weights)),
           "output_names": np.array(" ".join(net.outputs)), "layer_names": np.array(" ".join(names)),
           "param_shapes": np.array(repr([s for _, s in layers]))}
    pre = []
    for i, n in enumerate(net.outputs):
        res["out_%d" % i] = out[n].copy()
        producer = [l for l in names if n in net.top_names[l]][-1]
        is_softmax = net.layers[names.index(producer)].type == "Softmax"
        b = net.bottom_names[producer][0] if is_softmax else None
        if b is not None and b not in pre and b not in net.inputs:
            res["pre_%d" % len(pre)] = net.blobs[b].data.copy()
            pre.append(b)
    res["pre_names"] = np.array(" ".join(pre))
    os.makedirs(GOLDEN, exist_ok=True)
    np.savez_compressed(os.path.join(GOLDEN, net_id + ".npz"), **res)
    print(net_id, {n: out[n].shape for n in net.outputs}, "checksum %.6f" % res["checksum"])


#: net-bookkeeping cases (layer selection, in-place, implicit splits, loss weights, force_backward,
#: propagate_down): id -> (prototxt in golden/net/mini, phase, level, stages)
MINI = {
    "bookkeeping_test": ("bookkeeping.prototxt", caffe.TEST, 0, []),
    "bookkeeping_train_deploy": ("bookkeeping.prototxt", caffe.TRAIN, 2, ["deploy"]),
    "bookkeeping_test_deploy": ("bookkeeping.prototxt", caffe.TEST, 5, ["deploy"]),
}


def make_mini(case_id):
    """mini/<case>.npz: layer_names, blob_names, inputs, outputs (space separated), x, t (inputs),
    loss (Net::ForwardFromTo's total), blob_<name> for every blob, then after backward diff_x, diff_t."""
    path, phase, level, stages = MINI[case_id]
    net = caffe.Net(os.path.join(GOLDEN, "mini", path), phase, level=level, stages=stages)
    rng = np.random.RandomState(len(case_id))
    x = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    t = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = t
    loss = net._forward(0, len(net.layers) - 1)
    res = {"layer_names": np.array(" ".join(net._layer_names)), "blob_names": np.array(" ".join(net.blobs)),
           "inputs": np.array(" ".join(net.inputs)), "outputs": np.array(" ".join(net.outputs)),
           "x": x, "t": t, "loss": np.array(loss)}
    for n, b in net.blobs.items():
        res["blob_" + n] = b.data.copy()
    net._backward(len(net.layers) - 1, 0)
    res["diff_x"] = net.blobs["x"].diff.copy()
    res["diff_t"] = net.blobs["t"].diff.copy()
    np.savez(os.path.join(GOLDEN, "mini", case_id + ".npz"), **res)
    print(case_id, "layers:", " ".join(net._layer_names), "outputs:", net.outputs, "loss %.6f" % loss)


if __name__ == "__main__":
    for net_id in sys.argv[1:] or sorted(net_recipe.NETS) + sorted(MINI):
        (make_mini if net_id in MINI else make)(net_id)
