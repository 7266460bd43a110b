"""Loss layers and Accuracy against Caffe goldens (tests/oracle/make_layers_loss.py)."""
import os

import numpy as np
import pytest
import torch
from google.protobuf import text_format

import layer_harness
from layer_harness import check_case, load_case
from recaffe.netspec.net.layers import layer_class
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

SOFTMAX = ["loss_softmax_default", "loss_softmax_ignore_full", "loss_softmax_ignore_valid",
           "loss_softmax_ignore_batch_size", "loss_softmax_ignore_none", "loss_softmax_normalize_false",
           "loss_softmax_normalize_true", "loss_softmax_normalization_wins", "loss_softmax_axis2",
           "loss_softmax_axis_neg1_ignore", "loss_softmax_clip"]
SIGMOID = ["loss_sigmoid_default", "loss_sigmoid_ignore_full", "loss_sigmoid_ignore_valid",
           "loss_sigmoid_ignore_batch_size", "loss_sigmoid_ignore_none", "loss_sigmoid_normalize_true",
           "loss_sigmoid_soft"]
TWO_BOTTOM = ["loss_hinge_l1", "loss_hinge_l2", "loss_multinomial"]
ACCURACY = ["loss_accuracy_top1", "loss_accuracy_top3_perclass", "loss_accuracy_ties_top1",
            "loss_accuracy_ties_top2", "loss_accuracy_ties_top3", "loss_accuracy_spatial_ignore",
            "loss_accuracy_axis2", "loss_accuracy_all_ignored"]


@pytest.mark.parametrize("case_id", SOFTMAX + SIGMOID + TWO_BOTTOM)
def test_loss_with_label(case_id):
    check_case(case_id, no_grad_bottoms=(1,))


def test_normalization_modes_differ():
    """The four modes and the legacy flag give distinct Caffe numbers on the same inputs."""
    tops = {m: float(load_case("loss_softmax_ignore_" + m)["top_0"]) for m in ("full", "valid", "batch_size", "none")}
    assert len({round(v, 6) for v in tops.values()}) == 4
    assert float(load_case("loss_softmax_normalize_false")["top_0"]) == pytest.approx(tops["batch_size"])
    assert float(load_case("loss_softmax_normalize_true")["top_0"]) == pytest.approx(tops["valid"])
    assert float(load_case("loss_softmax_normalization_wins")["top_0"]) == pytest.approx(tops["full"])


@pytest.mark.parametrize("case_id", ["loss_euclidean", "loss_contrastive", "loss_contrastive_legacy"])
def test_pair_losses(case_id):
    no_grad = (2,) if "contrastive" in case_id else ()
    check_case(case_id, no_grad_bottoms=no_grad)


def test_infogain_h_bottom():
    check_case("loss_infogain_bottom", no_grad_bottoms=(1, 2))


@pytest.mark.parametrize("case_id", ["loss_infogain_source_axis2", "loss_infogain_source_prob"])
def test_infogain_h_from_source(case_id, tmp_path, monkeypatch):
    """H read from a binary BlobProto: rewrite the oracle's temporary source path to a fresh file."""
    case = load_case(case_id)
    src = tmp_path / "H.binaryproto"
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([1, 1] + list(case["infogain_H"].shape))
    blob.data.extend(case["infogain_H"].ravel().tolist())
    src.write_bytes(blob.SerializeToString())
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(str(case["layer"]), lp)
    lp.infogain_loss_param.source = str(src)
    case["layer"] = np.array(text_format.MessageToString(lp))
    np.savez(tmp_path / (case_id + ".npz"), **case)
    monkeypatch.setattr(layer_harness, "GOLDEN", str(tmp_path))
    layer, tops = check_case(case_id, no_grad_bottoms=(1,))
    if len(tops) == 2:
        assert not tops[1].requires_grad  # Caffe ignores the probability top's diff


