"""VGG16 (Simonyan & Zisserman, configuration D) in the layout of CSAILVision/places365's
train_val_vgg16.prototxt and deploy_vgg16_places365.prototxt.

Five stages of 3x3 pad-1 convolutions (2, 2, 3, 3, 3 of them; 64, 128, 256, 512, 512 outputs) named
conv<stage>_<i>, each with an in-place ReLU relu<stage>_<i>, each stage closed by 2x2/2 max pooling
pool<stage>; fc6 and fc7 (4096, ReLU, dropout 0.5) and the classifier. Weights start gaussian(0.01),
biases 0; learning multipliers 1/2 (decay 1/0).

Places365 quirks kept as arguments: an unnamed train_val net, the classifier `fc8a` with 365 outputs and
no fillers, SoftmaxWithLoss before the TEST Accuracy, and a deploy fed by the legacy input/input_dim
fields (input_style="fields"). `PLACES365` is that file's data layer pair (its paths are placeholders).
"""
from recaffe.netspec.spec import layers as L, params as P, solver as _solver

from .alexnet import heads
from .zoo_common import LEARN, DataSpec, constant, deploy, finish, gaussian, train_val

__all__ = ["PLACES365", "STAGES", "body", "vgg16_train_val", "vgg16_deploy", "places365_solver"]

PLACES365 = DataSpec("/xxx/places2_maxTrain5000_places2new/train_image_lmdb",
                     "/xxx/places2_maxTrain5000_places2new/val_image_lmdb", 48, 12, 224,
                     mean_file="/xxx/places2CNN365_mean.binaryproto")

STAGES = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]    # convolutions per stage, outputs


def body(n, param=LEARN, fillers=True, classifier="fc8", num_output=1000, classifier_param=LEARN,
         classifier_fillers=True):
    """conv1_1 .. classifier on n.data; returns the classifier's top."""
    extra = {} if param is None else dict(param=param)
    init = dict(weight_filler=gaussian(0.01), bias_filler=constant(0))
    x = n.data
    for s, (count, nout) in enumerate(STAGES, 1):
        for i in range(1, count + 1):
            name = f"conv{s}_{i}"
            n[name] = L.Convolution(x, num_output=nout, pad=1, kernel_size=3, **extra, **(init if fillers else {}))
            n[f"relu{s}_{i}"] = x = L.ReLU(n[name], in_place=True)
        n[f"pool{s}"] = x = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    for i in (6, 7):
        n[f"fc{i}"] = L.InnerProduct(x, num_output=4096, **extra, **(init if fillers else {}))
        n[f"relu{i}"] = L.ReLU(n[f"fc{i}"], in_place=True)
        n[f"drop{i}"] = x = L.Dropout(n[f"relu{i}"], dropout_ratio=0.5, in_place=True)
    kw = dict(init) if classifier_fillers else {}
    if classifier_param is not None:
        kw["param"] = classifier_param
    n[classifier] = L.InnerProduct(x, num_output=num_output, **kw)
    return n[classifier]


def vgg16_train_val(name=None, data=None, head="loss_first", loss_top=True, path=None, **body_kw):
    """The train_val net (data defaults to PLACES365; body_kw go to `body`)."""
    def build(n):
        heads(n, body(n, **body_kw), head, loss_top)
    return finish(train_val(name, data or PLACES365, build), path)


def vgg16_deploy(name="VGG16", batch=10, input_style="layer", path=None, **body_kw):
    """The deploy net: data of batch x 3 x 224 x 224, body, Softmax `prob`."""
    def build(n):
        n.prob = L.Softmax(body(n, **body_kw))
    return finish(deploy(name, [batch, 3, 224, 224], build, input_style), path)


def places365_solver(net="train_val_vgg16.prototxt", snapshot_prefix="models/vgg16_train_maxTrain5000",
                     legacy_type=True, path=None):
    """CSAILVision/places365 solver_vgg16.prototxt: step policy (base_lr 0.01, gamma 0.1 every 300000),
    700000 iterations, no test at start; legacy_type writes `solver_type: SGD` as that file does (Caffe
    upgrades it to type "SGD": src/caffe/util/upgrade_proto.cpp, UpgradeSolverType)."""
    fields = dict(net=net, test_iter=[1000], test_interval=5000, test_initialization=False, base_lr=0.01,
                  display=20, max_iter=700000, lr_policy="step", gamma=0.1, momentum=0.9, weight_decay=0.0005,
                  stepsize=300000, snapshot=20000, snapshot_prefix=snapshot_prefix, solver_mode="GPU")
    if legacy_type:
        fields["solver_type"] = "SGD"
    else:
        fields["type"] = "SGD"
    return finish(_solver(**fields), path)
