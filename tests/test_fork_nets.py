"""Whole fork nets from the corpus (../shared/corpus, or RECAFFE_CORPUS) with seeded random weights:

* MobileNet-SSD and VGG-SSD deploy nets give OpenCV DNN's detections (boxes to 1e-4, same labels, and
  OpenCV's order once ours, grouped by label as the SSD fork writes them, is sorted by score as OpenCV
  sorts them);
* ShuffleNet v2 and Xception (depthwise) give OpenCV's logits;
* PSPNet (its train_val with the data layer made an Input) builds at full size; a copy with 1/16 of the
  convolution channels (same pyramid pooling and Interp layers) matches OpenCV at 513 x 513;
* SegNet and Faster R-CNN train nets (data and py-faster-rcnn Python layers made Inputs, channels
  thinned) run forward and backward, and an SGD step lowers their loss on the batch: the fork layers
  train.
"""
import numpy as np
import pytest
import torch

from corpus import corpus_file, needs_corpus
from fork_oracle import align_ties, opencv_forward, seed_weights, temper_ssd_confidences
from recaffe.netspec.net.net import Net
from recaffe.protos import caffe_pb2, io, printer

pytestmark = needs_corpus

MOBILENET_SSD = "chuanqi305__MobileNet-SSD/deploy.prototxt"
VGG_SSD = "xzgz__caffe-ssd/models__VGGNet__VOC0712__SSD_300x300__deploy.prototxt"


def _seeded(proto, tmp_path, seed=0, lenient=False, temper=1.0):
    net = Net(proto, lenient=lenient)
    temper_ssd_confidences(seed_weights(net, seed), temper)
    model = str(tmp_path / "seeded.caffemodel")
    net.save_weights(model)
    return net, model


def _image(shape, seed=1):
    return (np.random.default_rng(seed).uniform(-1, 1, shape)).astype(np.float32)


@pytest.mark.parametrize("local, temper, min_rows", [(MOBILENET_SSD, 0.3, 40), (VGG_SSD, 1.0, 200)])
def test_ssd_deploy_detections_equal_opencv(tmp_path, local, temper, min_rows):
    """(``temper`` scales the random confidence heads so that scores do not saturate into float ties.)"""
    proto = corpus_file(local)
    net, model = _seeded(proto, tmp_path, temper=temper)
    x = _image(net.blob_shapes["data"])
    with torch.no_grad():
        ours = net(data=torch.from_numpy(x))["detection_out"].numpy()[0, 0]
    cv = opencv_forward(proto, model, {"data": x}, "detection_out")[0, 0]
    k = len(ours)
    assert k >= min_rows and len(cv) >= k and not cv[k:].any(), (k, len(cv))
    by_score = ours[np.lexsort((np.arange(k), -ours[:, 2], ours[:, 0]))]
    cv = align_ties(by_score, cv[:k])
    np.testing.assert_array_equal(by_score[:, :2], cv[:, :2])                 # image, label, in order
    np.testing.assert_allclose(by_score[:, 2], cv[:, 2], atol=1e-5)           # scores
    np.testing.assert_allclose(by_score[:, 3:], cv[:, 3:], atol=1e-4)         # boxes
    assert len(set(ours[:, 1])) > 3                                          # several classes detected


@pytest.mark.parametrize("local, blob", [("farmingyard__ShuffleNet/shufflenet_v2_1x_deploy.prototxt", "fc1000"),
                                         ("soeaver__caffe-model/cls__inception__deploy_xception-dw.prototxt",
                                          "classifier")])
def test_mobile_classifiers_equal_opencv(tmp_path, local, blob):
    proto = corpus_file(local)
    net, model = _seeded(proto, tmp_path)
    types = set(net.layer_types)
    assert "ConvolutionDepthwise" in types
    x = _image(net.blob_shapes[net.inputs[0]])
    with torch.no_grad():
        net(**{net.inputs[0]: torch.from_numpy(x)})
    ours = net.blobs[blob].numpy()
    cv = opencv_forward(proto, model, {net.inputs[0]: x}, blob)
    scale = np.abs(cv).max()
    np.testing.assert_allclose(ours.reshape(cv.shape), cv, atol=2e-5 * scale, rtol=1e-4)


def _with_inputs(local, inputs, drop=(), thin=1, lenient=False):
    """The corpus net with the layers named in ``inputs`` ({layer: {top: shape}}) replaced by Input
    layers, the layers in ``drop`` removed, and convolution / inner product outputs of 100 or more
    divided by ``thin``, as prototxt text."""
    src = io.read_net(corpus_file(local), lenient=lenient)
    out = caffe_pb2.NetParameter(name=src.name)
    for lp in src.layer:
        if lp.name in drop:
            continue
        if lp.name in inputs:
            for top, shape in inputs[lp.name].items():
                inp = out.layer.add(name=f"{lp.name}_{top}", type="Input", top=[top])
                inp.input_param.shape.add(dim=list(shape))
            continue
        new = out.layer.add()
        new.CopyFrom(lp)
        for p in (new.convolution_param, new.inner_product_param):
            if p.num_output >= 100:
                p.num_output //= thin
    return printer.message_to_text(out)


PSPNET = "soeaver__caffe-model/seg__pspnet__models__pascal_voc__resnet101-v2__psp_resnet101-v2-merge.prototxt"
PSP_DROP = ("loss", "accuracy", "auxi_loss", "auxi_accuracy")


def _psp(thin):
    with pytest.warns(Warning):      # its data and accuracy layers carry fields of forks recaffe does not run
        return _with_inputs(PSPNET, {"data": {"data": (1, 3, 513, 513)}},
                            drop=[n for n in PSP_DROP], thin=thin, lenient=True)


