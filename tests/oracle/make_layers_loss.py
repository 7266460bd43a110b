"""Golden cases for the loss layers and Accuracy (tests/test_layers_loss.py replays them).

Re-run from /work/main (overwrites tests/golden/layers/loss_*.npz):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_layers_loss.py

Loss cases go through layer_oracle.case (force_backward, random top diffs: the loss top's diff is
the loss-weight seed). Accuracy aborts in Backward when force_backward asks it for a gradient, so its
cases are forward only (forward_case below, same file format without diffs).
"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import caffe  # noqa: E402
from layer_oracle import GOLDEN, case  # noqa: E402


rng = np.random.RandomState(3)


def randn(*shape, scale=1.0):
    return (rng.randn(*shape) * scale).astype(np.float32)


def labels(shape, k, ignore=None, frac=0.3):
    lab = rng.randint(0, k, size=shape).astype(np.float32)
    if ignore is not None:
        lab[rng.rand(*shape) < frac] = ignore
    return lab


def forward_case(case_id, layer_text, bottoms):
    """Forward only (no force_backward), stored in layer_oracle's format without diffs."""
    return case(case_id, layer_text, bottoms, force_backward=False, backward=False)


def param_fed_case(case_id, layer_text, bottoms, seed=0):
    """Backward without force_backward, bottom 0 fed by a Parameter layer (InfogainLoss with H as a
    bottom aborts when force_backward asks for a gradient to H)."""
    return case(case_id, layer_text, bottoms, seed=seed, force_backward=False, grad_bottoms=(0,))


def L(type_, bottoms, tops=("loss",), extra=""):
    s = 'name: "l" type: "%s"\n' % type_
    s += "".join('bottom: "%s"\n' % b for b in bottoms)
    s += "".join('top: "%s"\n' % t for t in tops)
    return s + extra


def softmax_cases():
    x, lab = randn(4, 5, scale=2), labels((4,), 5)
    case("loss_softmax_default", L("SoftmaxWithLoss", ["x", "y"]), [x, lab], top_diff_scale=3)
    x4 = randn(2, 3, 2, 3, scale=2)
    lab4 = labels((2, 1, 2, 3), 3, ignore=255)
    for mode in ("FULL", "VALID", "BATCH_SIZE", "NONE"):
        case("loss_softmax_ignore_%s" % mode.lower(),
             L("SoftmaxWithLoss", ["x", "y"], extra="loss_param { ignore_label: 255 normalization: %s }" % mode),
             [x4, lab4])
    for flag in ("false", "true"):
        case("loss_softmax_normalize_%s" % flag,
             L("SoftmaxWithLoss", ["x", "y"], extra="loss_param { ignore_label: 255 normalize: %s }" % flag),
             [x4, lab4])
    case("loss_softmax_normalization_wins",
         L("SoftmaxWithLoss", ["x", "y"], extra="loss_param { ignore_label: 255 normalize: false normalization: FULL }"),
         [x4, lab4])
    xa, laba = randn(2, 3, 4, scale=2), labels((2, 3), 4)
    case("loss_softmax_axis2", L("SoftmaxWithLoss", ["x", "y"], extra="softmax_param { axis: 2 }"), [xa, laba])
    case("loss_softmax_axis_neg1_ignore",
         L("SoftmaxWithLoss", ["x", "y"], extra="softmax_param { axis: -1 } loss_param { ignore_label: 1 }"),
         [xa, laba])
    # A second top aborts Caffe's setup (its internal Softmax inherits both loss weights), so the
    # probabilities are checked against a plain Softmax on the inputs of loss_softmax_ignore_valid.
    forward_case("loss_softmax_prob_ref", 'name: "l" type: "Softmax" bottom: "x" top: "prob"', [x4])
    xt = np.array([[60., -60., 0.], [-50., 0., 50.]], np.float32)  # p[label] underflows to 0 -> FLT_MIN
    case("loss_softmax_clip", L("SoftmaxWithLoss", ["x", "y"]), [xt, np.array([1., 0.], np.float32)])


def sigmoid_cases():
    x, t = randn(3, 4, scale=2), labels((3, 4), 2)
    case("loss_sigmoid_default", L("SigmoidCrossEntropyLoss", ["x", "t"]), [x, t], top_diff_scale=2)
    x3, t3 = randn(2, 3, 2, scale=3), labels((2, 3, 2), 2, ignore=-1)
    for mode in ("FULL", "VALID", "BATCH_SIZE", "NONE"):
        case("loss_sigmoid_ignore_%s" % mode.lower(),
             L("SigmoidCrossEntropyLoss", ["x", "t"], extra="loss_param { ignore_label: -1 normalization: %s }" % mode),
             [x3, t3])
    case("loss_sigmoid_normalize_true",
         L("SigmoidCrossEntropyLoss", ["x", "t"], extra="loss_param { ignore_label: -1 normalize: true }"), [x3, t3])
    soft = rng.rand(2, 6).astype(np.float32)  # soft targets, different shape with equal count
    case("loss_sigmoid_soft", L("SigmoidCrossEntropyLoss", ["x", "t"]), [randn(2, 3, 2, scale=3), soft])


