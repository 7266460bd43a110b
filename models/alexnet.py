"""CaffeNet and AlexNet as in BVLC Caffe's models/bvlc_reference_caffenet and models/bvlc_alexnet.

Both nets: conv1 11x11/4 (96), conv2 5x5 pad 2 (256, 2 groups), conv3 3x3 (384), conv4 3x3 (384, 2 groups),
conv5 3x3 (256, 2 groups), each with an in-place ReLU; 3x3/2 max pooling after conv1, conv2, conv5; LRN
(5, 1e-4, 0.75) after the first two; fc6, fc7 (4096, ReLU, dropout 0.5) and the classifier fc8.
They differ in two things (the files' own difference): CaffeNet pools before normalizing
(pool1 -> norm1) and starts the biases of conv2/4/5 and fc6/7 at 1; AlexNet normalizes before pooling
(norm1 -> pool1) and starts those biases at 0.1.

Arguments that published variants change (tests/test_models_zoo.py matches each against its file):
`param` (None: no `param` blocks, as in the CaffeNet deploy file), `fillers`, `classifier`/`num_output`,
`classifier_param`, `head` ("accuracy_first" as BVLC, "loss_first" as fish145/jimgoo), `loss_top`
(False: a SoftmaxWithLoss without a top, as the V1 files upgraded by Caffe), the data (zoo_common.DataSpec)
and the deploy input style. Fine-tuned variants come from models.recipes.finetune on these nets.
"""
from recaffe.netspec.spec import layers as L, params as P, solver as _solver
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

from .zoo_common import LEARN, DataSpec, constant, deploy, finish, gaussian, train_val

__all__ = ["IMAGENET", "CONVS", "trunk", "body", "heads", "caffenet_train_val", "caffenet_deploy", "alexnet_train_val",
           "alexnet_deploy", "imagenet_solver"]

# The ILSVRC12 input of both BVLC train_val files (paths relative to CAFFE_ROOT).
IMAGENET = DataSpec("examples/imagenet/ilsvrc12_train_lmdb", "examples/imagenet/ilsvrc12_val_lmdb", 256, 50, 227,
                    mean_file="data/ilsvrc12/imagenet_mean.binaryproto")

# name, kernel, outputs, stride, pad, group, pool+LRN after it
CONVS = [("conv1", 11, 96, 4, 0, 1, True), ("conv2", 5, 256, 1, 2, 2, True), ("conv3", 3, 384, 1, 1, 1, False),
         ("conv4", 3, 384, 1, 1, 2, False), ("conv5", 3, 256, 1, 1, 2, False)]
_BIAS_ONE_CONVS = ("conv2", "conv4", "conv5")   # biases start at the variant's "one" value
_BIAS_ONE = {"caffenet": 1, "alexnet": 0.1}


def _max_pool(x):
    return L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2)


def _lrn(x):
    return L.LRN(x, local_size=5, alpha=1e-4, beta=0.75)


def trunk(n, x, convs, conv_kw, fc_out=4096, fc_kw=None, dropout=None, norm_first=False):
    """The CaffeNet/AlexNet trunk, the one body every CaffeNet-shaped net of models/ is built on (BVLC's
    CaffeNet and AlexNet below, the fine-tuning notebook's `caffenet`, the demo's scaled net): for each
    ``(name, kernel, outputs, stride, pad, group, pool_norm)`` in ``convs`` a Convolution with the
    keywords ``conv_kw(i, conv)`` and an in-place ReLU, max pooling and LRN after it where ``pool_norm``
    (LRN first when ``norm_first``, AlexNet's order), pool5, then fc6 and fc7 (``fc_out`` wide, keywords
    ``fc_kw(i)``) each with an in-place ReLU and, unless ``dropout`` is None, an in-place Dropout with the
    keywords ``dropout``. Returns the top the classifier reads."""
    for i, conv in enumerate(convs, 1):
        name = conv[0]
        n[name] = L.Convolution(x, **conv_kw(i, conv))
        n[f"relu{i}"] = x = L.ReLU(n[name], in_place=True)
        if conv[6] and norm_first:
            n[f"norm{i}"] = _lrn(x)
            n[f"pool{i}"] = x = _max_pool(n[f"norm{i}"])
        elif conv[6]:
            n[f"pool{i}"] = _max_pool(x)
            n[f"norm{i}"] = x = _lrn(n[f"pool{i}"])
    n.pool5 = x = _max_pool(x)
    for i in (6, 7):
        n[f"fc{i}"] = L.InnerProduct(x, num_output=fc_out, **(fc_kw(i) if fc_kw else {}))
        n[f"relu{i}"] = x = L.ReLU(n[f"fc{i}"], in_place=True)
        if dropout is not None:
            n[f"drop{i}"] = x = L.Dropout(x, in_place=True, **dropout)
    return x


