"""Backward from diffs the script sets, as gradient/saliency scripts use it (pycaffe's test_net.py
test_backward_start_end and friends). run(caffe, work) -> {key: array}:

  nofwd_*      no forward at all: ip_blob.diff set by hand, backward(start='ip', end='ip')
  full_*       forward() then backward() of the loss net (force_backward: data diffs too)
  partial_*    forward(end='ip'), ip_blob.diff by hand, backward(start='ip'): diffs down to the data
  cleared      a param diff after clear_param_diffs (held array)
  sal_*        saliency: deploy net with force_backward, prob.diff one-hot, backward(); the kwargs form
               backward(prob=...); a hand-set partial backward(start='ip', end='ip')
  noforce_*    the same deploy net without force_backward: backward() leaves the data diff alone
  bn_*         in-place Convolution -> BatchNorm -> Scale -> ReLU chains (TRAIN batch statistics, and TEST
               global statistics that recaffe runs fused), forward + backward
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _recipe import array, fill_params, write  # noqa: E402

LOSSNET = """name: 'testnet' force_backward: true
layer { type: 'Input' name: 'data' top: 'data' top: 'label'
  input_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } shape { dim: 5 dim: 1 dim: 1 dim: 1 } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 3 kernel_size: 2 pad: 3 }
  param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob' inner_product_param { num_output: 7 } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }
"""

DEPLOY = """name: 'saliency' %s
input: 'data' input_shape { dim: 2 dim: 3 dim: 12 dim: 12 }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1' convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'pool1' type: 'Pooling' bottom: 'conv1' top: 'pool1' pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: 'conv2' type: 'Convolution' bottom: 'pool1' top: 'conv2' convolution_param { num_output: 5 kernel_size: 2 } }
layer { name: 'relu2' type: 'ReLU' bottom: 'conv2' top: 'conv2' }
layer { name: 'ip' type: 'InnerProduct' bottom: 'conv2' top: 'ip' inner_product_param { num_output: 6 } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
"""

BNNET = """name: 'bn' force_backward: true
layer { type: 'Input' name: 'data' top: 'data' top: 'label'
  input_param { shape { dim: 4 dim: 2 dim: 5 dim: 5 } shape { dim: 4 } } }
layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv' convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: 'bn' type: 'BatchNorm' bottom: 'conv' top: 'conv' %s }
layer { name: 'scale' type: 'Scale' bottom: 'conv' top: 'conv' scale_param { bias_term: true } }
layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }
layer { name: 'ip' type: 'InnerProduct' bottom: 'conv' top: 'ip' inner_product_param { num_output: 3 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""


def _param_diffs(net, prefix, out):
    for name in net.params:
        for i, blob in enumerate(net.params[name]):
            out["%s_pdiff_%s_%d" % (prefix, name, i)] = blob.diff.copy()


def lossnet(caffe, work, out):
    net = caffe.Net(write(work, "lossnet.prototxt", LOSSNET), caffe.TRAIN)
    fill_params(net, 1)
    net.blobs["data"].data[...] = array(2, net.blobs["data"].data.shape)
    net.blobs["label"].data[...] = np.random.RandomState(3).randint(7, size=net.blobs["label"].data.shape)
    net.blobs["ip_blob"].diff[...] = array(4, net.blobs["ip_blob"].data.shape)
    got = net.backward(start="ip", end="ip")
    out["nofwd_keys"] = np.array(sorted(got))
    out["nofwd_conv_diff"] = net.blobs["conv"].diff.copy()
    _param_diffs(net, "nofwd", out)
    out["full_loss"] = np.array(net.forward()["loss"])
    got = net.backward()
    out["full_keys"] = np.array(sorted(got))
    for name in ("data", "conv", "ip_blob", "loss"):
        out["full_diff_" + name] = net.blobs[name].diff.copy()
    _param_diffs(net, "full", out)
    held = net.params["conv"][0].diff
    net.clear_param_diffs()
    out["cleared"] = held.copy()
    net.forward(end="ip")
    net.blobs["ip_blob"].diff[...] = array(5, net.blobs["ip_blob"].data.shape)
    net.backward(start="ip")
    for name in ("data", "conv", "ip_blob"):
        out["partial_diff_" + name] = net.blobs[name].diff.copy()
    _param_diffs(net, "partial", out)


def saliency(caffe, work, out):
    net = caffe.Net(write(work, "deploy.prototxt", DEPLOY % "force_backward: true"), caffe.TEST)
    fill_params(net, 6)
    image = array(7, net.blobs["data"].data.shape, 0, 1)
    probs = net.forward(data=image)["prob"]
    out["sal_prob"] = probs.copy()
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(probs)), probs.argmax(1)] = 1
    net.blobs["prob"].diff[...] = onehot
    net.backward()
    out["sal_data_diff"] = net.blobs["data"].diff.copy()
    out["sal_map"] = np.abs(net.blobs["data"].diff).max(axis=1)
    out["sal_kwargs_data_diff"] = net.backward(prob=onehot * 2)["data"].copy()
    net.blobs["ip"].diff[...] = array(8, net.blobs["ip"].data.shape)
    got = net.backward(start="ip", end="ip")
    out["sal_partial_keys"] = np.array(sorted(got))
    out["sal_partial_conv2_diff"] = net.blobs["conv2"].diff.copy()
    out["sal_partial_data_diff"] = net.blobs["data"].diff.copy()      # untouched by the partial pass
    plain = caffe.Net(write(work, "deploy_noforce.prototxt", DEPLOY % ""), caffe.TEST)
    fill_params(plain, 6)
    plain.forward(data=image)
    plain.blobs["prob"].diff[...] = onehot
    plain.backward()
    out["noforce_data_diff"] = plain.blobs["data"].diff.copy()
    out["noforce_conv1_pdiff"] = plain.params["conv1"][0].diff.copy()


def batchnorm(caffe, work, out):
    for tag, phase, bn in (("train", caffe.TRAIN, "batch_norm_param { use_global_stats: false }"),
                           ("global", caffe.TEST, "batch_norm_param { use_global_stats: true }")):
        net = caffe.Net(write(work, "bn_%s.prototxt" % tag, BNNET % bn), phase)
        fill_params(net, 9)
        mean, var, factor = net.params["bn"]
        var.data[...] = np.abs(var.data) + 0.5
        factor.data[...] = 1.0
        net.blobs["data"].data[...] = array(10, net.blobs["data"].data.shape)
        net.blobs["label"].data[...] = np.array([0, 2, 1, 2])
        out["bn_%s_loss" % tag] = np.array(net.forward()["loss"])
        net.backward()
        for name in ("data", "conv", "ip"):
            out["bn_%s_diff_%s" % (tag, name)] = net.blobs[name].diff.copy()
            out["bn_%s_data_%s" % (tag, name)] = net.blobs[name].data.copy()
        for layer in ("conv", "scale", "ip"):
            for i, blob in enumerate(net.params[layer]):
                out["bn_%s_pdiff_%s_%d" % (tag, layer, i)] = blob.diff.copy()


def run(caffe, work):
    out = {}
    lossnet(caffe, work, out)
    saliency(caffe, work, out)
    batchnorm(caffe, work, out)
    return out
