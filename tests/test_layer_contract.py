"""The layer contract (netspec/net/layers/base.py) as user code meets it: a layer written with
setup(p) (the README's example) and one written the old way (overriding __init__) both work in a Net;
fillers run once, right after each layer is built, in Caffe's order; a rebuild for new bottom shapes
keeps the blobs and draws nothing from the random stream."""
import pytest
import torch

from recaffe.netspec import Layer, Net, register_layer
from recaffe.netspec.net.fillers import fill
from recaffe.netspec.net.layers import registry
from recaffe.protos import caffe_pb2

IN = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


@pytest.fixture(scope="module", autouse=True)
def user_layers():
    @register_layer("_CSquare")
    class Square(Layer):                       # the README's example, new contract
        def setup(self, p):
            self.top_shapes = [self.bottom_shapes[0]]

        def forward(self, x):
            return [x * x]

    @register_layer("_COldAffine")
    class OldAffine(Layer):                    # written before setup(p) existed
        def __init__(self, lp, bottom_shapes, phase="TEST"):
            super().__init__(lp, bottom_shapes, phase)
            p = lp.inner_product_param
            self.add_blob((p.num_output, self.bottom_shapes[0][1]), p.weight_filler)
            self.add_blob((p.num_output,), p.bias_filler)
            self.top_shapes = [(self.bottom_shapes[0][0], p.num_output)]

        def forward(self, x):
            return [x @ self.blobs[0].t() + self.blobs[1]]

    yield
    for t in ("_CSquare", "_COldAffine"):
        registry._REGISTRY.pop(t, None)


def test_new_style_layer_in_a_net():
    net = Net(IN + 'layer { name: "sq" type: "_CSquare" bottom: "x" top: "y" }')
    x = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    assert torch.equal(net(x=x)["y"], x * x)
    assert net.blob_shapes["y"] == (2, 3)


def test_old_style_layer_in_a_net_gets_its_fillers():
    net = Net(IN + 'layer { name: "a" type: "_COldAffine" bottom: "x" top: "y" inner_product_param { '
                   'num_output: 4 weight_filler { type: "constant" value: 0.5 } '
                   'bias_filler { type: "constant" value: -1 } } }')
    w, b = net.params["a"]
    assert torch.equal(w.data, torch.full((4, 3), 0.5)) and torch.equal(b.data, torch.full((4,), -1.0))
    x = torch.ones(2, 3)
    assert torch.equal(net(x=x)["y"], torch.full((2, 4), 0.5))


def _ip(name, bottom, top, n):
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top}" inner_product_param '
            f'{{ num_output: {n} weight_filler {{ type: "gaussian" std: 0.1 }} bias_filler {{ type: "uniform" }} }} }}\n')


def test_fillers_run_in_layer_then_blob_order():
    """Caffe's Net::Init fills each layer's blobs as it is set up: a single stream, layer by layer."""
    torch.manual_seed(7)
    net = Net(IN + _ip("a", "x", "h", 4) + _ip("b", "h", "y", 5))
    torch.manual_seed(7)
    g = caffe_pb2.FillerParameter(type="gaussian", std=0.1)
    u = caffe_pb2.FillerParameter(type="uniform")
    want = [fill(torch.empty(4, 3), g), fill(torch.empty(4), u), fill(torch.empty(5, 4), g), fill(torch.empty(5), u)]
    got = [p.data for n in ("a", "b") for p in net.params[n]]
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_layer_built_alone_fills_on_request_once():
    from recaffe.netspec.net.layers import layer_class
    lp = caffe_pb2.LayerParameter(name="ip", type="InnerProduct", bottom=["x"], top=["y"])
    lp.inner_product_param.num_output = 3
    lp.inner_product_param.weight_filler.type = "gaussian"
    layer = layer_class("InnerProduct")(lp, [(2, 4)])
    assert not layer.blobs[0].detach().any()            # allocated, not filled yet
    assert layer.blob_fillers[0].type == "gaussian" and layer.blob_fillers[1] == lp.inner_product_param.bias_filler
    layer.apply_fillers()
    filled = layer.blobs[0].detach().clone()
    assert filled.any()
    layer.apply_fillers()                               # once only
    assert torch.equal(layer.blobs[0].detach(), filled)


def test_reshape_rebuild_keeps_blobs_and_draws_nothing():
    net = Net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }\n'
              'layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 3 '
              'kernel_size: 3 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "uniform" } } }')
    before = [p for p in net.params["c"]]
    values = [p.detach().clone() for p in before]
    net.fast_inference = False
    state = torch.get_rng_state()
    y = net(x=torch.ones(1, 2, 7, 6))["y"]               # a new input size: Convolution rebuilt (Reshape)
    assert torch.equal(torch.get_rng_state(), state)
    assert y.shape == (1, 3, 5, 4)
    after = net.params["c"]
    assert all(a is b for a, b in zip(after, before))
    assert all(torch.equal(p.detach(), v) for p, v in zip(after, values))
    net.layer("c").apply_fillers()                      # the rebuilt layer holds filled blobs: no refill
    assert all(torch.equal(p.detach(), v) for p, v in zip(net.layer("c").blobs, values))
    want = torch.nn.functional.conv2d(torch.ones(1, 2, 7, 6), values[0], values[1])
    assert torch.allclose(y, want, atol=1e-5)


def test_rebuilt_layer_holds_the_same_blobs():
    from recaffe.netspec.net.layers import layer_class
    lp = caffe_pb2.LayerParameter(name="ip", type="InnerProduct", bottom=["x"], top=["y"])
    lp.inner_product_param.num_output = 3
    lp.inner_product_param.weight_filler.type = "gaussian"
    layer = layer_class("InnerProduct")(lp, [(2, 4)]).apply_fillers()
    state = torch.get_rng_state()
    other = layer.rebuilt([(5, 4)])
    assert torch.equal(torch.get_rng_state(), state)
    assert other.top_shapes == [(5, 3)] and all(a is b for a, b in zip(other.blobs, layer.blobs))
    kept = layer.blobs[0].detach().clone()
    other.apply_fillers()                               # shared, already filled blobs: no refill
    assert torch.equal(other.blobs[0].detach(), kept)
    wider = layer.rebuilt([(2, 6)])                     # K changes: a blob of the new shape, not the net's
    assert tuple(wider.blobs[0].shape) == (3, 6) and wider.blobs[1] is layer.blobs[1]
