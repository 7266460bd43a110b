"""Net runtime: bookkeeping against Caffe goldens (tests/golden/net/mini, made by
tests/oracle/make_net_goldens.py) and net features with tiny layers registered here."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from recaffe.netspec import Net
from recaffe.netspec.net.layers.base import Layer
from recaffe.netspec.net.layers.registry import register
from recaffe.netspec.net import build as netbuild
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

MINI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "net", "mini")


# -- tiny layers: the net's features must not depend on the layer families ------------------------
@register("_TAffine")
class _TAffine(Layer):
    """y = x W^T + b over the flattened trailing axes; blobs W (num_output, K) and b (num_output)."""
    exact_bottoms = exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        p = lp.inner_product_param
        k = int(np.prod(self.bottom_shapes[0][1:]))
        self.add_blob((p.num_output, k), p.weight_filler)
        self.add_blob((p.num_output,), p.bias_filler)
        self.top_shapes = [(self.bottom_shapes[0][0], p.num_output)]

    def forward(self, x):
        return [x.flatten(1) @ self.blobs[0].t() + self.blobs[1]]


@register("_TDouble")
class _TDouble(Layer):
    exact_bottoms = exact_tops = 1

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        self.top_shapes = [self.bottom_shapes[0]]

    def forward(self, x):
        return [2 * x]


@register("_TSqLoss")
class _TSqLoss(Layer):
    """0.5 * sum(x^2): a loss layer (default loss_weight 1 on its first top)."""
    min_bottoms, min_tops, max_tops = 1, 0, 2
    is_loss = True

    def __init__(self, lp, bottom_shapes, phase="TEST"):
        super().__init__(lp, bottom_shapes, phase)
        self.top_shapes = [()] + [self.bottom_shapes[0]] * (len(lp.top) - 1)

    def forward(self, x, *rest):
        return [0.5 * (x * x).sum()] + ([x] if len(self.lp.top) > 1 else [])


IN = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


def affine(name, bottom, top, n=4, extra=""):
    return (f'layer {{ name: "{name}" type: "_TAffine" bottom: "{bottom}" top: "{top}" {extra} '
            f'inner_product_param {{ num_output: {n} weight_filler {{ type: "gaussian" }} '
            f'bias_filler {{ type: "gaussian" }} }} }}\n')


X = torch.tensor([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])


# -- Caffe goldens: layer selection, in-place, splits, loss weights, force_backward ----------------
@pytest.mark.parametrize("case,phase,level,stages", [("bookkeeping_test", "TEST", 0, ()),
                                                     ("bookkeeping_train_deploy", "TRAIN", 2, ("deploy",)),
                                                     ("bookkeeping_test_deploy", "TEST", 5, ("deploy",))])
def test_bookkeeping_matches_caffe(case, phase, level, stages):
    with np.load(os.path.join(MINI, case + ".npz")) as z:
        g = {k: z[k] for k in z.files}
    net = Net(os.path.join(MINI, "bookkeeping.prototxt"), phase=phase, level=level, stages=stages)
    assert net.layer_names == str(g["layer_names"]).split()
    assert net.blob_names == str(g["blob_names"]).split()
    assert net.inputs == str(g["inputs"]).split()
    assert net.outputs == str(g["outputs"]).split()
    out = net(x=torch.from_numpy(g["x"]), t=torch.from_numpy(g["t"]))
    assert list(out) == net.outputs
    np.testing.assert_allclose(net.loss.item(), float(g["loss"]), rtol=1e-5)
    for name in net.blob_names:
        np.testing.assert_allclose(net.blobs[name].detach().numpy(), g["blob_" + name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    net.backward()
    np.testing.assert_allclose(net.input_blobs["x"].grad.numpy(), g["diff_x"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.input_blobs["t"].grad.numpy(), g["diff_t"], rtol=1e-5, atol=1e-6)


# -- NetStateRule (Net::StateMeetsRule) --------------------------------------------------------------
def rule(text):
    from google.protobuf import text_format
    return text_format.Parse(text, caffe_pb2.NetStateRule())


@pytest.mark.parametrize("text,met", [
    ("", True), ("phase: TEST", True), ("phase: TRAIN", False), ("min_level: 2", True),
    ("min_level: 3", False), ("max_level: 1", False), ("max_level: 2", True), ('stage: "a"', True),
    ('stage: "a" stage: "b"', True), ('stage: "c"', False), ('not_stage: "b"', False),
    ('not_stage: "c"', True), ('phase: TEST stage: "a" not_stage: "z" min_level: 0 max_level: 9', True)])
def test_state_meets_rule(text, met):
    state = caffe_pb2.NetState(phase=caffe_pb2.TEST, level=2, stage=["a", "b"])
    assert netbuild.state_meets_rule(state, rule(text)) is met


def test_include_and_exclude_together_is_an_error():
    with pytest.raises(NetError, match="'bad'.*either include rules or exclude rules"):
        Net(IN + 'layer { name: "bad" type: "_TDouble" bottom: "x" top: "y" include { phase: TEST } '
                 'exclude { phase: TRAIN } }')


def test_state_stages_append_to_file_state():
    net = Net('state { stage: "s1" }\n' + IN +
              'layer { name: "both" type: "_TDouble" bottom: "x" top: "y" include { stage: "s1" stage: "s2" } }',
              stages=["s2"])
    assert net.layer_names == ["in", "both"]


# -- splits, sharing, loss weights ----------------------------------------------------------------
def test_implicit_split_sums_gradients():
    net = Net(IN + affine("a", "x", "h") + affine("b", "h", "y1") + affine("c", "h", "y2") +
              'layer { name: "l1" type: "_TSqLoss" bottom: "y1" top: "l1" }\n'
              'layer { name: "l2" type: "_TSqLoss" bottom: "y2" top: "l2" loss_weight: 2 }\n')
    assert net.layer_names == ["in", "a", "h_a_0_split", "b", "c", "l1", "l2"]
    assert net.outputs == ["l1", "l2"]
    net(x=X)
    net.backward()
    W = [net.params[n][0].detach() for n in "abc"]
    B = [net.params[n][1].detach() for n in "abc"]
    h = X @ W[0].t() + B[0]
    y1, y2 = h @ W[1].t() + B[1], h @ W[2].t() + B[2]
    assert net.loss.item() == pytest.approx(0.5 * (y1 ** 2).sum().item() + (y2 ** 2).sum().item(), rel=1e-5)
    dh = y1 @ W[1] + 2 * y2 @ W[2]
    torch.testing.assert_close(net.params["a"][0].grad, dh.t() @ X)
    torch.testing.assert_close(net.params["a"][1].grad, dh.sum(0))


def test_shared_params_are_one_parameter_and_accumulate():
    net = Net(IN + affine("a", "x", "y1", 3, 'param { name: "w" lr_mult: 2 } param { decay_mult: 0 }') +
              affine("b", "x", "y2", 3, 'param { name: "w" }') +
              'layer { name: "l1" type: "_TSqLoss" bottom: "y1" bottom: "y2" top: "l" }')
    assert net.params["a"][0] is net.params["b"][0]
    assert net.params["a"][1] is not net.params["b"][1]
    lp = net.learnable_params()
    assert [(n, i, lr, dm) for _, lr, dm, n, i in lp] == [("a", 0, 2, 1), ("a", 1, 1, 0), ("b", 1, 1, 1)]
    assert lp[0][0] is net.params["a"][0]
    assert len(list(net.parameters())) == 3
    net(x=X)
    net.backward()
    W, b = net.params["a"][0].detach(), net.params["a"][1].detach()
    torch.testing.assert_close(net.params["a"][0].grad, ((X @ W.t() + b).t() @ X))


def test_shared_lr_mult_adopted_and_mismatch():
    net = Net(IN + affine("a", "x", "y1", 3, 'param { name: "w" }') +
              affine("b", "x", "y2", 3, 'param { name: "w" lr_mult: 3 }'))
    assert net.learnable_params()[0][1] == 3
    with pytest.raises(NetError, match="'b'.*'w'.*mismatched lr_mult"):
        Net(IN + affine("a", "x", "y1", 3, 'param { name: "w" lr_mult: 1 }') +
            affine("b", "x", "y2", 3, 'param { name: "w" lr_mult: 3 }'))


def test_shared_shape_checks():
    with pytest.raises(NetError, match="'b'.*shape \\(4, 3\\).*owner has \\(3, 3\\).*STRICT"):
        Net(IN + affine("a", "x", "y1", 3, 'param { name: "w" }') + affine("b", "x", "y2", 4, 'param { name: "w" }'))
    with pytest.raises(NetError, match="count 12.*PERMISSIVE"):
        Net(IN + affine("a", "x", "y1", 3, 'param { name: "w" }') +
            affine("b", "x", "y2", 4, 'param { name: "w" share_mode: PERMISSIVE }'))


def test_lr_mult_zero_freezes_and_force_backward_unfreezes():
    text = IN + affine("a", "x", "y", 3, "param { lr_mult: 0 } param { lr_mult: 0 }") + \
        'layer { name: "l" type: "_TSqLoss" bottom: "y" top: "l" }'
    net = Net(text)
    assert [p.requires_grad for p in net.params["a"]] == [False, False]
    net(x=X)
    assert not net.loss.requires_grad
    net.backward()
    assert net.params["a"][0].grad is None
    net = Net("force_backward: true\n" + text)
    assert [p.requires_grad for p in net.params["a"]] == [True, True]
    net(x=X)
    net.backward()
    assert net.input_blobs["x"].grad is not None and net.params["a"][0].grad is not None


def test_too_many_param_specs():
    with pytest.raises(NetError, match="'a'.*3 param specs for 2 blob"):
        Net(IN + affine("a", "x", "y", 3, "param { } param { } param { }"))


def test_loss_weights():
    net = Net(IN + 'layer { name: "d" type: "_TDouble" bottom: "x" top: "y" loss_weight: 0.5 }')
    net(x=X)
    assert net.loss.item() == pytest.approx(0.5 * 2 * X.sum().item())
    net = Net(IN + 'layer { name: "d" type: "_TDouble" bottom: "x" top: "y" }')
    net(x=X)
    assert net.loss is None
    with pytest.raises(NetError, match="'l'.*loss_weight must be given once per top \\(2\\), got 1"):
        Net(IN + 'layer { name: "l" type: "_TSqLoss" bottom: "x" top: "l" top: "y" }')
    net = Net(IN + 'layer { name: "l" type: "_TSqLoss" bottom: "x" top: "l" top: "y" loss_weight: 1 loss_weight: 0 }')
    net(x=X)
    assert net.outputs == ["l", "y"] and net.loss.item() == pytest.approx(0.5 * (X * X).sum().item())


def test_loss_layer_without_top_gets_automatic_top():
    net = Net(IN + 'layer { name: "l" type: "_TSqLoss" bottom: "x" }')
    out = net(x=X)
    assert out == {} and net.outputs == []
    assert net.loss.item() == pytest.approx(0.5 * (X * X).sum().item())


def test_propagate_down_detaches_bottom():
    text = "force_backward: true\n" + IN + \
        'layer { name: "d" type: "_TDouble" bottom: "x" top: "y" }\n' \
        'layer { name: "l" type: "_TSqLoss" bottom: "y" bottom: "x" top: "l" propagate_down: %s propagate_down: true }'
    net = Net(text % "false")
    net(x=X)
    net.backward()
    assert net.input_blobs["x"].grad is None   # nothing reached x: Caffe's diff stays zero
    net = Net(text % "true")
    net(x=X)
    net.backward()
    torch.testing.assert_close(net.input_blobs["x"].grad, 4 * X)
    with pytest.raises(NetError, match="propagate_down needs one entry per bottom"):
        Net(IN + 'layer { name: "l" type: "_TSqLoss" bottom: "x" top: "l" propagate_down: true propagate_down: true }')


def test_layers_off_the_loss_path_run_without_autograd():
    net = Net(IN + affine("a", "x", "h") + 'layer { name: "l" type: "_TSqLoss" bottom: "h" top: "l" }\n' +
              affine("side", "h", "s"))
    net(x=X)
    assert net.loss.requires_grad and not net.blobs["s"].requires_grad
    net = Net(IN + affine("a", "x", "h"))   # no loss: an ordinary module
    out = net(x=X)
    assert out["h"].requires_grad


# -- running ------------------------------------------------------------------------------------------
def test_in_place_blob_maps_to_latest_tensor():
    net = Net(IN + 'layer { name: "d1" type: "_TDouble" bottom: "x" top: "x" }\n'
                   'layer { name: "d2" type: "_TDouble" bottom: "x" top: "x" }')
    out = net(x=X)
    assert net.blob_names == ["x"] and net.outputs == ["x"]
    torch.testing.assert_close(out["x"], 4 * X)
    torch.testing.assert_close(net.blobs["x"], 4 * X)


def test_partial_forward_start_end():
    net = Net(IN + 'layer { name: "d1" type: "_TDouble" bottom: "x" top: "y" }\n'
                   'layer { name: "d2" type: "_TDouble" bottom: "y" top: "z" }\n'
                   'layer { name: "d3" type: "_TDouble" bottom: "z" top: "w" }')
    out = net.forward(end="d2", x=X)
    assert list(out) == ["z"] and "w" not in net.blobs
    torch.testing.assert_close(out["z"], 4 * X)
    out = net.forward(start="d3")
    torch.testing.assert_close(out["w"], 8 * X)
    out = net.forward(start="d2", y=torch.ones(2, 3))
    torch.testing.assert_close(out["w"], torch.full((2, 3), 4.0))
    with pytest.raises(NetError, match="no layer named 'nope'"):
        net.forward(start="nope")


def test_different_input_shapes_and_reshape():
    net = Net(IN + 'layer { name: "d" type: "_TDouble" bottom: "x" top: "y" }')
    assert net(x=torch.ones(5, 7))["y"].shape == (5, 7)
    net.reshape(x=(4, 2))
    assert net.blobs["y"].shape == (4, 2) and net.blob_shapes["y"] == (4, 2)


def test_input_errors():
    net = Net(IN + 'layer { name: "d" type: "_TDouble" bottom: "x" top: "y" }')
    with pytest.raises(NetError, match="input blob 'x' .*not given; inputs are x"):
        net()
    with pytest.raises(NetError, match="no blob named 'q'"):
        net(x=X, q=X)
    out = net(x=X.numpy())
    torch.testing.assert_close(out["y"], 2 * X)


def test_build_errors_name_the_layer():
    with pytest.raises(NetError, match="layer 'c': unknown layer type 'Nope'; known types: .*Input"):
        Net(IN + 'layer { name: "c" type: "Nope" bottom: "x" top: "y" }')
    with pytest.raises(NetError, match="'d' \\(_TDouble\\): unknown bottom blob 'q' \\(bottom 0\\); "
                                       "blobs available at this point: x"):
        Net(IN + 'layer { name: "d" type: "_TDouble" bottom: "q" top: "y" }')
    with pytest.raises(NetError, match="'d' \\(_TDouble\\): takes exactly 1 top"):
        Net(IN + 'layer { name: "d" type: "_TDouble" bottom: "x" top: "y" top: "z" }')
    with pytest.raises(NetError, match="'d2' \\(_TDouble\\): top blob 'y' produced by multiple sources"):
        Net(IN + 'layer { name: "d" type: "_TDouble" bottom: "x" top: "y" }\n'
                 'layer { name: "d2" type: "_TDouble" bottom: "x" top: "y" }')


def test_legacy_input_fields_become_input_layer():
    net = Net('input: "data" input_dim: 2 input_dim: 3 input_dim: 1 input_dim: 1\n'
              'layer { name: "d" type: "_TDouble" bottom: "data" top: "y" }')
    assert net.layer_names[0] == "input" and net.inputs == ["data"] and net.blob_shapes["y"] == (2, 3, 1, 1)


# -- state dicts, sharing with another net -----------------------------------------------------------
def test_state_dict_keys_and_round_trip():
    text = IN + affine("fc.1/a", "x", "h") + affine("b", "h", "y", 2)
    net, other = Net(text), Net(text)
    sd = net.state_dict()
    assert list(sd) == ["fc.1/a.0", "fc.1/a.1", "b.0", "b.1"]
    other.load_state_dict(sd)
    torch.testing.assert_close(other(x=X)["y"], net(x=X)["y"])
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict({"b.0": sd["b.0"]})
    wrapper = nn.ModuleDict({"net": Net(text)})
    assert "net.fc.1/a.0" in wrapper.state_dict()
    wrapper.load_state_dict({"net." + k: v for k, v in sd.items()})
    torch.testing.assert_close(wrapper["net"].params["b"][0], net.params["b"][0])


def test_share_with_aliases_blobs():
    text = IN + affine("a", "x", "h") + affine("b", "h", "y", 2)
    train, test = Net(text, phase="TRAIN"), Net(text)
    test.share_with(train)
    assert test.params["a"][0] is train.params["a"][0]
    torch.testing.assert_close(test(x=X)["y"], train(x=X)["y"])
    with pytest.raises(NetError, match="share_with: layer 'b' blob 0 has shape \\(3, 4\\) here and \\(2, 4\\)"):
        Net(IN + affine("a", "x", "h") + affine("b", "h", "y", 3)).share_with(train)


# -- Input / DummyData -----------------------------------------------------------------------------
def test_input_one_shape_for_all_tops():
    net = Net('layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 1 dim: 2 } } }')
    assert net.blob_shapes == {"a": (1, 2), "b": (1, 2)}
    with pytest.raises(NetError, match="'in'.*one per top \\(3\\)"):
        Net('layer { name: "in" type: "Input" top: "a" top: "b" top: "c" '
            'input_param { shape { dim: 1 } shape { dim: 2 } } }')


def test_dummy_data_fillers_and_refill():
    net = Net('layer { name: "d" type: "DummyData" top: "c" top: "g" top: "z" dummy_data_param {'
              ' shape { dim: 2 dim: 3 } shape { dim: 50 dim: 40 } shape { dim: 1 }'
              ' data_filler { type: "constant" value: 0.5 } data_filler { type: "gaussian" std: 2 }'
              ' data_filler { } } }')
    a = net()
    b = net()
    torch.testing.assert_close(a["c"], torch.full((2, 3), 0.5))
    torch.testing.assert_close(a["z"], torch.zeros(1))
    assert a["g"].shape == (50, 40) and not torch.equal(a["g"], b["g"])
    assert abs(a["g"].std().item() - 2) < 0.15
    net = Net('layer { name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param {'
              ' num: 2 channels: 3 channels: 4 height: 5 width: 6 } }')
    assert net.blob_shapes == {"a": (2, 3, 5, 6), "b": (2, 4, 5, 6)}
    assert torch.equal(net()["b"], torch.zeros(2, 4, 5, 6))
    with pytest.raises(NetError, match="both shape and legacy"):
        Net('layer { name: "d" type: "DummyData" top: "a" dummy_data_param { num: 2 shape { dim: 1 } } }')


def test_retain_blob_grads_gives_blob_diffs():
    net = Net(IN + affine("a", "x", "h") + 'layer { name: "l" type: "_TSqLoss" bottom: "h" top: "l" }')
    net.retain_blob_grads = True
    net(x=X)
    net.backward()
    torch.testing.assert_close(net.blobs["h"].grad, net.blobs["h"].detach())   # d(0.5 h^2)/dh = h


def test_fused_batchnorm_scale_follows_blob_changes():
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }\n'
            'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { use_global_stats: true } }\n'
            'layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }')
    net = Net(text)
    assert net.fusion.bn_scale == {1}
    x = torch.randn(2, 3, 2, 2)
    with torch.no_grad():
        for p, v in zip(net.params["bn"], ([1.0, 2.0, 3.0], [2.0, 4.0, 8.0], [2.0])):
            p.copy_(torch.tensor(v))
    ref = lambda: ((x - torch.tensor([0.5, 1, 1.5]).view(1, 3, 1, 1)) /  # noqa: E731
                   torch.sqrt(torch.tensor([1.0, 2, 4]).view(1, 3, 1, 1) + 1e-5))
    torch.testing.assert_close(net(x=x)["x"], ref())
    with torch.no_grad():
        net.params["bn"][2].fill_(1.0)       # a changed scale factor must not reuse cached statistics
        net.params["sc"][0].fill_(2.0)
    torch.testing.assert_close(net(x=x)["x"], 2 * (x - torch.tensor([1.0, 2, 3]).view(1, 3, 1, 1)) /
                               torch.sqrt(torch.tensor([2.0, 4, 8]).view(1, 3, 1, 1) + 1e-5))
    net.fuse_bn_scale = False
    torch.testing.assert_close(net(x=x)["x"], 2 * (x - torch.tensor([1.0, 2, 3]).view(1, 3, 1, 1)) /
                               torch.sqrt(torch.tensor([2.0, 4, 8]).view(1, 3, 1, 1) + 1e-5))