def test_pspnet_builds_at_full_size(tmp_path):
    text = _psp(thin=1)
    (tmp_path / "psp.prototxt").write_text(text)
    net = Net(str(tmp_path / "psp.prototxt"))
    assert net.blob_shapes["score_map_interp"] == (1, 21, 513, 513)
    assert net.blob_shapes["psp_pool1_interp"] == (1, 512, 64, 64)
    assert net.layer_types.count("Interp") == 10 and "SoftmaxWithLoss" not in net.layer_types


def test_thin_pspnet_equals_opencv(tmp_path):
    proto = tmp_path / "psp_thin.prototxt"
    proto.write_text(_psp(thin=16))
    net, model = _seeded(str(proto), tmp_path)
    x = _image((1, 3, 513, 513))
    with torch.no_grad():
        net(data=torch.from_numpy(x))
    for blob in ("psp_pool2_interp", "score_map_interp", "auxi_score_map_interp"):
        ours, cv = net.blobs[blob].numpy(), opencv_forward(str(proto), model, {"data": x}, blob)
        np.testing.assert_allclose(ours, cv, atol=1e-4 * np.abs(cv).max(), err_msg=blob)


def _sgd_step_lowers_loss(net, feed, lr):
    torch.manual_seed(0)           # the same dropout masks in both passes
    net(**feed)
    before = net.loss.item()
    net.backward()
    with torch.no_grad():
        for p, lr_mult, *_ in net.learnable_params():
            if p.grad is not None and lr_mult:
                p -= lr * lr_mult * p.grad
                p.grad = None
    torch.manual_seed(0)
    net(**feed)
    assert np.isfinite(before) and net.loss.item() < before


def test_segnet_trains(tmp_path):
    """SegNet's train net (CamVid 360 x 480, 11 classes) with BN in LEARN mode and Upsample driven by
    the pooling masks; its class-weighted loss fields are SegNet's (not run here), so it reads leniently."""
    with pytest.warns(Warning, match="class_weighting|weight_by_label_freqs"):
        text = _with_inputs("alexgkendall__SegNet-Tutorial/Models__segnet_train.prototxt",
                            {"data": {"data": (2, 3, 360, 480), "label": (2, 1, 360, 480)}}, drop=["accuracy"],
                            thin=16, lenient=True)
    (tmp_path / "segnet.prototxt").write_text(text)
    net = Net(str(tmp_path / "segnet.prototxt"), phase="TRAIN")
    assert net.layer_types.count("Upsample") == 5 and net.layer_types.count("BN") == 25
    seed_weights(net)
    rng = np.random.default_rng(0)
    feed = {"data": torch.from_numpy(rng.uniform(-1, 1, (2, 3, 360, 480)).astype(np.float32)),
            "label": torch.from_numpy(rng.integers(0, 11, (2, 1, 360, 480)).astype(np.float32))}
    _sgd_step_lowers_loss(net, feed, lr=0.05)


def test_faster_rcnn_trains(tmp_path):
    """py-faster-rcnn's VGG16 end-to-end train net with its Python layers (data, anchor targets,
    proposals, proposal targets) replaced by Inputs: ROIPooling and both SmoothL1Loss layers train."""
    r, a = 8, 9
    text = _with_inputs("rbgirshick__py-faster-rcnn/models__pascal_voc__VGG16__faster_rcnn_end2end__train.prototxt", {
        "input-data": {"data": (1, 3, 160, 192), "im_info": (1, 3), "gt_boxes": (1, 5)},
        "rpn-data": {"rpn_labels": (1, 1, a * 10, 12), "rpn_bbox_targets": (1, 4 * a, 10, 12),
                     "rpn_bbox_inside_weights": (1, 4 * a, 10, 12), "rpn_bbox_outside_weights": (1, 4 * a, 10, 12)},
        "roi-data": {"rois": (r, 5), "labels": (r,), "bbox_targets": (r, 84), "bbox_inside_weights": (r, 84),
                     "bbox_outside_weights": (r, 84)}}, drop=["proposal", "rpn_cls_prob", "rpn_cls_prob_reshape"],
        thin=8)
    (tmp_path / "frcnn.prototxt").write_text(text)
    net = Net(str(tmp_path / "frcnn.prototxt"), phase="TRAIN")
    assert net.blob_shapes["pool5"] == (r, 64, 7, 7)
    seed_weights(net)
    rng = np.random.default_rng(0)
    rois = np.concatenate([np.zeros((r, 1)), np.sort(rng.uniform(0, 160, (r, 2, 2)), 1).reshape(r, 4)], 1)
    inside = np.zeros((r, 84))
    inside[:, 4:8] = 1
    t = lambda v: torch.from_numpy(np.asarray(v, np.float32))  # noqa: E731
    feed = {"data": t(rng.uniform(-1, 1, (1, 3, 160, 192))), "im_info": t([[160, 192, 1]]),
            "gt_boxes": t(np.zeros((1, 5))),
            "rpn_labels": t(rng.integers(-1, 2, (1, 1, a * 10, 12))),
            "rpn_bbox_targets": t(rng.standard_normal((1, 4 * a, 10, 12))),
            "rpn_bbox_inside_weights": t(np.ones((1, 4 * a, 10, 12))),
            "rpn_bbox_outside_weights": t(np.full((1, 4 * a, 10, 12), 1 / 256)),
            "rois": t(rois), "labels": t(np.ones(r)), "bbox_targets": t(rng.standard_normal((r, 84))),
            "bbox_inside_weights": t(inside), "bbox_outside_weights": t(inside)}
    _sgd_step_lowers_loss(net, feed, lr=0.001)
    assert net.layer("roi_pool5").blobs is not None and net.blobs["loss_bbox"].item() > 0
