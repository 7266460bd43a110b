"""A deepdream-style loop (BVLC's deepdream notebook's make_step) over three input sizes: reshape the
input blob, forward(end='mix'), set mix's diff to its data, backward(start='mix'), step the image along
the data diff. Caffe reshapes only the layers a partial forward runs, so the smallest size works though
conv3 past 'mix' could not take it. run(caffe, work) -> {key: array}:

  <size>_grad_<it>, <size>_image    the data diff of each step and the image after the steps
  <size>_mix                        mix's data at the last step
  <size>_prob_shape, _conv3_shape   shapes of blobs past 'end' (Caffe leaves them as they were)
  final_prob                        a full forward after reshaping back to the net's own size
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _recipe import array, fill_params, write  # noqa: E402

NET = """name: 'dream' force_backward: true
input: 'data' input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1' convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'pool1' type: 'Pooling' bottom: 'conv1' top: 'pool1' pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: 'norm1' type: 'LRN' bottom: 'pool1' top: 'norm1' lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layer { name: 'conv2' type: 'Convolution' bottom: 'norm1' top: 'conv2' convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: 'relu2' type: 'ReLU' bottom: 'conv2' top: 'conv2' }
layer { name: 'a' type: 'Convolution' bottom: 'conv2' top: 'a' convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: 'relu_a' type: 'ReLU' bottom: 'a' top: 'a' }
layer { name: 'b' type: 'Convolution' bottom: 'conv2' top: 'b' convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: 'mix' type: 'Concat' bottom: 'a' bottom: 'b' top: 'mix' }
layer { name: 'pool2' type: 'Pooling' bottom: 'mix' top: 'pool2' pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: 'conv3' type: 'Convolution' bottom: 'pool2' top: 'conv3' convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: 'pool3' type: 'Pooling' bottom: 'conv3' top: 'pool3' pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'pool3' top: 'ip' inner_product_param { num_output: 10 } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
"""
SIZES = ((32, 32), (21, 26), (9, 10))


def make_step(net, step_size=1.5, end="mix"):
    src = net.blobs["data"]
    dst = net.blobs[end]
    net.forward(end=end)
    dst.diff[:] = dst.data
    net.backward(start=end)
    g = src.diff[0]
    src.data[:] += step_size / np.abs(g).mean() * g
    return g.copy()


def run(caffe, work):
    net = caffe.Net(write(work, "dream.prototxt", NET), caffe.TEST)
    fill_params(net, 21, scale=0.3)
    out = {}
    for h, w in SIZES:
        key = "%dx%d" % (h, w)
        src = net.blobs["data"]
        src.reshape(1, 3, h, w)
        src.data[0] = array(h * 100 + w, (3, h, w), 0, 1)
        for it in range(2):
            out["%s_grad_%d" % (key, it)] = make_step(net)
        out[key + "_image"] = src.data[0].copy()
        out[key + "_mix"] = net.blobs["mix"].data.copy()
        out[key + "_prob_shape"] = np.array(net.blobs["prob"].data.shape)
        out[key + "_conv3_shape"] = np.array(net.blobs["conv3"].data.shape)
    net.blobs["data"].reshape(1, 3, 32, 32)
    net.blobs["data"].data[...] = array(5, (1, 3, 32, 32), 0, 1)
    out["final_prob"] = net.forward()["prob"].copy()
    return out
