"""CIFAR-10 "quick" net and solver of BVLC Caffe's examples/cifar10, written with the NetSpec DSL.

`cifar10_quick()` gives examples/cifar10/cifar10_quick_train_test.prototxt, `cifar10_quick_deploy()` gives
examples/cifar10/cifar10_quick.prototxt and `cifar10_quick_solver()` cifar10_quick_solver.prototxt, field for
field (tests/test_dsl.py compares them with those files as printed by pycaffe).

The net: three 5x5 convolutions (32, 32, 64 outputs, pad 2), the first followed by 3x3/2 max pooling then
ReLU, the others by ReLU then 3x3/2 average pooling; two fully connected layers (64, 10). Biases learn at
twice the base rate. The train/test form has two Data layers named "cifar" (TRAIN and TEST) with the same
tops, which a NetSpec cannot hold under one name each, so the TEST one is built apart and spliced in.
"""
from recaffe.netspec.spec import NetSpec, layers as L, params as P, solver, write
from recaffe.protos import caffe_pb2

__all__ = ["cifar10_quick", "cifar10_quick_deploy", "cifar10_quick_solver"]

_PARAM = [dict(lr_mult=1), dict(lr_mult=2)]
# conv name, outputs, weight std, pooling after it; the first pools before its ReLU.
_CONVS = [("conv1", 32, 0.0001, P.Pooling.MAX), ("conv2", 32, 0.01, P.Pooling.AVE), ("conv3", 64, 0.01, P.Pooling.AVE)]


def _gaussian(std):
    return dict(weight_filler=dict(type="gaussian", std=std), bias_filler=dict(type="constant"))


def _body(n, fillers):
    """conv1..ip2 on n.data; `fillers` adds the training fillers (the deploy net has none)."""
    x = n.data
    for i, (name, nout, std, pool) in enumerate(_CONVS, 1):
        n[name] = L.Convolution(x, param=_PARAM, num_output=nout, pad=2, kernel_size=5, stride=1,
                                **(_gaussian(std) if fillers else {}))
        if i == 1:
            n.pool1 = L.Pooling(n.conv1, pool=pool, kernel_size=3, stride=2)
            n.relu1 = x = L.ReLU(n.pool1, in_place=True)
        else:
            n[f"relu{i}"] = L.ReLU(n[name], in_place=True)
            n[f"pool{i}"] = x = L.Pooling(n[f"relu{i}"], pool=pool, kernel_size=3, stride=2)
    n.ip1 = L.InnerProduct(x, param=_PARAM, num_output=64, **(_gaussian(0.1) if fillers else {}))
    n.ip2 = L.InnerProduct(n.ip1, param=_PARAM, num_output=10, **(_gaussian(0.1) if fillers else {}))
    return n.ip2


def _data(n, source, mean_file, batch_size, phase):
    n.data, n.label = L.Data(name="cifar", include=dict(phase=phase), transform_param=dict(mean_file=mean_file),
                             source=source, batch_size=batch_size, backend=P.Data.LMDB, ntop=2)


def _done(proto, path):
    return write(proto, path) if path is not None else proto


def cifar10_quick(train_source="examples/cifar10/cifar10_train_lmdb", test_source="examples/cifar10/cifar10_test_lmdb",
                  mean_file="examples/cifar10/mean.binaryproto", batch_size=100, test_batch_size=100, path=None):
    """The train/test net "CIFAR10_quick": Data (TRAIN and TEST), body, Accuracy (TEST) and SoftmaxWithLoss."""
    n = NetSpec()
    _data(n, train_source, mean_file, batch_size, caffe_pb2.TRAIN)
    ip2 = _body(n, fillers=True)
    n.accuracy = L.Accuracy(ip2, n.label, include=dict(phase=caffe_pb2.TEST))
    n.loss = L.SoftmaxWithLoss(ip2, n.label)
    test = NetSpec()
    _data(test, test_source, mean_file, test_batch_size, caffe_pb2.TEST)
    layers = list(n.to_proto().layer)
    net = caffe_pb2.NetParameter(name="CIFAR10_quick")
    net.layer.extend(layers[:1] + list(test.to_proto().layer) + layers[1:])
    return _done(net, path)


def cifar10_quick_deploy(batch=1, path=None):
    """The deploy net "CIFAR10_quick_test": an Input of batch x 3 x 32 x 32, body, Softmax `prob`."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, 32, 32]))
    n.prob = L.Softmax(_body(n, fillers=False))
    net = n.to_proto()
    net.name = "CIFAR10_quick_test"
    return _done(net, path)


def cifar10_quick_solver(net="examples/cifar10/cifar10_quick_train_test.prototxt", base_lr=0.001, max_iter=4000,
                         solver_mode="GPU", path=None):
    """The solver: fixed rate 0.001, momentum 0.9, weight decay 0.004, testing 100 batches every 500."""
    s = solver(net=net, test_iter=[100], test_interval=500, base_lr=base_lr, momentum=0.9, weight_decay=0.004,
               lr_policy="fixed", display=100, max_iter=max_iter, snapshot=4000,
               snapshot_prefix="examples/cifar10/cifar10_quick", solver_mode=solver_mode)
    return _done(s, path)