def simple_cases():
    case("loss_euclidean", L("EuclideanLoss", ["a", "b"]), [randn(3, 4), randn(3, 4, 1, 1)], top_diff_scale=2)
    x, lab = randn(4, 5), labels((4,), 5)
    case("loss_hinge_l1", L("HingeLoss", ["x", "y"]), [x, lab])
    case("loss_hinge_l2", L("HingeLoss", ["x", "y"], extra="hinge_loss_param { norm: L2 }"), [x, lab])
    a, b = randn(6, 3, 1, 1, scale=0.7), randn(6, 3, 1, 1, scale=0.7)
    sim = np.array([1, 0, 0, 1, 0, 0], np.float32).reshape(6, 1, 1, 1)
    case("loss_contrastive", L("ContrastiveLoss", ["a", "b", "s"], extra="contrastive_loss_param { margin: 1.6 }"),
         [a, b, sim])
    case("loss_contrastive_legacy",
         L("ContrastiveLoss", ["a", "b", "s"], extra="contrastive_loss_param { margin: 2.5 legacy_version: true }"),
         [a, b, sim])
    p = rng.rand(4, 5).astype(np.float32) + 0.05
    p /= p.sum(1, keepdims=True)
    lab = np.array([0, 3, 4, 1], np.float32).reshape(4, 1, 1, 1)
    p[2, 4] = 1e-30  # below kLOG_THRESHOLD: clipped to 1e-20
    case("loss_multinomial", L("MultinomialLogisticLoss", ["p", "y"]), [p, lab], top_diff_scale=0.5)


def infogain_cases():
    k = 4
    H = np.abs(randn(k, k)) + np.eye(k, dtype=np.float32)
    x, lab = randn(3, k, scale=2), labels((3,), k)
    param_fed_case("loss_infogain_bottom", L("InfogainLoss", ["x", "y", "H"]), [x, lab, H.reshape(1, 1, k, k)])
    src = os.path.join(tempfile.gettempdir(), "recaffe_infogain_H.binaryproto")
    with open(src, "wb") as f:
        f.write(caffe.io.array_to_blobproto(H.reshape(1, 1, k, k)).SerializeToString())
    xs, labs = randn(2, 3, k, scale=2), labels((2, 3), k, ignore=7)
    for cid, extra, tops in (
            ("loss_infogain_source_axis2", 'infogain_loss_param { source: "%s" axis: 2 } '
             'loss_param { ignore_label: 7 }' % src, ("loss",)),
            ("loss_infogain_source_prob", 'infogain_loss_param { source: "%s" axis: -1 } '
             'loss_param { ignore_label: 7 normalization: BATCH_SIZE } loss_weight: 1 loss_weight: 0' % src,
             ("loss", "prob"))):
        out = case(cid, L("InfogainLoss", ["x", "y"], tops=tops, extra=extra), [xs, labs])
        out["infogain_H"] = H
        np.savez(os.path.join(GOLDEN, cid + ".npz"), **out)
    os.unlink(src)


def accuracy_cases():
    x, lab = randn(8, 5), labels((8,), 5)
    forward_case("loss_accuracy_top1", L("Accuracy", ["x", "y"], tops=("acc",)), [x, lab])
    forward_case("loss_accuracy_top3_perclass",
                 L("Accuracy", ["x", "y"], tops=("acc", "per_class"), extra="accuracy_param { top_k: 3 }"), [x, lab])
    # ties: the true class ties with others (master: ties count against the true class)
    xt = np.array([[1, 1, 0, 0], [2, 2, 2, 0], [0, 3, 3, 1], [5, 1, 5, 5], [0, 0, 0, 0]], np.float32)
    lt = np.array([0, 2, 1, 3, 3], np.float32)
    for k in (1, 2, 3):
        forward_case("loss_accuracy_ties_top%d" % k,
                     L("Accuracy", ["x", "y"], tops=("acc", "per_class"), extra="accuracy_param { top_k: %d }" % k),
                     [xt, lt])
    x4, lab4 = randn(2, 4, 2, 3), labels((2, 1, 2, 3), 4, ignore=-1)
    forward_case("loss_accuracy_spatial_ignore",
                 L("Accuracy", ["x", "y"], tops=("acc", "per_class"), extra="accuracy_param { ignore_label: -1 top_k: 2 }"),
                 [x4, lab4])
    xa, laba = randn(2, 3, 5), labels((2, 3), 5)
    forward_case("loss_accuracy_axis2", L("Accuracy", ["x", "y"], tops=("acc",), extra="accuracy_param { axis: -1 }"),
                 [xa, laba])
    forward_case("loss_accuracy_all_ignored",
                 L("Accuracy", ["x", "y"], tops=("acc", "per_class"), extra="accuracy_param { ignore_label: 2 }"),
                 [x[:3], np.full((3,), 2, np.float32)])


if __name__ == "__main__":
    os.makedirs(GOLDEN, exist_ok=True)
    softmax_cases()
    sigmoid_cases()
    simple_cases()
    infogain_cases()
    accuracy_cases()
    print("wrote loss goldens to", os.path.normpath(GOLDEN))
