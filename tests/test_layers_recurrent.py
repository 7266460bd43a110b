"""RNN, LSTM and LSTMUnit against Caffe goldens (tests/oracle/make_layers_recurrent.py)."""
import numpy as np
import pytest
import torch
from google.protobuf import text_format

from layer_harness import check_case, load_case
from recaffe.netspec.net.layers import layer_class
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

CASES = ["basic", "4d_input", "static", "expose", "expose_static"]


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("variant", CASES)
def test_recurrent_parity(kind, variant):
    # cont (bottom 1) never gets a gradient; exposed initial states get none in Caffe either,
    # and the harness checks that (their Caffe diffs are zero and compared).
    layer, tops = check_case(f"rnn_{kind}_{variant}", no_grad_bottoms=(1,))
    if "expose" in variant:
        assert all(not t.requires_grad for t in tops[1:])  # Caffe ignores the final-state tops' diffs


@pytest.mark.parametrize("case_id", ["rnn_lstmunit", "rnn_lstmunit_soft_cont"])
def test_lstm_unit_parity(case_id):
    check_case(case_id, no_grad_bottoms=(2,))


def test_exposed_state_bottoms_get_no_gradient_in_caffe():
    case = load_case("rnn_lstm_expose")
    assert not case["bottom_diff_2"].any() and not case["bottom_diff_3"].any()
    assert case["bottom_diff_0"].any()


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_state_carries_between_passes(kind):
    case = load_case(f"rnn_{kind}_carry")
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(str(case["layer"]), lp)
    layer = layer_class(lp.type)(lp, [case["x1"].shape, case["cont"].shape]).apply_fillers()
    with torch.no_grad():
        for i, p in enumerate(layer.blobs):
            p.copy_(torch.from_numpy(case[f"param_{i}"]))
        cont = torch.from_numpy(case["cont"])
        y1, = layer(torch.from_numpy(case["x1"]), cont)
        y2, = layer(torch.from_numpy(case["x2"]), cont)
    np.testing.assert_allclose(y1.numpy(), case["y1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2.numpy(), case["y2"], rtol=1e-5, atol=1e-6)


def test_blob_order_and_shapes():
    """LSTM: W_xc (4H, I), b_c (4H), W_xc_static (4H, Is), W_hc (4H, H); RNN adds W_ho, b_o."""
    for kind, want in (("lstm", [(12, 4), (12,), (12, 5), (12, 3)]),
                       ("rnn", [(3, 4), (3,), (3, 5), (3, 3), (3, 3), (3,)])):
        case = load_case(f"rnn_{kind}_static")
        assert [case[f"param_{i}"].shape for i in range(len(want))] == want
        assert f"param_{len(want)}" not in case


def _lp(text):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return lp


def test_recurrent_errors():
    lp = _lp('name: "r" type: "LSTM" bottom: "x" bottom: "c" top: "y" recurrent_param { num_output: 3 }')
    with pytest.raises(NetError, match=r"layer 'r' \(LSTM\): bottom 1 \(cont\) must be"):
        layer_class("LSTM")(lp, [(3, 2, 4), (3, 1)])
    with pytest.raises(NetError, match="at least 3 axes"):
        layer_class("LSTM")(lp, [(3, 2), (3, 2)])
    layer = layer_class("LSTM")(lp, [(3, 2, 4), (3, 2)]).apply_fillers()
    with pytest.raises(NetError, match="number of timesteps is fixed"):
        layer(torch.zeros(4, 2, 4), torch.ones(4, 2))
    lp0 = _lp('name: "r" type: "RNN" bottom: "x" bottom: "c" top: "y"')
    with pytest.raises(NetError, match="num_output must be positive"):
        layer_class("RNN")(lp0, [(3, 2, 4), (3, 2)])
    lpe = _lp('name: "r" type: "LSTM" bottom: "x" bottom: "c" top: "y" recurrent_param { num_output: 3 expose_hidden: true }')
    with pytest.raises(NetError, match="at least 4 bottom"):
        layer_class("LSTM")(lpe, [(3, 2, 4), (3, 2)])
    lpu = _lp('name: "u" type: "LSTMUnit" bottom: "c" bottom: "x" bottom: "k" top: "c2" top: "h"')
    with pytest.raises(NetError, match="gate input must have 4"):
        layer_class("LSTMUnit")(lpu, [(1, 2, 3), (1, 2, 9), (1, 2)])


def test_fillers_from_recurrent_param():
    lp = _lp('name: "r" type: "RNN" bottom: "x" bottom: "c" top: "y" recurrent_param { num_output: 2 '
             'weight_filler { type: "constant" value: 0.5 } bias_filler { type: "constant" value: -1 } }')
    layer = layer_class("RNN")(lp, [(3, 2, 4), (3, 2)]).apply_fillers()
    assert [float(b.detach().mean()) for b in layer.blobs] == [0.5, -1.0, 0.5, 0.5, -1.0]
