"""The demo's nets: a CaffeNet-shaped net scaled down for 32x32 crops of 36x36 images, so that a source
task can be pretrained and a target task fine-tuned on two CPU cores in minutes.

Same layer names and structure as models.caffenet.caffenet (conv1-conv5 with groups in conv2/4/5, max
pooling and LRN after the first two, fc6/fc7 with dropout when training, a renamable classifier), and
the notebook's switch: with learn_all=False every layer before the classifier has lr_mult 0.
"""
from recaffe.netspec.spec import NetSpec, layers as L, params as P, solver as _solver

from .alexnet import heads, trunk
from .caffenet import LEARNED, FROZEN

CROP = 32
# name, kernel, outputs, stride, pad, group, followed by pool+norm (the trunk of models.alexnet)
_CONVS = [("conv1", 5, 24, 1, 0, 1, True), ("conv2", 5, 48, 1, 2, 2, True), ("conv3", 3, 64, 1, 1, 1, False),
          ("conv4", 3, 64, 1, 1, 2, False), ("conv5", 3, 48, 1, 1, 2, False)]
_FILLERS = dict(weight_filler=dict(type="xavier"), bias_filler=dict(type="constant", value=0.1))


def mini_caffenet(data, label=None, train=True, num_classes=10, classifier_name="fc8", learn_all=True,
                  width=128):
    """The scaled CaffeNet over ``data``; with ``label``, SoftmaxWithLoss ``loss`` and Accuracy ``acc``;
    without training, a Softmax ``probs``. Returns the NetParameter."""
    n = NetSpec()
    n.data = data
    param = LEARNED if learn_all else FROZEN

    def conv_kw(i, conv):
        name, ks, nout, _, pad, group, _ = conv
        return dict(kernel_size=ks, num_output=nout, pad=pad, group=group, param=param, **_FILLERS)
    x = trunk(n, n.data, _CONVS, conv_kw, width, lambda i: dict(param=param, **_FILLERS),
              dict(dropout_ratio=0.5) if train else None)
    n[classifier_name] = cls = L.InnerProduct(x, num_output=num_classes, param=LEARNED, **_FILLERS)
    if not train:
        n.probs = L.Softmax(cls)
    if label is not None:
        n.label = label
        heads(n, cls, order="loss_first", accuracy="acc", accuracy_phase=None)
    return n.to_proto()


def lmdb_net(source, mean_file, train, batch_size, **kw):
    """mini_caffenet fed by a Data layer (LMDB) with Caffe's transform: crop 32 (random in TRAIN, centre
    in TEST), mirror when training, mean file subtraction, inputs scaled to about [-1, 1]."""
    transform = dict(crop_size=CROP, mean_file=mean_file, mirror=train, scale=1.0 / 128)
    data, label = L.Data(source=source, backend=P.Data.LMDB, batch_size=batch_size, transform_param=transform,
                         ntop=2)
    return mini_caffenet(data, label, train=train, **kw)


def deploy_net(num_classes, classifier_name="fc8", batch=1):
    """The deploy form: an Input of batch x 3 x 32 x 32 and a Softmax ``probs``."""
    data = L.Input(shape=dict(dim=[batch, 3, CROP, CROP]))
    return mini_caffenet(data, train=False, num_classes=num_classes, classifier_name=classifier_name)


def demo_solver(train_net, test_net, base_lr, max_iter, test_iter, snapshot_prefix, stepsize):
    """SGD with momentum 0.9 and weight decay 5e-4, step policy (gamma 0.1); tests run by the demo."""
    return _solver(train_net=train_net, test_net=[test_net], test_iter=[test_iter], test_interval=max_iter + 1,
                   test_initialization=False, base_lr=base_lr, lr_policy="step", gamma=0.1, stepsize=stepsize,
                   momentum=0.9, weight_decay=5e-4, max_iter=max_iter, display=0, snapshot=0,
                   snapshot_prefix=snapshot_prefix, type="SGD", random_seed=1701, solver_mode="CPU")
