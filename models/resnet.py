"""ResNet-50 as in KaimingHe/deep-residual-networks prototxt/ResNet-50-deploy.prototxt.

Stem: conv1 7x7/2 pad 3 (64, the only convolution with a bias), BatchNorm bn_conv1 + Scale scale_conv1,
ReLU conv1_relu, 3x3/2 max pool1. Then stages 2..5 of 3, 4, 6, 3 bottleneck units res<s><a,b,c..>:
branch2a 1x1, branch2b 3x3 pad 1, branch2c 1x1 (x4 outputs), each convolution bias-free and followed by
bn<s><u>_branch.. and scale<s><u>_branch.. (in place), ReLU after 2a and 2b; the first unit of a stage adds
a projection branch1 (1x1), and in stages 3..5 it strides 2 (on branch1 and branch2a). The Eltwise sum
res<s><u> (bottoms: shortcut, branch2c) is followed by ReLU res<s><u>_relu. Then 7x7 average pool5, fc1000.

Two forms, as published:
  deploy ("deploy", KaimingHe): no param blocks or fillers, BatchNorm with use_global_stats: true, legacy
         input/input_dim fields (input_style="fields") of 1 x 3 x 224 x 224;
  train  ("train", fish145/fine-tuning Oxford102/ResNet50): conv1 learns 1/2, the other convolutions
         1 (decay 1) with msra fillers, BatchNorm with lr_mult 0 on its three blobs (Caffe requires it:
         src/caffe/layers/batch_norm_layer.cpp), Scale learning at the default rate, Eltwise with an
         explicit `operation: SUM`, and the classifier learning 1/2 with msra weights and zero bias.
"""
from recaffe.netspec.spec import layers as L, params as P

from .alexnet import heads
from .zoo_common import LEARN, LEARN_W, DataSpec, constant, deploy, finish, train_val

__all__ = ["IMAGENET", "STAGES", "body", "resnet50_train_val", "resnet50_deploy"]

IMAGENET = DataSpec("examples/imagenet/ilsvrc12_train_lmdb", "examples/imagenet/ilsvrc12_val_lmdb", 25, 25, 224,
                    mean_file="data/ilsvrc12/imagenet_mean.binaryproto")

STAGES = [(3, 64), (4, 128), (6, 256), (3, 512)]      # units per stage (2..5), bottleneck width
_FROZEN_BN = [dict(lr_mult=0)] * 3
_MSRA = dict(type="msra")


def _conv_bn(n, x, conv, suffix, nout, ks, stride, pad, train, relu):
    """conv -> bn<suffix> -> scale<suffix> (-> ReLU <conv>_relu); returns the top."""
    kw = dict(param=LEARN_W, weight_filler=_MSRA) if train else {}
    n[conv] = L.Convolution(x, num_output=nout, bias_term=False, pad=pad, kernel_size=ks, stride=stride, **kw)
    bn = dict(param=_FROZEN_BN) if train else dict(use_global_stats=True)
    n["bn" + suffix] = L.BatchNorm(n[conv], in_place=True, **bn)
    n["scale" + suffix] = y = L.Scale(n["bn" + suffix], bias_term=True, in_place=True)
    if relu:
        n[conv + "_relu"] = y = L.ReLU(y, in_place=True)
    return y


def body(n, train=False, classifier="fc1000", num_output=1000, classifier_param=LEARN):
    """conv1 .. classifier on n.data; returns the classifier's top."""
    kw = dict(param=LEARN, weight_filler=_MSRA, bias_filler=constant(0)) if train else {}
    n.conv1 = L.Convolution(n.data, num_output=64, pad=3, kernel_size=7, stride=2, **kw)
    n.bn_conv1 = L.BatchNorm(n.conv1, in_place=True, **(dict(param=_FROZEN_BN) if train else
                                                         dict(use_global_stats=True)))
    n.scale_conv1 = L.Scale(n.bn_conv1, bias_term=True, in_place=True)
    n.conv1_relu = L.ReLU(n.scale_conv1, in_place=True)
    n.pool1 = x = L.Pooling(n.conv1_relu, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    for s, (units, width) in enumerate(STAGES, 2):
        for u in range(units):
            unit = f"{s}{chr(ord('a') + u)}"
            stride = 2 if u == 0 and s > 2 else 1
            shortcut = x
            if u == 0:
                shortcut = _conv_bn(n, x, f"res{unit}_branch1", f"{unit}_branch1", 4 * width, 1, stride, 0,
                                    train, relu=False)
            y = _conv_bn(n, x, f"res{unit}_branch2a", f"{unit}_branch2a", width, 1, stride, 0, train, True)
            y = _conv_bn(n, y, f"res{unit}_branch2b", f"{unit}_branch2b", width, 3, 1, 1, train, True)
            y = _conv_bn(n, y, f"res{unit}_branch2c", f"{unit}_branch2c", 4 * width, 1, 1, 0, train, False)
            n[f"res{unit}"] = L.Eltwise(shortcut, y, **(dict(operation=P.Eltwise.SUM) if train else {}))
            n[f"res{unit}_relu"] = x = L.ReLU(n[f"res{unit}"], in_place=True)
    n.pool5 = L.Pooling(x, pool=P.Pooling.AVE, kernel_size=7, stride=1)
    kw = dict(weight_filler=_MSRA, bias_filler=constant(0)) if train else {}
    if train and classifier_param is not None:
        kw["param"] = classifier_param
    n[classifier] = L.InnerProduct(n.pool5, num_output=num_output, **kw)
    return n[classifier]


def resnet50_train_val(name="ResNet-50", data=None, head="loss_first", loss_top=True, path=None, **body_kw):
    """The training form (see the module docstring) fed by `data` (defaults to IMAGENET)."""
    def build(n):
        heads(n, body(n, train=True, **body_kw), head, loss_top)
    return finish(train_val(name, data or IMAGENET, build), path)


def resnet50_deploy(name="ResNet-50", batch=1, input_style="fields", path=None, **body_kw):
    """KaimingHe's ResNet-50-deploy.prototxt."""
    def build(n):
        n.prob = L.Softmax(body(n, train=False, **body_kw))
    return finish(deploy(name, [batch, 3, 224, 224], build, input_style), path)
