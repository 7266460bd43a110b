"""CaffeNet and the Flickr-style fine-tuning nets of BVLC Caffe's examples/02-fine-tuning.ipynb.

`caffenet`, `style_net` and `solver` take the notebook's arguments and give the same prototxt text as the
notebook's cells run under pycaffe (checked against oracle goldens in tests/test_dsl.py). The notebook wrote
each definition to a temporary file and returned its name; these return the NetParameter/SolverParameter
(write them with `netspec.spec.write(msg, path)`, or pass `path=` to do both).

CaffeNet follows models/bvlc_reference_caffenet/train_val.prototxt: five convolutions (conv2, conv4 and conv5
in two groups), max pooling and LRN after the first two, two 4096-wide fully connected layers with dropout
when training, and a classifier that is always learned. With learn_all=False every layer before the
classifier is frozen (lr_mult 0 on both blobs), which is how the notebook fine-tunes only the classifier.
"""
import os

from recaffe.netspec.spec import NetSpec, layers as L, solver as _solver, write

from .alexnet import CONVS, heads, trunk

__all__ = ["caffenet", "style_net", "imagenet_deploy", "solver", "write_style_files", "LEARNED", "FROZEN"]

LEARNED = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]   # weights, biases
FROZEN = [dict(lr_mult=0), dict(lr_mult=0)]

_CONV_FILLERS = dict(weight_filler=dict(type="gaussian", std=0.01), bias_filler=dict(type="constant", value=0.1))
_FC_FILLERS = dict(weight_filler=dict(type="gaussian", std=0.005), bias_filler=dict(type="constant", value=0.1))


def _finish(proto, path):
    return write(proto, path) if path is not None else proto


def caffenet(data, label=None, train=True, num_classes=1000, classifier_name="fc8", learn_all=False, path=None):
    """CaffeNet on top of `data` (a Top); with `label`, adds SoftmaxWithLoss `loss` and Accuracy `acc`;
    when not training, no dropout and a Softmax `probs`. Returns the NetParameter (or writes it to path)."""
    n = NetSpec()
    n.data = data
    param = LEARNED if learn_all else FROZEN

    def conv_kw(i, conv):
        # The notebook passes stride, pad and group even at their defaults, so they are printed.
        name, ks, nout, stride, pad, group, _ = conv
        return dict(kernel_size=ks, stride=stride, num_output=nout, pad=pad, group=group, param=param,
                    **_CONV_FILLERS)
    x = trunk(n, n.data, CONVS, conv_kw, 4096, lambda i: dict(param=param, **_FC_FILLERS),
              dict() if train else None)
    n[classifier_name] = classifier = L.InnerProduct(x, num_output=num_classes, param=LEARNED)
    if not train:
        n.probs = L.Softmax(classifier)
    if label is not None:
        n.label = label
        heads(n, classifier, order="loss_first", accuracy="acc", accuracy_phase=None)
    return _finish(n.to_proto(), path)


def imagenet_deploy(batch=1, learn_all=False, path=None):
    """The notebook's `imagenet_net`: CaffeNet for testing on a DummyData input of batch x 3 x 227 x 227."""
    data = L.DummyData(shape=dict(dim=[batch, 3, 227, 227]))
    return caffenet(data=data, train=False, learn_all=learn_all, path=path)


def style_net(train=True, learn_all=False, subset=None, caffe_root="../", num_classes=5, path=None):
    """CaffeNet fed by an ImageData layer over data/flickr_style/<subset>.txt (batch 50, resized to 256x256,
    227 crops, mirrored when training, ImageNet mean file), with classifier `fc8_flickr`."""
    if subset is None:
        subset = "train" if train else "test"
    transform = dict(mirror=train, crop_size=227, mean_file=caffe_root + "data/ilsvrc12/imagenet_mean.binaryproto")
    data, label = L.ImageData(transform_param=transform, source=caffe_root + f"data/flickr_style/{subset}.txt",
                              batch_size=50, new_height=256, new_width=256, ntop=2)
    return caffenet(data=data, label=label, train=train, num_classes=num_classes, classifier_name="fc8_flickr",
                    learn_all=learn_all, path=path)


def solver(train_net_path, test_net_path=None, base_lr=0.001, caffe_root="../", path=None):
    """The notebook's SGD solver: step policy (gamma 0.1 every 20000 iterations), momentum 0.9, weight decay
    5e-4, 100000 iterations, display every 1000, snapshot every 10000, GPU mode; testing 100 batches every
    1000 iterations when a test net is given."""
    fields = dict(train_net=train_net_path)
    if test_net_path is not None:
        fields.update(test_net=[test_net_path], test_interval=1000, test_iter=[100])
    fields.update(iter_size=1, max_iter=100000, type="SGD", base_lr=base_lr, lr_policy="step", gamma=0.1,
                  stepsize=20000, momentum=0.9, weight_decay=5e-4, display=1000, snapshot=10000,
                  snapshot_prefix=caffe_root + "models/finetune_flickr_style/finetune_flickr_style",
                  solver_mode="GPU")
    return _finish(_solver(**fields), path)


def write_style_files(folder, learn_all=False, caffe_root="../", base_lr=0.001):
    """Write the notebook's style-recognition files into `folder`: train.prototxt, test.prototxt (style_net),
    deploy.prototxt (imagenet_deploy) and solver.prototxt (solver over the first two). Returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = {k: os.path.join(folder, f"{k}.prototxt") for k in ("train", "test", "deploy", "solver")}
    style_net(train=True, learn_all=learn_all, caffe_root=caffe_root, path=paths["train"])
    style_net(train=False, learn_all=learn_all, caffe_root=caffe_root, path=paths["test"])
    imagenet_deploy(learn_all=learn_all, path=paths["deploy"])
    solver(paths["train"], paths["test"], base_lr=base_lr, caffe_root=caffe_root, path=paths["solver"])
    return paths
