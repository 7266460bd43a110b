"""SqueezeNet v1.1 as in DeepScale/SqueezeNet SqueezeNet_v1.1/{train_val,deploy,solver}.prototxt.

conv1 3x3/2 (64) + ReLU relu_conv1, 3x3/2 max pool1; fire modules fire2..fire9 (squeeze 1x1 -> expand 1x1
and expand 3x3 pad 1, each followed by an in-place ReLU, expands concatenated into fire<k>/concat) with
3x3/2 max pooling pool3 and pool5 after fire3 and fire5; dropout drop9 (0.5); conv10 1x1 classifier
(ReLU relu_conv10) and global average pool10, the scores. No `param` blocks, no bias fillers; weights
xavier except conv10 (gaussian mean 0, std 0.01); the deploy file has no fillers. Both nets are unnamed,
and the train_val's Accuracy layers run in both phases.
"""
from recaffe.netspec.spec import layers as L, params as P, solver as _solver

from .zoo_common import DataSpec, deploy, finish, train_val

__all__ = ["IMAGENET", "FIRES", "body", "squeezenet_train_val", "squeezenet_deploy", "squeezenet_solver"]

IMAGENET = DataSpec("examples/imagenet/ilsvrc12_train_lmdb", "examples/imagenet/ilsvrc12_val_lmdb", 32, 25, 227,
                    mean_value=(104, 117, 123), mirror=None)

FIRES = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128), 6: (48, 192), 7: (48, 192), 8: (64, 256),
         9: (64, 256)}            # fire module: squeeze, expand (each of 1x1 and 3x3) outputs


def body(n, fillers=True, num_output=1000, classifier="conv10"):
    """conv1 .. pool10 on n.data; returns pool10 (the scores)."""
    xavier = dict(weight_filler=dict(type="xavier")) if fillers else {}

    def conv(x, name, relu, nout, ks, **kw):
        n[name] = L.Convolution(x, num_output=nout, kernel_size=ks, **kw, **xavier)
        n[relu] = L.ReLU(n[name], in_place=True)
        return n[relu]

    x = conv(n.data, "conv1", "relu_conv1", 64, 3, stride=2)
    n.pool1 = x = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    for k, (squeeze, expand) in FIRES.items():
        p = f"fire{k}/"
        s = conv(x, p + "squeeze1x1", p + "relu_squeeze1x1", squeeze, 1)
        e1 = conv(s, p + "expand1x1", p + "relu_expand1x1", expand, 1)
        e3 = conv(s, p + "expand3x3", p + "relu_expand3x3", expand, 3, pad=1)
        n[p + "concat"] = x = L.Concat(e1, e3)
        if k in (3, 5):
            n[f"pool{k}"] = x = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.drop9 = L.Dropout(x, dropout_ratio=0.5, in_place=True)
    init = dict(weight_filler=dict(type="gaussian", mean=0.0, std=0.01)) if fillers else {}
    n[classifier] = L.Convolution(n.drop9, num_output=num_output, kernel_size=1, **init)
    n["relu_" + classifier] = L.ReLU(n[classifier], in_place=True)
    n.pool10 = L.Pooling(n["relu_" + classifier], pool=P.Pooling.AVE, global_pooling=True)
    return n.pool10


def squeezenet_train_val(name=None, data=None, path=None, **body_kw):
    """The train_val net: SoftmaxWithLoss `loss`, Accuracy `accuracy` and `accuracy_top5` (top_k 5)."""
    def build(n):
        score = body(n, **body_kw)
        n.loss = L.SoftmaxWithLoss(score, n.label)
        n.accuracy = L.Accuracy(score, n.label)
        n.accuracy_top5 = L.Accuracy(score, n.label, top_k=5)
    return finish(train_val(name, data or IMAGENET, build), path)


def squeezenet_deploy(name=None, batch=10, input_style="layer", fillers=False, path=None, **body_kw):
    """The deploy net: Input 10 x 3 x 227 x 227, body without fillers, Softmax `prob`."""
    def build(n):
        n.prob = L.Softmax(body(n, fillers=fillers, **body_kw))
    return finish(deploy(name, [batch, 3, 227, 227], build, input_style), path)


def squeezenet_solver(net="train_val.prototxt", snapshot_prefix="train", path=None):
    """SqueezeNet_v1.1/solver.prototxt: base_lr 0.04 decreasing linearly to 0 ("poly", power 1) over 170000
    iterations, iter_size 16, momentum 0.9, weight decay 2e-4, random_seed 42, average_loss 40."""
    s = _solver(test_iter=[2000], test_interval=1000, base_lr=0.04, display=40, max_iter=170000, iter_size=16,
                lr_policy="poly", power=1.0, momentum=0.9, weight_decay=0.0002, snapshot=1000,
                snapshot_prefix=snapshot_prefix, solver_mode="GPU", random_seed=42, net=net,
                test_initialization=False, average_loss=40)
    return finish(s, path)
