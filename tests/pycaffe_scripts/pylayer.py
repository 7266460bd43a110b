"""pycaffe's test_python_layer.py as a script whose Python layers live in its own module (pylayer_mod.py
beside it). run(caffe, work) -> {key: array}; run as a script (recaffe-pycaffe --allow-python-layers
pylayer.py) it prints each key with its values.

  nofwd_data_diff   three x10 layers, no forward: three.diff = 7, backward() -> 7000 everywhere
  fwd_three         forward with data = 8 -> 8000
  fwd_one_diff      then backward(): one's diff (700 from the 7 still in three.diff)
  reshaped_shapes   data.reshape(4, 4, 4, 4); forward(): every blob's shape
  param_*           ParameterLayer: its blob after forward/backward, the diff, save/copy_from round trip,
                    share_with
  phase_*           PhaseLayer in TRAIN and TEST nets
"""
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

SIMPLE = """name: 'pythonnet' force_backward: true
input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }
layer { type: 'Python' name: 'one' bottom: 'data' top: 'one' python_param { module: 'pylayer_mod' layer: 'SimpleLayer' } }
layer { type: 'Python' name: 'two' bottom: 'one' top: 'two' python_param { module: 'pylayer_mod' layer: 'SimpleLayer' } }
layer { type: 'Python' name: 'three' bottom: 'two' top: 'three' python_param { module: 'pylayer_mod' layer: 'SimpleLayer' } }
"""
PARAM = """name: 'pythonnet' force_backward: true
input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }
layer { type: 'Python' name: 'layer' bottom: 'data' top: 'top' python_param { module: 'pylayer_mod' layer: 'ParameterLayer' } }
"""
PHASE = """name: 'pythonnet' force_backward: true
layer { type: 'Python' name: 'layer' top: 'phase' python_param { module: 'pylayer_mod' layer: 'PhaseLayer' } }
"""


def _file(work, name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(caffe, work):
    out = {}
    net = caffe.Net(_file(work, "simple.prototxt", SIMPLE), caffe.TRAIN)
    net.blobs["three"].diff[...] = 7
    net.backward()
    out["nofwd_data_diff"] = net.blobs["data"].diff.copy()
    net.blobs["data"].data[...] = 8
    net.forward()
    out["fwd_three"] = net.blobs["three"].data.copy()
    net.backward()
    out["fwd_one_diff"] = net.blobs["one"].diff.copy()
    net.blobs["data"].reshape(4, 4, 4, 4)
    net.forward()
    out["reshaped_shapes"] = np.array([net.blobs[n].data.shape for n in net.blobs])

    path = _file(work, "param.prototxt", PARAM)
    net = caffe.Net(path, caffe.TRAIN)
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index("layer")]
    out["param_after_backward"] = np.array([layer.blobs[0].data[0], layer.blobs[0].diff[0]])
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    weights = os.path.join(work, "param.caffemodel")
    net.save(weights)
    layer.blobs[0].data[0] = -1
    before = float(layer.blobs[0].data[0])
    net.copy_from(weights)
    out["param_save_load"] = np.array([before, layer.blobs[0].data[0]])
    net2 = caffe.Net(path, caffe.TRAIN)
    net2.share_with(net)
    out["param_shared"] = np.array(net2.layers[list(net2._layer_names).index("layer")].blobs[0].data)

    phase = _file(work, "phase.prototxt", PHASE)
    for name, ph in (("train", caffe.TRAIN), ("test", caffe.TEST)):
        out["phase_" + name] = np.array(caffe.Net(phase, ph).forward()["phase"])
    return out


if __name__ == "__main__":
    import caffe
    with tempfile.TemporaryDirectory() as work:
        for key, value in sorted(run(caffe, work).items()):
            print(key, np.asarray(value).ravel().tolist())