@pytest.mark.parametrize("case_id", ACCURACY)
def test_accuracy(case_id):
    layer, tops = check_case(case_id, backward=False)
    assert all(not t.requires_grad for t in tops)


def test_accuracy_ties_rule():
    """master's rule: correct iff fewer than top_k other classes score >= the true class."""
    acc = [float(load_case("loss_accuracy_ties_top%d" % k)["top_0"]) for k in (1, 2, 3)]
    assert acc == pytest.approx([0.0, 0.4, 0.8])  # by hand; 1.0 would give 0.2 at k=1


def _build(text, shapes):
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return layer_class(lp.type, lp.name)(lp, shapes).apply_fillers()


def test_softmax_prob_top_matches_caffe_softmax():
    """Caffe aborts at setup on a second top (its inner Softmax inherits two loss weights); we
    accept it: loss and gradient as the one-top case, probabilities as Caffe's Softmax layer."""
    case = load_case("loss_softmax_ignore_valid")
    layer = _build(str(case["layer"]) + ' top: "prob" loss_weight: 1 loss_weight: 0',
                   [case["bottom_0"].shape, case["bottom_1"].shape])
    assert layer.top_shapes == [(), case["bottom_0"].shape]
    x = torch.from_numpy(case["bottom_0"]).requires_grad_(True)
    loss, prob = layer(x, torch.from_numpy(case["bottom_1"]))
    np.testing.assert_allclose(prob.detach().numpy(), load_case("loss_softmax_prob_ref")["top_0"], rtol=1e-5, atol=1e-7)
    assert not prob.requires_grad
    (loss * float(case["top_diff_0"])).backward()
    np.testing.assert_allclose(x.grad.numpy(), case["bottom_diff_0"], rtol=1e-5, atol=1e-6)


def test_ignored_positions_get_zero_gradient():
    case = load_case("loss_softmax_ignore_valid")
    ignored = (case["bottom_1"] == 255)[:, 0]  # (2, H, W) -> broadcast over channels
    assert ignored.any()
    assert np.all(case["bottom_diff_0"].transpose(1, 0, 2, 3)[:, ignored] == 0)
    layer, _ = check_case("loss_softmax_ignore_valid", no_grad_bottoms=(1,))


def test_loss_shape_errors_name_the_layer():
    with pytest.raises(NetError, match=r"layer 'l' \(SoftmaxWithLoss\).*label count"):
        _build('name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss"', [(2, 3, 4), (2, 5)])
    with pytest.raises(NetError, match="same first dimension"):
        _build('name: "l" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss"', [(2, 3), (3, 2)])
    with pytest.raises(NetError, match="top_k 6 must be <= the number of classes"):
        _build('name: "l" type: "Accuracy" bottom: "x" bottom: "y" top: "a" accuracy_param { top_k: 6 }',
               [(4, 5), (4,)])
    with pytest.raises(NetError, match="normalize is deprecated"):
        _build('name: "l" type: "InfogainLoss" bottom: "x" bottom: "y" bottom: "H" top: "loss" '
               'loss_param { normalize: true }', [(4, 5), (4,), (5, 5)])
    with pytest.raises(NetError, match="does not exist"):
        _build('name: "l" type: "InfogainLoss" bottom: "x" bottom: "y" top: "loss" '
               'infogain_loss_param { source: "%s" }' % os.devnull.replace("null", "nonexistent"), [(4, 5), (4,)])


def test_out_of_range_label_is_an_error():
    layer = _build('name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss"', [(2, 3), (2,)])
    with pytest.raises(NetError, match="label value 3 out of range"):
        layer(torch.zeros(2, 3), torch.tensor([0.0, 3.0]))


def test_loss_layers_are_flagged():
    for t in ("SoftmaxWithLoss", "SigmoidCrossEntropyLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
              "ContrastiveLoss", "MultinomialLogisticLoss"):
        assert layer_class(t).is_loss, t
    assert not layer_class("Accuracy").is_loss
