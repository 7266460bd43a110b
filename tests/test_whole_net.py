"""Whole-net parity with real Caffe: deploy nets of the corpus (copied to tests/golden/net/models), built
in TEST at a small input, weights from the seed-reproducible recipe of tests/oracle/net_recipe.py
(the same arrays Caffe used; the checksum proves it), outputs (and the logits under a Softmax) within
1e-4 relative of Caffe's. Goldens: tests/oracle/make_net_goldens.py."""
import os
import sys

import numpy as np
import pytest
import torch

from recaffe.netspec import Net
from recaffe.protos.io import read_net

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "oracle"))
import net_recipe  # noqa: E402

GOLDEN = os.path.join(HERE, "golden", "net")


def build(net_id, batch=None):
    path, shape, seed = net_recipe.NETS[net_id]
    param = read_net(os.path.join(GOLDEN, "models", path))
    built = shape if batch is None else (batch,) + tuple(shape[1:])
    net = Net(net_recipe.set_input_shape(param, built), phase="TEST")
    layers = [(t, [tuple(p.shape) for p in l.blobs])
              for t, l in zip(net.layer_types, net.layers) if len(l.blobs)]
    weights = net_recipe.net_weights(seed, layers)
    with torch.no_grad():
        for blobs, values in zip((l.blobs for l in net.layers if len(l.blobs)), weights):
            for p, v in zip(blobs, values):
                p.copy_(torch.from_numpy(v))
    return net, weights, net_recipe.net_input(seed, shape)


def close(ours, theirs, what):
    ours = ours.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, Caffe {theirs.shape}"
    scale = float(np.abs(theirs).max())
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


@pytest.mark.parametrize("net_id", sorted(net_recipe.NETS))
def test_whole_net_matches_caffe(net_id):
    with np.load(os.path.join(GOLDEN, net_id + ".npz")) as z:
        g = {k: z[k] for k in z.files}
    net, weights, data = build(net_id)
    assert net_recipe.checksum(weights) == pytest.approx(float(g["checksum"]), rel=1e-9), \
        "recipe weights differ from the ones Caffe used (layer/blob order or shapes)"
    assert len(net.inputs) == 1
    with torch.no_grad():
        out = net(**{net.inputs[0]: torch.from_numpy(data)})
    names = str(g["output_names"]).split()
    assert list(out) == names
    for i, n in enumerate(names):
        close(out[n], g["out_%d" % i], f"{net_id}: output '{n}'")
    for i, n in enumerate(str(g["pre_names"]).split()):
        close(net.blobs[n], g["pre_%d" % i], f"{net_id}: blob '{n}'")


@pytest.mark.parametrize("net_id", ["lenet", "squeezenet", "mobilenet", "cifar10_full"])
def test_other_batch_sizes_reshape_the_net(net_id):
    """Built for batch 3, fed Caffe's batch and then twice Caffe's batch (Reshape before Forward)."""
    with np.load(os.path.join(GOLDEN, net_id + ".npz")) as z:
        g = {k: z[k] for k in z.files}
    net, _, data = build(net_id, batch=3)
    name = str(g["output_names"]).split()[0]
    with torch.no_grad():
        close(net(**{net.inputs[0]: torch.from_numpy(data)})[name], g["out_0"], f"{net_id}: {name}")
        twice = net(**{net.inputs[0]: torch.from_numpy(np.concatenate([data, data]))})[name]
    close(twice, np.concatenate([g["out_0"], g["out_0"]]), f"{net_id}: {name}, batch doubled")
