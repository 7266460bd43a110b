"""GoogLeNet as in BVLC Caffe's models/bvlc_googlenet (train_val.prototxt, deploy.prototxt).

Stem: conv1/7x7_s2 (64, pad 3), 3x3/2 max pool1/3x3_s2, LRN pool1/norm1, conv2/3x3_reduce (64, 1x1),
conv2/3x3 (192, pad 1), LRN conv2/norm2, pool2/3x3_s2. Nine inception modules (3a 3b, pool3/3x3_s2,
4a..4e, pool4/3x3_s2, 5a 5b), each: 1x1, 3x3_reduce -> 3x3 (pad 1), 5x5_reduce -> 5x5 (pad 2) and
3x3/1 pad-1 max pool -> pool_proj, every convolution with an in-place ReLU relu_<branch>, concatenated into
inception_<m>/output. Then 7x7 average pool5/7x7_s1, dropout 0.4, loss3/classifier.
Training adds two auxiliary classifiers on 4a and 4d (loss1/, loss2/: 5x5/3 average pool, 1x1 conv 128,
fc 1024, dropout 0.7, classifier, SoftmaxWithLoss of weight 0.3, top-1 and top-5 Accuracy in TEST).
All weights start xavier, biases 0.2 (classifiers 0); the deploy file also writes an xavier `std` per
branch role (ignored by the xavier filler: src/caffe/util/filler.hpp), reproduced with deploy_stds=True.
"""
from recaffe.netspec.spec import layers as L, params as P, solver as _solver
from recaffe.protos import caffe_pb2

from .zoo_common import LEARN, DataSpec, constant, deploy, finish, train_val

__all__ = ["IMAGENET", "INCEPTION", "body", "googlenet_train_val", "googlenet_deploy", "googlenet_solver"]

IMAGENET = DataSpec("examples/imagenet/ilsvrc12_train_lmdb", "examples/imagenet/ilsvrc12_val_lmdb", 32, 50, 224,
                    mean_value=(104, 117, 123))

# module: 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj outputs
INCEPTION = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
             "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
             "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
             "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
             "5b": (384, 192, 384, 48, 128, 128)}
# xavier std written per role in deploy.prototxt
_STD = {"conv1/7x7_s2": 0.1, "conv2/3x3_reduce": 0.1, "conv2/3x3": 0.03, "1x1": 0.03, "3x3_reduce": 0.09,
        "3x3": 0.03, "5x5_reduce": 0.2, "5x5": 0.03, "pool_proj": 0.1}


class _Builder:
    def __init__(self, n, param, stds):
        self.n, self.param, self.stds = n, param, stds

    def conv(self, x, name, relu, nout, ks, pad=0, stride=1, role=None):
        """Convolution `name` (+ in-place ReLU `relu`)."""
        xavier = dict(type="xavier")
        if self.stds:
            xavier["std"] = _STD[role or name]
        kw = dict(num_output=nout, kernel_size=ks, weight_filler=xavier, bias_filler=constant(0.2))
        if pad:                                          # written only when not default
            kw["pad"] = pad
        if stride != 1:
            kw["stride"] = stride
        if self.param is not None:
            kw["param"] = self.param
        self.n[name] = L.Convolution(x, **kw)
        self.n[relu] = L.ReLU(self.n[name], in_place=True)
        return self.n[relu]

    def inception(self, x, m):
        n, p = self.n, f"inception_{m}/"
        c1, r3, c3, r5, c5, pp = INCEPTION[m]
        outs = [self.conv(x, p + "1x1", p + "relu_1x1", c1, 1, role="1x1")]
        y = self.conv(x, p + "3x3_reduce", p + "relu_3x3_reduce", r3, 1, role="3x3_reduce")
        outs.append(self.conv(y, p + "3x3", p + "relu_3x3", c3, 3, pad=1, role="3x3"))
        y = self.conv(x, p + "5x5_reduce", p + "relu_5x5_reduce", r5, 1, role="5x5_reduce")
        outs.append(self.conv(y, p + "5x5", p + "relu_5x5", c5, 5, pad=2, role="5x5"))
        n[p + "pool"] = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=1, pad=1)
        outs.append(self.conv(n[p + "pool"], p + "pool_proj", p + "relu_pool_proj", pp, 1, role="pool_proj"))
        n[p + "output"] = L.Concat(*outs)
        return n[p + "output"]

    def fc(self, x, name, nout, bias):
        kw = dict(weight_filler=dict(type="xavier"), bias_filler=constant(bias))
        if self.param is not None:
            kw["param"] = self.param
        self.n[name] = L.InnerProduct(x, num_output=nout, **kw)
        return self.n[name]

    def losses(self, k, score, weight):
        """loss<k>/loss (top loss<k>/loss<k>), top-1 and top-5 Accuracy (TEST)."""
        n, test = self.n, dict(phase=caffe_pb2.TEST)
        named = dict(name=f"loss{k}/loss") if k < 3 else {}     # loss3's layer is named as its top
        n[f"loss{k}/loss{k}"] = L.SoftmaxWithLoss(score, n.label, loss_weight=weight, **named)
        n[f"loss{k}/top-1"] = L.Accuracy(score, n.label, include=test)
        n[f"loss{k}/top-5"] = L.Accuracy(score, n.label, include=test, top_k=5)

    def aux(self, x, k, num_output):
        n, p = self.n, f"loss{k}/"
        n[p + "ave_pool"] = L.Pooling(x, pool=P.Pooling.AVE, kernel_size=5, stride=3)
        y = self.conv(n[p + "ave_pool"], p + "conv", p + "relu_conv", 128, 1)
        n[p + "relu_fc"] = L.ReLU(self.fc(y, p + "fc", 1024, 0.2), in_place=True)
        n[p + "drop_fc"] = L.Dropout(n[p + "relu_fc"], dropout_ratio=0.7, in_place=True)
        self.losses(k, self.fc(n[p + "drop_fc"], p + "classifier", num_output, 0), 0.3)


