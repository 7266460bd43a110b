"""Fine-tuning recipes on emitted nets: swap the classifier, and freeze/unfreeze layers by stage.

`finetune(net, old, new, num_output)` is the recipe of BVLC Caffe's examples/finetune_flickr_style
(models/finetune_flickr_style/train_val.prototxt): the pretrained classifier `old` gets a new name, so that
`caffe train -weights` (Net::CopyTrainedLayersFrom, which matches layers by name) leaves it randomly
initialised, a new width, and learns 10x faster than the pretrained layers (lr_mult 10 on weights,
20 on biases); tops and bottoms named after it are renamed too. `finetune_solver` gives the matching
solver: base_lr 0.001 and a stepsize smaller than training from scratch (20000).

`two_stage(net, head, top_blocks)` splits fine-tuning in two runs:
  stage 1: only the new head learns; every other layer with parameters gets lr_mult 0 on all its blobs
           (Caffe skips the update of a blob with lr_mult 0: src/caffe/net.cpp, Net::AppendParam);
  stage 2: the head keeps its multipliers and the top `top_blocks` blocks below it learn at `rate` times
           the multipliers they had in `net` (1 for a blob without a `param` entry, Caffe's default);
           everything lower stays at 0. BatchNorm statistics stay at lr_mult 0 always (they
           are not learned by gradient: src/caffe/layers/batch_norm_layer.cpp).
A block is a run of layers sharing a key (`block_key`: res3a_* / bn3a_* / scale3a_* -> res3a,
conv4_2 -> conv4, inception_4a/... -> inception_4a, other names -> themselves), counted downwards from
the head in net order. Returns the nets and, per stage, {layer: [lr_mult per blob]} of learning layers.

`flickr_style()` and `oxford102(net)` are the published recipes built with these (file name -> message);
tools/emit_zoo.py writes them under models/zoo/.
"""
import os
import re

from recaffe.netspec.net.layers.registry import find_layer_class, layer_type_list
from recaffe.netspec.spec import solver as _solver
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

from . import alexnet, resnet, vgg
from .zoo_common import DataSpec, constant, finish, gaussian

__all__ = ["finetune", "finetune_solver", "two_stage", "block_key", "blob_count", "learning_layers", "NEW_LAYER"]

# The new classifier of the Flickr-style recipe: gaussian(0.01) weights, zero bias, learning 10x / 20x.
NEW_LAYER = dict(lr_mult=(10, 20), weight_filler=gaussian(0.01), bias_filler=constant(0))


def blob_count(layer):
    """How many parameter blobs `layer` (a LayerParameter) has, as its registered class declares them
    (Layer.blob_count); 0 for layers without any, for unknown types and where only building the layer
    can tell (Python layers)."""
    cls = find_layer_class(layer.type)
    return (cls.blob_count(layer) or 0) if cls is not None else 0


def _learns(layer):
    """False for layers whose blobs are statistics, never learned by gradient (BatchNorm)."""
    cls = find_layer_class(layer.type)
    return cls is None or cls.learnable_blobs


def _layer(net, name):
    for layer in net.layer:
        if layer.name == name:
            return layer
    raise NetError(f"recipes: net '{net.name}' has no layer '{name}'; layers: "
                   f"{', '.join(l.name for l in net.layer)}")


