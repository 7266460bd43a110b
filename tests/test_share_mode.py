"""ParamSpec share_mode against real Caffe (goldens by tests/oracle/make_share_goldens.py): PERMISSIVE
sharing between blobs of equal count and different shape (the sharer reads the owner's memory in its own
shape; both users' gradients land in the owner's diff), forward and backward values, and the STRICT /
count errors with the content of Caffe's messages."""
import json
import os

import numpy as np
import pytest
import torch

from recaffe.netspec import Net
from recaffe.netspec.net.params import raw_blob
from recaffe.protos.errors import NetError

G = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "share")
PROTO = os.path.join(G, "permissive.prototxt")
OWNERS = ("ipA.0", "ipA.1", "ipB.1", "conv.0", "conv.1", "ipC.1")
SHARERS = {"ipB.0": "ipA.0", "ipC.0": "conv.0"}


@pytest.fixture(scope="module")
def gold():
    with np.load(os.path.join(G, "permissive.npz")) as z:
        return {k: z[k] for k in z.files}


def built(gold):
    net = Net(PROTO, phase="TRAIN")
    with torch.no_grad():
        for key in OWNERS:
            layer, i = key.split(".")
            net.params[layer][int(i)].copy_(torch.from_numpy(gold[f"p_{layer}_{i}"]))
    return net


def close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1.0), np.max(np.abs(a - b))


def test_sharers_see_the_owners_memory_in_their_own_shape(gold):
    net = built(gold)
    for layer, blobs in net.params.items():
        for i, p in enumerate(blobs):
            assert tuple(p.shape) == gold[f"p_{layer}_{i}"].shape, (layer, i)
            np.testing.assert_array_equal(p.detach().numpy(), gold[f"p_{layer}_{i}"], err_msg=f"{layer}.{i}")
    for sharer, owner in SHARERS.items():
        (sl, si), (ol, oi) = sharer.split("."), owner.split(".")
        assert raw_blob(net.layers[net._index[sl]], int(si)) is net.params[ol][int(oi)]
    # writes into the owner are seen by the sharer (one storage), and the reverse
    with torch.no_grad():
        net.params["ipA"][0][0, 1] = 42.0
        net.params["ipB"][0][5, 9] = -7.0
    assert net.params["ipB"][0][0, 1].item() == 42.0
    assert net.params["ipA"][0][9, 5].item() == -7.0
    # learnable (owner) blobs only, with the owners' ParamSpecs
    lp = [(n, i, lr) for _, lr, _, n, i in net.learnable_params()]
    assert lp == [("ipA", 0, 1), ("ipA", 1, 2), ("ipB", 1, 1), ("conv", 0, 1), ("conv", 1, 1), ("ipC", 1, 1)]
    assert len(list(net.parameters())) == 6


def test_permissive_forward_and_backward_match_caffe(gold):
    net = built(gold)
    net(**{k: torch.from_numpy(gold[k]) for k in ("x", "y", "img", "v", "t")})
    for name in ("a", "b", "cc", "s"):
        close(net.blobs[name].detach().numpy(), gold["top_" + name])
    for name in ("lossB", "lossC"):
        close(net.blobs[name].detach().numpy(), gold["top_" + name])
    net.backward()
    for key in OWNERS:   # (conv's own top goes to Silence: no gradient reached its bias, Caffe's diff is 0)
        layer, i = key.split(".")
        p = net.params[layer][int(i)]
        close((p.grad if p.grad is not None else torch.zeros_like(p)).numpy(), gold[f"d_{layer}_{i}"])
    for sharer, owner in SHARERS.items():   # Caffe's sharer diff is the owner's diff memory
        (sl, si), (ol, oi) = sharer.split("."), owner.split(".")
        g = net.params[ol][int(oi)].grad.view(net.params[sl][int(si)].shape)
        close(g.numpy(), gold[f"d_{sl}_{si}"])
    for name in ("x", "v"):
        close(net.input_blobs[name].grad.numpy(), gold["dx_" + name])


def test_test_net_shares_permissive_blobs_with_the_train_net(gold):
    train = built(gold)
    test = Net(PROTO, phase="TEST")
    test.share_with(train)
    assert test.params["ipB"][0].data_ptr() == train.params["ipA"][0].data_ptr()
    assert tuple(test.params["ipB"][0].shape) == (6, 10)
    np.testing.assert_array_equal(test.params["ipC"][0].detach().numpy(), gold["p_ipC_0"])


def test_caffemodel_round_trip_writes_sharers_in_their_shape(gold, tmp_path):
    net = built(gold)
    path = str(tmp_path / "p.caffemodel")
    net.save_weights(path)
    again = Net(PROTO, phase="TRAIN")
    again.load_weights(path)
    for layer, blobs in again.params.items():
        for i, p in enumerate(blobs):
            np.testing.assert_array_equal(p.detach().numpy(), gold[f"p_{layer}_{i}"], err_msg=f"{layer}.{i}")


def test_shape_and_count_errors_carry_caffes_content():
    caffe = json.load(open(os.path.join(G, "errors.json")))
    text = open(PROTO).read()
    strict = text.replace(' share_mode: PERMISSIVE }\n  inner_product_param { num_output: 6',
                          ' }\n  inner_product_param { num_output: 6')
    assert "shape mismatch" in caffe["strict_shape"] and "10 6 (60)" in caffe["strict_shape"]
    with pytest.raises(NetError, match=r"layer 'ipB'.*'w'.*owned by layer 'ipA'.*shape mismatch.*"
                                       r"\(6, 10\) \(count 60\).*owner has \(10, 6\) \(count 60\).*STRICT"):
        Net(strict, phase="TRAIN")
    assert "count mismatch" in caffe["permissive_count"] and "5 10 (50)" in caffe["permissive_count"]
    with pytest.raises(NetError, match=r"layer 'ipB'.*'w'.*owned by layer 'ipA'.*count mismatch.*"
                                       r"\(5, 10\) has count 50.*owner has \(10, 6\) \(count 60\)"):
        # (the net is cut after ipB: our Net checks layer shapes before wiring params, Caffe layer by layer)
        Net(text[:text.index('layer { name: "lossB"')].replace("num_output: 6 weight", "num_output: 5 weight"),
            phase="TRAIN")


def test_pycaffe_diff_of_a_permissive_sharer_is_the_owners_in_its_shape(gold):
    """recaffe facade: net.params[sharer][i].diff reads the owner's diff (Caffe's one diff buffer) in the
    sharer's shape, as real pycaffe shows it."""
    from recaffe.net import Net as FacadeNet
    net = FacadeNet(PROTO, 1)     # TRAIN
    inner = net.torch_net
    with torch.no_grad():
        for key in OWNERS:
            layer, i = key.split(".")
            inner.params[layer][int(i)].copy_(torch.from_numpy(gold[f"p_{layer}_{i}"]))
    inner(**{k: torch.from_numpy(gold[k]) for k in ("x", "y", "img", "v", "t")})
    inner.backward()
    for sharer in SHARERS:
        sl, si = sharer.split(".")
        close(net.params[sl][int(si)].diff, gold[f"d_{sl}_{si}"])