def body(n, train, num_output=1000, param=LEARN, deploy_stds=False):
    """The net on n.data; with train, the auxiliary classifiers and the three losses. Returns the score."""
    b = _Builder(n, param, deploy_stds)
    x = b.conv(n.data, "conv1/7x7_s2", "conv1/relu_7x7", 64, 7, pad=3, stride=2)
    n["pool1/3x3_s2"] = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n["pool1/norm1"] = L.LRN(n["pool1/3x3_s2"], local_size=5, alpha=1e-4, beta=0.75)
    x = b.conv(n["pool1/norm1"], "conv2/3x3_reduce", "conv2/relu_3x3_reduce", 64, 1)
    x = b.conv(x, "conv2/3x3", "conv2/relu_3x3", 192, 3, pad=1)
    n["conv2/norm2"] = L.LRN(x, local_size=5, alpha=1e-4, beta=0.75)
    x = n["pool2/3x3_s2"] = L.Pooling(n["conv2/norm2"], pool=P.Pooling.MAX, kernel_size=3, stride=2)
    for m in INCEPTION:
        x = b.inception(x, m)
        if m in ("3b", "4e"):
            pool = f"pool{int(m[0])}/3x3_s2"
            n[pool] = x = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2)
        if train and m in ("4a", "4d"):
            b.aux(x, 1 if m == "4a" else 2, num_output)
    n["pool5/7x7_s1"] = L.Pooling(x, pool=P.Pooling.AVE, kernel_size=7, stride=1)
    n["pool5/drop_7x7_s1"] = L.Dropout(n["pool5/7x7_s1"], dropout_ratio=0.4, in_place=True)
    score = b.fc(n["pool5/drop_7x7_s1"], "loss3/classifier", num_output, 0)
    if train:
        b.losses(3, score, 1.0)
    return score


def googlenet_train_val(name="GoogleNet", data=None, path=None, **body_kw):
    """models/bvlc_googlenet/train_val.prototxt (data defaults to IMAGENET)."""
    return finish(train_val(name, data or IMAGENET, lambda n: body(n, True, **body_kw)), path)


def googlenet_deploy(name="GoogleNet", batch=10, deploy_stds=True, input_style="layer", path=None, **body_kw):
    """models/bvlc_googlenet/deploy.prototxt: Input 10 x 3 x 224 x 224, body, Softmax `prob`."""
    def build(n):
        n.prob = L.Softmax(body(n, False, deploy_stds=deploy_stds, **body_kw))
    return finish(deploy(name, [batch, 3, 224, 224], build, input_style), path)


def googlenet_solver(net="models/bvlc_googlenet/train_val.prototxt",
                     snapshot_prefix="models/bvlc_googlenet/bvlc_googlenet", solver_mode="GPU", path=None):
    """models/bvlc_googlenet/solver.prototxt: base_lr 0.01 times 0.96 every 320000 iterations (step),
    momentum 0.9, weight decay 2e-4, average_loss 40, no test at start."""
    fields = dict(net=net, test_iter=[1000], test_interval=4000, test_initialization=False, display=40,
                  average_loss=40, base_lr=0.01, lr_policy="step", stepsize=320000, gamma=0.96, max_iter=10000000,
                  momentum=0.9, weight_decay=0.0002, snapshot=40000, snapshot_prefix=snapshot_prefix)
    if solver_mode is not None:
        fields["solver_mode"] = solver_mode
    return finish(_solver(**fields), path)
