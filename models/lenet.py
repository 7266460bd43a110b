"""LeNet for MNIST as written in BVLC Caffe's examples/01-learning-lenet.ipynb (`lenet(lmdb, batch_size)`).

Data from an LMDB scaled by 1/255 (`scale=1./255`), two 5x5 convolutions
(20 and 50 outputs, xavier) each followed by 2x2 max pooling, a 500-wide ReLU layer and a 10-way classifier
with SoftmaxWithLoss. The text equals the notebook's under pycaffe (tests/test_dsl.py).
"""
from recaffe.netspec.spec import NetSpec, layers as L, params as P, write

__all__ = ["lenet"]

_XAVIER = dict(type="xavier")


def lenet(lmdb, batch_size, path=None):
    """The notebook's LeNet reading `lmdb`; returns the NetParameter (or writes it to `path`)."""
    n = NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                             transform_param=dict(scale=1. / 255), ntop=2)
    x = n.data
    for i, nout in ((1, 20), (2, 50)):
        n[f"conv{i}"] = L.Convolution(x, kernel_size=5, num_output=nout, weight_filler=_XAVIER)
        n[f"pool{i}"] = x = L.Pooling(n[f"conv{i}"], kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(x, num_output=500, weight_filler=_XAVIER)
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=_XAVIER)
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    proto = n.to_proto()
    return write(proto, path) if path is not None else proto