def finetune(net, old, new, num_output, lr_mult=(10, 20), weight_filler=None, bias_filler=None, name=None):
    """A copy of `net` with classifier layer `old` renamed `new` (and every top/bottom `old` with it),
    `num_output` outputs, `param` multipliers lr_mult (weights, bias; decay 1 and 0; None removes the
    param blocks) and, when given, new fillers (dicts, e.g. zoo_common.gaussian(0.01)); `name` renames
    the net."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    if name is not None:
        out.name = name
    layer = _layer(out, old)
    cls = find_layer_class(layer.type)
    if cls is None or not cls.classifier:
        valid = ", ".join(t for t in layer_type_list() if find_layer_class(t).classifier)
        raise NetError(f"finetune: layer '{old}' is a {layer.type}; valid classifiers: {valid}")
    layer.name = new
    for other in out.layer:
        other.bottom[:] = [new if b == old else b for b in other.bottom]
        other.top[:] = [new if t == old else t for t in other.top]
    p = cls.param_message(layer)
    p.num_output = num_output
    del layer.param[:]
    if lr_mult is not None:
        for i, m in enumerate(lr_mult[:blob_count(layer)]):
            layer.param.add(lr_mult=m, decay_mult=1 if i == 0 else 0)
    for field, filler in (("weight_filler", weight_filler), ("bias_filler", bias_filler)):
        if filler is not None:
            getattr(p, field).Clear()
            for k, v in filler.items():
                setattr(getattr(p, field), k, v)
    return out


def finetune_solver(net="train_val.prototxt", test_iter=100, test_interval=1000, base_lr=0.001, stepsize=20000,
                    max_iter=100000, display=20, snapshot=10000, snapshot_prefix="snapshot", solver_mode="GPU",
                    path=None):
    """The fine-tuning solver of models/finetune_flickr_style/solver.prototxt: step policy (gamma 0.1),
    momentum 0.9, weight decay 5e-4, base_lr 0.001, stepsize 20000; solver_mode None leaves it out."""
    fields = dict(net=net, test_iter=[test_iter], test_interval=test_interval, base_lr=base_lr, lr_policy="step",
                  gamma=0.1, stepsize=stepsize, display=display, max_iter=max_iter, momentum=0.9,
                  weight_decay=0.0005, snapshot=snapshot, snapshot_prefix=snapshot_prefix)
    if solver_mode is not None:
        fields["solver_mode"] = solver_mode
    return finish(_solver(**fields), path)


_KEYS = [(re.compile(r"^(?:bn|scale)_(conv1)$"), r"\1"),              # ResNet stem: bn_conv1, scale_conv1
         (re.compile(r"^(?:res|bn|scale)(\d+[a-z]+)_"), r"res\1"),     # res3a_branch2a, bn3a_.., scale3a_..
         (re.compile(r"^(conv\d+)_\d+$"), r"\1"),                      # VGG conv4_2
         (re.compile(r"^([^/]+)/"), r"\1")]                            # inception_4a/3x3, fire9/expand1x1


def block_key(name):
    """The block a layer belongs to (see the module docstring)."""
    for pattern, repl in _KEYS:
        m = pattern.match(name)
        if m:
            return m.expand(repl)
    return name


def _base_mults(layer):
    """The multipliers a layer learns at when free: its own param lr_mults, 1 where it has none (Caffe's
    default, src/caffe/net.cpp AppendParam); BatchNorm blobs always 0."""
    n = blob_count(layer)
    if not _learns(layer):
        return [0.0] * n
    return [layer.param[i].lr_mult if i < len(layer.param) else 1.0 for i in range(n)]


def _set_mults(layer, values):
    for i, v in enumerate(values):
        p = layer.param[i] if i < len(layer.param) else layer.param.add()
        p.lr_mult = v


def learning_layers(net):
    """{layer name: [lr_mult per blob]} for the layers of `net` with at least one blob that learns."""
    out = {}
    for layer in net.layer:
        n = blob_count(layer)
        mults = [layer.param[i].lr_mult if i < len(layer.param) else 1.0 for i in range(n)]
        if not _learns(layer):
            mults = [0.0] * n        # BatchNorm blobs are statistics, never updated by the solver
        if any(m != 0 for m in mults):
            out[layer.name] = mults
    return out


def two_stage(net, head, top_blocks=1, rate=0.1, folder=None):
    """(stage1, stage2, plan): the two nets and plan = {"stage1": {...}, "stage2": {...}}, each the
    learning_layers() of that net. `head` names the new layers (a name or a list) learning at their own
    multipliers in both stages. With `folder`, also writes train_val_stage1.prototxt and
    train_val_stage2.prototxt there."""
    heads = {head} if isinstance(head, str) else set(head)
    for h in heads:
        _layer(net, h)
    stage1, stage2 = caffe_pb2.NetParameter(), caffe_pb2.NetParameter()
    stage1.CopyFrom(net)
    stage2.CopyFrom(net)
    first_head = min(i for i, l in enumerate(net.layer) if l.name in heads)
    keys = []
    for layer in net.layer[:first_head]:
        if blob_count(layer) and block_key(layer.name) not in keys:
            keys.append(block_key(layer.name))
    if top_blocks > len(keys):
        raise NetError(f"two_stage: top_blocks={top_blocks} but the net has {len(keys)} blocks below the head")
    thawed = set(keys[len(keys) - top_blocks:]) if top_blocks else set()
    for l1, l2 in zip(stage1.layer, stage2.layer):
        n = blob_count(l1)
        if not n or l1.name in heads:
            continue
        _set_mults(l1, [0.0] * n)
        base = _base_mults(l2)
        _set_mults(l2, [m * rate for m in base] if block_key(l2.name) in thawed else [0.0] * n)
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        for k, stage in ((1, stage1), (2, stage2)):
            finish(stage, os.path.join(folder, f"train_val_stage{k}.prototxt"))
    return stage1, stage2, {"stage1": learning_layers(stage1), "stage2": learning_layers(stage2)}


# ---------------------------------------------------------------- the published recipes, as file sets

def flickr_style():
    """models/finetune_flickr_style of BVLC Caffe: CaffeNet on ImageData lists of Flickr Style (20 classes),
    fc8 -> fc8_flickr. {file name: message} for train_val, deploy and solver."""
    data = DataSpec("data/flickr_style/train.txt", "data/flickr_style/test.txt", 50, 50, 227, kind="ImageData",
                    mean_file="data/ilsvrc12/imagenet_mean.binaryproto")
    name = "FlickrStyleCaffeNet"
    return {
        "train_val.prototxt": finetune(alexnet.caffenet_train_val(name, data), "fc8", "fc8_flickr", 20, **NEW_LAYER),
        "deploy.prototxt": finetune(alexnet.caffenet_deploy(name, param=alexnet.LEARN, fillers=True), "fc8",
                                    "fc8_flickr", 20, **NEW_LAYER),
        "solver.prototxt": finetune_solver("models/finetune_flickr_style/train_val.prototxt", test_iter=100,
                                           snapshot_prefix="models/finetune_flickr_style/finetune_flickr_style",
                                           solver_mode=None)}


# net -> (fish145 net name, classifier, new name, new weight filler, data kind, sources, batches, crop, test_iter)
_OXFORD102 = {
    "caffenet": ("Oxford102_CaffeNet", "fc8", "fc8_oxford_102", gaussian(0.01), "ImageData",
                 ("../train.txt", "../valid.txt"), (50, 50), 227, 21),
    "vgg16": ("Oxford102_VGG16", "fc8", "fc8_oxford102", gaussian(0.01), "ImageData",
              ("../train.txt", "../valid.txt"), (50, 20), 224, 51),
    "resnet50": ("Oxford102_Resnet50", "fc1000", "fc_oxford102", dict(type="msra"), "Data",
                 ("../oxford102_train_lmdb", "../oxford102_valid_lmdb"), (25, 1), 224, 1020),
}
# two-stage defaults: blocks thawed in stage 2 (CaffeNet fc6 fc7; VGG16 conv5 fc6 fc7; ResNet-50 res5a..c)
TOP_BLOCKS = {"caffenet": 2, "vgg16": 3, "resnet50": 3}


def oxford102(net, two_stages=True, rate=0.1):
    """The Oxford 102 Flowers recipe of fish145/fine-tuning for `net` ("caffenet", "vgg16", "resnet50"):
    train_val and solver as published (relative paths: run from the recipe folder, lists and LMDBs one
    folder up), a deploy net (Input 10 x 3 x crop x crop) and, with two_stages, train_val_stage1/2 and
    solver_stage1/2 from `two_stage` (stage 1 for 10000 iterations, stage 2 from its weights for 20000)."""
    if net not in _OXFORD102:
        raise NetError(f"oxford102: unknown net '{net}'; valid: {', '.join(_OXFORD102)}")
    name, old, new, filler, kind, sources, batches, crop, test_iter = _OXFORD102[net]
    data = DataSpec(*sources, *batches, crop, kind=kind, mean_file="../imagenet_mean.binaryproto")
    ft = dict(lr_mult=(10, 20), weight_filler=filler, bias_filler=constant(0))
    if net == "caffenet":
        tv = alexnet.caffenet_train_val(name, data, head="loss_first")
        dep = alexnet.caffenet_deploy(name)
    elif net == "vgg16":
        tv = vgg.vgg16_train_val(name, data, loss_top=False)
        dep = vgg.vgg16_deploy(name, param=None, fillers=False, classifier_param=None, classifier_fillers=False)
    else:
        tv = resnet.resnet50_train_val(name, data)
        dep = resnet.resnet50_deploy(name, batch=10, input_style="layer")
    tv = finetune(tv, old, new, 102, **ft)
    files = {"train_val.prototxt": tv, "deploy.prototxt": finetune(dep, old, new, 102, lr_mult=None),
             "solver.prototxt": finetune_solver(test_iter=test_iter, test_interval=500, max_iter=50000, display=50,
                                                snapshot=5000)}
    if two_stages:
        s1, s2, _ = two_stage(tv, new, TOP_BLOCKS[net], rate)
        files.update({"train_val_stage1.prototxt": s1, "train_val_stage2.prototxt": s2})
        for k, iters in ((1, 10000), (2, 20000)):
            files[f"solver_stage{k}.prototxt"] = finetune_solver(
                f"train_val_stage{k}.prototxt", test_iter=test_iter, test_interval=500, max_iter=iters,
                stepsize=iters * 2 // 5, display=50, snapshot=iters // 2, snapshot_prefix=f"snapshot_stage{k}")
    return files
