"""A pycaffe script in the style of Caffe's examples (NetSpec, net surgery, preprocessing, saliency,
Classifier), Python 3. It is run unchanged by real pycaffe (tests/oracle/make_facade_goldens.py records
its output) and by ``tools/pycaffe.py`` (tests/test_notebook_port.py compares).

    python net_surgery.py OUT_DIR
"""
import os
import sys

import numpy as np
from google.protobuf import text_format

import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2


def fmt(a):
    return " ".join("%.4f" % v for v in np.asarray(a, dtype=np.float64).ravel())


out_dir = sys.argv[1]
caffe.set_mode_cpu()

n = caffe.NetSpec()
n.data = L.Input(shape=dict(dim=[10, 3, 8, 8]))
n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=4, weight_filler=dict(type="xavier"))
n.relu1 = L.ReLU(n.conv1, in_place=True)
n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
n.fc = L.InnerProduct(n.pool1, num_output=3)
n.prob = L.Softmax(n.fc)
proto = os.path.join(out_dir, "deploy.prototxt")
with open(proto, "w") as f:
    f.write(str(n.to_proto()))

net = caffe.Net(proto, caffe.TEST)
rng = np.random.RandomState(0)
for name, blobs in net.params.items():
    for b in blobs:
        b.data[...] = rng.uniform(-0.5, 0.5, b.data.shape)
print("inputs", net.inputs, "outputs", net.outputs)
for k, v in net.blobs.items():
    print("blob", k, v.data.shape, v.count)
for k, v in net.params.items():
    print("param", k, [b.data.shape for b in v])
print("layers", [(name, layer.type, len(layer.blobs)) for name, layer in zip(net._layer_names, net.layers)])
weights = os.path.join(out_dir, "weights.caffemodel")
net.save(weights)

mean = np.array([104.0, 117.0, 123.0])
transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
transformer.set_transpose("data", (2, 0, 1))
transformer.set_channel_swap("data", (2, 1, 0))
transformer.set_raw_scale("data", 255)
transformer.set_mean("data", mean)
transformer.set_input_scale("data", 0.0078125)
img = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
x = transformer.preprocess("data", img)
print("preprocessed", x.shape, fmt(x[:, 0, 0]))
net.blobs["data"].data[...] = x
out = net.forward()
print("prob", fmt(out["prob"][0]))
print("deprocess", fmt(transformer.deprocess("data", net.blobs["data"].data[0])[0, 0]))

net.params["conv1"][1].data[...] = 0
net.params["fc"][0].data[...] *= 2
print("surgery prob", fmt(net.forward()["prob"][0]))
print("conv1 max %.4f" % net.blobs["conv1"].data.max())
print("fc top", fmt(net.forward(end="fc")["fc"][0]))

msg = caffe_pb2.NetParameter()
with open(proto) as f:
    text_format.Merge(f.read(), msg)
msg.force_backward = True
proto_fb = os.path.join(out_dir, "deploy_fb.prototxt")
with open(proto_fb, "w") as f:
    f.write(text_format.MessageToString(msg))
sal = caffe.Net(proto_fb, weights, caffe.TEST)
sal.blobs["data"].data[...] = x
probs = sal.forward()["prob"]
grad = np.zeros_like(probs)
grad[:, 1] = 1
diffs = sal.backward(prob=grad)
print("saliency", fmt(np.abs(diffs["data"][0]).max(axis=0)[0]))
print("fc diff", fmt(sal.blobs["fc"].diff[0]))

blob = caffe.io.array_to_blobproto(mean.reshape(1, 3, 1, 1))
raw = blob.SerializeToString()
back = caffe_pb2.BlobProto()
back.ParseFromString(raw)
print("blobproto", caffe.io.blobproto_to_array(back).shape)

clf = caffe.Classifier(proto, weights, image_dims=(10, 10), mean=mean, raw_scale=255,
                       channel_swap=(2, 1, 0), input_scale=0.0078125)
imgs = [rng.uniform(0, 1, (10, 10, 3)).astype(np.float32) for _ in range(2)]
print("classifier oversample", fmt(clf.predict(imgs)))
print("classifier center", fmt(clf.predict(imgs, oversample=False)))