def body(n, variant="caffenet", param=LEARN, fillers=True, classifier="fc8", num_output=1000,
         classifier_param=LEARN, classifier_fillers=None):
    """conv1 .. classifier on n.data, as BVLC's train_val/deploy files; returns the classifier's top.
    classifier_fillers defaults to `fillers` (gaussian 0.01, bias 0)."""
    if variant not in _BIAS_ONE:
        raise NetError(f"alexnet.body: variant '{variant}' is not valid; valid: {', '.join(_BIAS_ONE)}")
    one = _BIAS_ONE[variant]
    extra = {} if param is None else dict(param=param)

    def conv_kw(i, conv):
        name, ks, nout, stride, pad, group, _ = conv
        kw = dict(num_output=nout, kernel_size=ks)       # pad, group, stride: only when not default
        if pad:
            kw["pad"] = pad
        if group != 1:
            kw["group"] = group
        if stride != 1:
            kw["stride"] = stride
        if fillers:
            kw.update(weight_filler=gaussian(0.01), bias_filler=constant(one if name in _BIAS_ONE_CONVS else 0))
        return dict(extra, **kw)

    def fc_kw(i):
        return dict(extra, **(dict(weight_filler=gaussian(0.005), bias_filler=constant(one)) if fillers else {}))
    x = trunk(n, n.data, CONVS, conv_kw, 4096, fc_kw, dict(dropout_ratio=0.5), norm_first=variant == "alexnet")
    if classifier_fillers is None:
        classifier_fillers = fillers
    kw = dict(weight_filler=gaussian(0.01), bias_filler=constant(0)) if classifier_fillers else {}
    if classifier_param is not None:
        kw["param"] = classifier_param
    n[classifier] = L.InnerProduct(x, num_output=num_output, **kw)
    return n[classifier]


def heads(n, score, order="accuracy_first", loss_top=True, accuracy="accuracy", accuracy_phase=caffe_pb2.TEST):
    """SoftmaxWithLoss `loss` and an Accuracy (TEST-only unless accuracy_phase is None), in the given
    order, on ``score`` and ``n.label``."""
    def add_loss():
        n.loss = L.SoftmaxWithLoss(score, n.label, ntop=1 if loss_top else 0)

    def add_accuracy():
        kw = {} if accuracy_phase is None else dict(include=dict(phase=accuracy_phase))
        n[accuracy] = L.Accuracy(score, n.label, **kw)
    if order not in ("accuracy_first", "loss_first"):
        raise NetError(f"heads: order '{order}' is not valid; valid: accuracy_first, loss_first")
    for add in ((add_accuracy, add_loss) if order == "accuracy_first" else (add_loss, add_accuracy)):
        add()


def _train_val(variant, name, data, head, loss_top, path, body_kw):
    def build(n):
        heads(n, body(n, variant, **body_kw), head, loss_top)
    return finish(train_val(name, data or IMAGENET, build), path)


def _deploy(variant, name, batch, input_style, path, body_kw):
    def build(n):
        n.prob = L.Softmax(body(n, variant, **body_kw))
    return finish(deploy(name, [batch, 3, 227, 227], build, input_style), path)


def caffenet_train_val(name="CaffeNet", data=None, head="accuracy_first", loss_top=True, path=None, **body_kw):
    """models/bvlc_reference_caffenet/train_val.prototxt (data defaults to IMAGENET)."""
    return _train_val("caffenet", name, data, head, loss_top, path, body_kw)


def caffenet_deploy(name="CaffeNet", batch=10, input_style="layer", param=None, fillers=False,
                    classifier_param=None, path=None, **body_kw):
    """models/bvlc_reference_caffenet/deploy.prototxt: no param blocks or fillers unless asked."""
    body_kw.update(param=param, fillers=fillers, classifier_param=classifier_param)
    return _deploy("caffenet", name, batch, input_style, path, body_kw)


def alexnet_train_val(name="AlexNet", data=None, head="accuracy_first", loss_top=True, path=None, **body_kw):
    """models/bvlc_alexnet/train_val.prototxt (data defaults to IMAGENET)."""
    return _train_val("alexnet", name, data, head, loss_top, path, body_kw)


def alexnet_deploy(name="AlexNet", batch=10, input_style="layer", fillers=False, path=None, **body_kw):
    """models/bvlc_alexnet/deploy.prototxt: param blocks kept, fillers dropped."""
    body_kw.update(fillers=fillers)
    return _deploy("alexnet", name, batch, input_style, path, body_kw)


def imagenet_solver(net, snapshot_prefix, base_lr=0.01, stepsize=100000, max_iter=450000, test_iter=1000,
                    test_interval=1000, display=20, snapshot=10000, weight_decay=0.0005, solver_mode="GPU",
                    path=None, **extra):
    """The solver of models/bvlc_reference_caffenet and models/bvlc_alexnet: step policy (gamma 0.1),
    momentum 0.9; `extra` adds fields (e.g. test_initialization=False)."""
    fields = dict(net=net, test_iter=[test_iter], test_interval=test_interval, base_lr=base_lr, lr_policy="step",
                  gamma=0.1, stepsize=stepsize, display=display, max_iter=max_iter, momentum=0.9,
                  weight_decay=weight_decay, snapshot=snapshot, snapshot_prefix=snapshot_prefix)
    if solver_mode is not None:
        fields["solver_mode"] = solver_mode
    fields.update(extra)
    return finish(_solver(**fields), path)
