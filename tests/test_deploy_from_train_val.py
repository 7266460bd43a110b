"""tools/deploy_from_train_val.py: data, loss, accuracy and TRAIN-only layers go, an Input of the data
layer's shape and a Softmax 'prob' come in, and the trained weights load into the result: on the same
batch its 'prob' is the softmax of the TEST net's classifier output."""
import numpy as np
import pytest
from PIL import Image

import recaffe as caffe
from recaffe.netspec.spec import write
from recaffe.protos.errors import RecaffeError
from recaffe.protos.io import read_net
from recaffe.tools import deploy_from_train_val as tool

TRAIN_VAL = """name: "tv"
layer { name: "data" type: "ImageData" top: "data" top: "label" include { phase: TRAIN }
  transform_param { crop_size: 6 mirror: true mean_value: 100 }
  image_data_param { source: "LIST" batch_size: 4 new_height: 8 new_width: 8 } }
layer { name: "data" type: "ImageData" top: "data" top: "label" include { phase: TEST }
  transform_param { crop_size: 6 mean_value: 100 }
  image_data_param { source: "LIST" batch_size: 3 new_height: 8 new_width: 8 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 3 } }
layer { name: "train_only" type: "Power" bottom: "fc" top: "fc_pow" include { phase: TRAIN } }
layer { name: "label_user" type: "Power" bottom: "label" top: "label2" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy"
  include { phase: TEST } }
"""


@pytest.fixture
def train_val(tmp_path):
    rng = np.random.RandomState(0)
    lines = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)).save(p)
        lines.append(f"{p} {i}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    path = tmp_path / "train_val.prototxt"
    path.write_text(TRAIN_VAL.replace("LIST", str(tmp_path / "list.txt")))
    return path


def test_layers_and_input_shape(train_val, tmp_path, capsys):
    out = tmp_path / "deploy.prototxt"
    assert tool.main([str(train_val), str(out)]) == 0
    net = read_net(str(out))
    assert [(l.name, l.type) for l in net.layer] == [
        ("data", "Input"), ("conv", "Convolution"), ("relu", "ReLU"), ("drop", "Dropout"),
        ("fc", "InnerProduct"), ("prob", "Softmax")]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 6, 6]
    assert list(net.layer[-1].bottom) == ["fc"] and list(net.layer[-1].top) == ["prob"]
    assert all(not len(l.include) and not len(l.exclude) for l in net.layer)
    assert [p.lr_mult for p in net.layer[1].param] == [1, 2]
    tool.main([str(train_val), str(out), "--batch", "5", "--noprob"])
    net = read_net(str(out))
    assert list(net.layer[0].input_param.shape[0].dim) == [5, 3, 6, 6] and net.layer[-1].name == "fc"
    tool.main([str(train_val), str(out), "--shape", "2,3,7,7"])
    assert list(read_net(str(out)).layer[0].input_param.shape[0].dim) == [2, 3, 7, 7]


def test_trained_weights_load_and_match_test_net(train_val, tmp_path):
    trained = caffe.Net(str(train_val), caffe.TEST)
    rng = np.random.RandomState(1)
    for blobs in trained.params.values():
        for b in blobs:
            b.data[...] = rng.uniform(-0.3, 0.3, b.data.shape)
    weights = tmp_path / "trained.caffemodel"
    trained.save(str(weights))
    trained.forward()
    data, fc = trained.blobs["data"].data.copy(), trained.blobs["fc"].data.copy()
    out = tmp_path / "deploy.prototxt"
    tool.main([str(train_val), str(out), "--batch", "3"])
    deploy = caffe.Net(str(out), caffe.TEST, weights=str(weights))
    prob = deploy.forward(data=data)["prob"]
    e = np.exp(fc - fc.max(1, keepdims=True))
    np.testing.assert_allclose(prob, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_errors(tmp_path):
    lmdb_net = tmp_path / "lmdb.prototxt"
    lmdb_net.write_text('layer { name: "d" type: "Data" top: "data" top: "label" data_param { source: "x" '
                        'batch_size: 2 } }\nlayer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
                        'inner_product_param { num_output: 2 } }\n')
    with pytest.raises(RecaffeError, match="cannot tell the input shape"):
        tool.main([str(lmdb_net), str(tmp_path / "o.prototxt")])
    tool.main([str(lmdb_net), str(tmp_path / "o.prototxt"), "--shape", "1,1,4,4"])
    assert [l.type for l in read_net(str(tmp_path / "o.prototxt")).layer] == ["Input", "InnerProduct"]
    empty = tmp_path / "empty.prototxt"
    write(read_net('layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc" }'), str(empty))
    with pytest.raises(RecaffeError, match="no data layer"):
        tool.main([str(empty), str(tmp_path / "o2.prototxt")])
    with pytest.raises(RecaffeError, match="shape"):
        tool.main([str(lmdb_net), str(tmp_path / "o.prototxt"), "--shape", "1,x"])
