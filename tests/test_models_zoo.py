"""Model-zoo generators and recipes (models/{alexnet,vgg,googlenet,resnet,squeezenet,recipes}.py,
tools/emit_zoo.py) against the published files.

Nets and solvers are compared as Caffe reads them: our message is printed (to_prototxt) and re-read, the
published file is read, both with protos.io.read_net / read_solver, and the messages must be equal
(NetParameter/SolverParameter equality: same fields set, same values; floats are float32 on both sides).
read_net turns the legacy `input`/`input_dim` fields into an Input layer as Caffe's UpgradeNetInput does
(protos/upgrade.py; layer "input", one top per input), on both sides alike. The three V1-format files (jimgoo AlexNet train_val/deploy, fish145 VGG16 train_val) are
compared with their upgrade by real Caffe (tests/golden/zoo/, tests/oracle/make_zoo_goldens.py).
Published files come from the corpus (tests/locations.py); without it those comparisons are skipped (said so).

Quirks of published files reproduced through generator arguments (nothing is left unmatched): unnamed nets
(places365, SqueezeNet), data paths/batch sizes/ImageData lists, jimgoo's swapped train/test lists and
absolute paths, loss layers without a top (V1 files), loss-before-accuracy order (fish145, places365),
classifier fillers absent (places365 fc8a), GoogLeNet deploy's xavier std values, `solver_type: SGD`.
"""
import functools
import os

import pytest

from recaffe.models import alexnet, recipes, resnet, squeezenet, vgg
from recaffe.models.zoo_common import DataSpec, deploy
from recaffe.netspec.spec import layers as L, to_prototxt
from recaffe.protos import caffe_pb2, io
from recaffe.protos.errors import NetError
from recaffe.tools import emit_zoo

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "zoo")
from locations import CORPUS, corpus_skip_reason


@functools.lru_cache(maxsize=None)
def zoo():
    return emit_zoo.zoo_files()


def _reference(rel):
    if rel.startswith("golden:"):
        return os.path.join(GOLDEN, rel[len("golden:"):])
    if corpus_skip_reason():
        pytest.skip(corpus_skip_reason())
    return os.path.join(CORPUS, rel)


def assert_same_net(ours, rel):
    mine = io.read_net(to_prototxt(ours))
    theirs = io.read_net(_reference(rel))
    assert not theirs.layers, f"{rel} read as a V1 net; compare with its Caffe-upgraded golden instead"
    if mine == theirs:
        return
    head_a, head_b = caffe_pb2.NetParameter(), caffe_pb2.NetParameter()
    head_a.CopyFrom(mine)
    head_b.CopyFrom(theirs)
    del head_a.layer[:], head_b.layer[:]
    assert head_a == head_b, f"net fields differ:\n{head_a}\nvs {rel}:\n{head_b}"
    assert [l.name for l in mine.layer] == [l.name for l in theirs.layer]
    for a, b in zip(mine.layer, theirs.layer):
        assert a == b, f"layer {a.name} differs:\n{a}\nvs {rel}:\n{b}"


def assert_same_solver(ours, rel):
    assert io.read_solver(to_prototxt(ours)) == io.read_solver(_reference(rel))


BVLC = "BVLC__caffe/models__"
FISH = "fish145__fine-tuning/Oxford102__"
ZOO_NETS = [
    ("bvlc_reference_caffenet/train_val.prototxt", BVLC + "bvlc_reference_caffenet__train_val.prototxt"),
    ("bvlc_reference_caffenet/deploy.prototxt", BVLC + "bvlc_reference_caffenet__deploy.prototxt"),
    ("bvlc_alexnet/train_val.prototxt", BVLC + "bvlc_alexnet__train_val.prototxt"),
    ("bvlc_alexnet/deploy.prototxt", BVLC + "bvlc_alexnet__deploy.prototxt"),
    ("bvlc_googlenet/train_val.prototxt", BVLC + "bvlc_googlenet__train_val.prototxt"),
    ("bvlc_googlenet/deploy.prototxt", BVLC + "bvlc_googlenet__deploy.prototxt"),
    ("finetune_flickr_style/train_val.prototxt", BVLC + "finetune_flickr_style__train_val.prototxt"),
    ("finetune_flickr_style/deploy.prototxt", BVLC + "finetune_flickr_style__deploy.prototxt"),
    ("vgg16_places365/train_val.prototxt", "CSAILVision__places365/train_val_vgg16.prototxt"),
    ("vgg16_places365/deploy.prototxt", "CSAILVision__places365/deploy_vgg16_places365.prototxt"),
    ("squeezenet_v1.1/train_val.prototxt", "DeepScale__SqueezeNet/SqueezeNet_v1.1__train_val.prototxt"),
    ("squeezenet_v1.1/deploy.prototxt", "DeepScale__SqueezeNet/SqueezeNet_v1.1__deploy.prototxt"),
    ("resnet50/deploy.prototxt", "KaimingHe__deep-residual-networks/prototxt__ResNet-50-deploy.prototxt"),
    ("oxford102_caffenet/train_val.prototxt", FISH + "CaffeNet__train_val.prototxt"),
    ("oxford102_resnet50/train_val.prototxt", FISH + "ResNet50__train_val.prototxt"),
    ("oxford102_vgg16/train_val.prototxt", "golden:fish145_oxford102_vgg16_train_val.prototxt"),
]
ZOO_SOLVERS = [
    ("bvlc_reference_caffenet/solver.prototxt", BVLC + "bvlc_reference_caffenet__solver.prototxt"),
    ("bvlc_alexnet/solver.prototxt", BVLC + "bvlc_alexnet__solver.prototxt"),
    ("bvlc_googlenet/solver.prototxt", BVLC + "bvlc_googlenet__solver.prototxt"),
    ("finetune_flickr_style/solver.prototxt", BVLC + "finetune_flickr_style__solver.prototxt"),
    ("vgg16_places365/solver.prototxt", "CSAILVision__places365/solver_vgg16.prototxt"),
    ("squeezenet_v1.1/solver.prototxt", "DeepScale__SqueezeNet/SqueezeNet_v1.1__solver.prototxt"),
    ("oxford102_caffenet/solver.prototxt", FISH + "CaffeNet__solver.prototxt"),
    ("oxford102_resnet50/solver.prototxt", FISH + "ResNet50__solver.prototxt"),
]


@pytest.mark.parametrize("rel,ref", ZOO_NETS, ids=[r for r, _ in ZOO_NETS])
def test_zoo_net_equals_published(rel, ref):
    assert_same_net(zoo()[rel], ref)


@pytest.mark.parametrize("rel,ref", ZOO_SOLVERS, ids=[r for r, _ in ZOO_SOLVERS])
def test_zoo_solver_equals_published(rel, ref):
    assert_same_solver(zoo()[rel], ref)


# jimgoo/caffe-oxford102 "AlexNet" (really CaffeNet, named Oxford102_CaffeNet): V1 files, lists swapped
# (train on test.txt), absolute paths, loss without a top, deploy with input fields and no param on fc8.
_JIMGOO_DATA = DataSpec("/home/ubuntu/git/caffe-oxford102/test.txt", "/home/ubuntu/git/caffe-oxford102/train.txt",
                        50, 50, 227, kind="ImageData", mean_file="/home/ubuntu/caffe/data/ilsvrc12/imagenet_mean.binaryproto")


def test_jimgoo_alexnet_train_val():
    net = alexnet.caffenet_train_val("Oxford102_CaffeNet", _JIMGOO_DATA, head="loss_first", loss_top=False)
    net = recipes.finetune(net, "fc8", "fc8_oxford_102", 102, **recipes.NEW_LAYER)
    assert_same_net(net, "golden:jimgoo_oxford102_alexnet_train_val.prototxt")


def test_jimgoo_alexnet_deploy():
    net = alexnet.caffenet_deploy("Oxford102_CaffeNet", param=alexnet.LEARN, input_style="fields")
    net = recipes.finetune(net, "fc8", "fc8_oxford_102", 102, lr_mult=None)
    assert list(net.input_dim) == [10, 3, 227, 227] and net.layer[0].type == "Convolution"
    assert_same_net(net, "golden:jimgoo_oxford102_alexnet_deploy.prototxt")


def test_jimgoo_alexnet_solver():
    s = recipes.finetune_solver(test_iter=124, test_interval=500, max_iter=50000, display=50, snapshot=10000)
    assert_same_solver(s, "jimgoo__caffe-oxford102/AlexNet__solver.prototxt")


def test_published_variants_by_argument():
    """VGG16 with 365 outputs is the places365 net, and the other defaults give different nets."""
    net = vgg.vgg16_train_val(classifier="fc8a", num_output=365, classifier_fillers=False)
    fc = [l for l in net.layer if l.name == "fc8a"][0]
    assert fc.inner_product_param.num_output == 365 and not fc.inner_product_param.HasField("weight_filler")
    assert net == zoo()["vgg16_places365/train_val.prototxt"]
    assert alexnet.caffenet_train_val() != alexnet.alexnet_train_val()
    convs = [l for l in resnet.resnet50_deploy().layer if l.type == "Convolution"]
    assert len(convs) == 53 and [c.name for c in convs if c.convolution_param.bias_term] == ["conv1"]


# ---------------------------------------------------------------- models/zoo on disk

def test_zoo_on_disk_is_current():
    stale, missing, extra = emit_zoo.check()
    assert (stale, missing, extra) == ([], [], []), \
        f"models/zoo is out of date (run python -m recaffe.tools.emit_zoo): stale {stale}, missing {missing}, extra {extra}"


def test_stale_check_detects_an_edit(tmp_path):
    emit_zoo.main(["--zoo-dir", str(tmp_path)])
    assert emit_zoo.check(str(tmp_path)) == ([], [], [])
    path = tmp_path / "oxford102_vgg16" / "solver.prototxt"
    path.write_text(path.read_text().replace("base_lr: 0.001", "base_lr: 0.002"))
    (tmp_path / "bvlc_alexnet" / "deploy.prototxt").unlink()
    (tmp_path / "bvlc_alexnet" / "old.prototxt").write_text("name: 'x'\n")
    assert emit_zoo.check(str(tmp_path)) == (["oxford102_vgg16/solver.prototxt"], ["bvlc_alexnet/deploy.prototxt"],
                                             ["bvlc_alexnet/old.prototxt"])
    assert emit_zoo.main(["--check", "--zoo-dir", str(tmp_path)]) == 1


# ---------------------------------------------------------------- fine-tuning recipe

def test_finetune_renames_classifier_everywhere():
    base = alexnet.caffenet_train_val()
    net = recipes.finetune(base, "fc8", "fc8_oxford102", 102, **recipes.NEW_LAYER)
    names = [l.name for l in net.layer]
    assert "fc8" not in names and names.index("fc8_oxford102") == [l.name for l in base.layer].index("fc8")
    assert all("fc8" not in list(l.bottom) + list(l.top) for l in net.layer)
    fc = net.layer[names.index("fc8_oxford102")]
    assert fc.inner_product_param.num_output == 102
    assert [(p.lr_mult, p.decay_mult) for p in fc.param] == [(10, 1), (20, 0)]
    assert [l.bottom[0] for l in net.layer if l.type in ("Accuracy", "SoftmaxWithLoss")] == ["fc8_oxford102"] * 2
    assert base.layer[names.index("fc8_oxford102")].name == "fc8"          # input not modified


def test_finetune_errors():
    with pytest.raises(NetError, match="no layer 'fc9'"):
        recipes.finetune(alexnet.caffenet_deploy(), "fc9", "new", 10)
    with pytest.raises(NetError, match="is a ReLU"):
        recipes.finetune(alexnet.caffenet_deploy(), "relu7", "new", 10)
    with pytest.raises(NetError, match="valid: caffenet, vgg16, resnet50"):
        recipes.oxford102("lenet")
    with pytest.raises(NetError, match="valid: caffenet, alexnet"):
        alexnet._train_val("zfnet", "x", None, "loss_first", True, None, {})
    with pytest.raises(NetError, match="valid: accuracy_first, loss_first"):
        alexnet.caffenet_train_val(head="loss_last")
    with pytest.raises(NetError, match="valid: Data, ImageData"):
        DataSpec("a", "b", 1, 1, 1, kind="HDF5Data")
    with pytest.raises(NetError, match="valid: layer, fields, shape"):
        deploy("x", [1, 3, 8, 8], lambda n: None, input_style="dims")


def test_deploy_input_shape_style():
    net = deploy("x", [2, 3, 8, 8], lambda n: setattr(n, "prob", L.Softmax(n.data)), input_style="shape")
    assert list(net.input) == ["data"] and list(net.input_shape[0].dim) == [2, 3, 8, 8]
    assert [l.type for l in io.read_net(net).layer] == ["Input", "Softmax"]


# ---------------------------------------------------------------- two-stage recipe

def _mults(layer):
    return [p.lr_mult for p in layer.param]


def _check_stages(base, head, s1, s2, thawed, rate):
    """Closed form: stage 1 learns only `head`; stage 2 also `thawed` at rate x base multipliers;
    every other layer with blobs has lr_mult 0 on each of them; nothing but `param` changes."""
    for net in (s1, s2):
        assert len(net.layer) == len(base.layer)
        for b, l in zip(base.layer, net.layer):
            stripped_b, stripped_l = caffe_pb2.LayerParameter(), caffe_pb2.LayerParameter()
            stripped_b.CopyFrom(b)
            stripped_l.CopyFrom(l)
            del stripped_b.param[:], stripped_l.param[:]
            assert stripped_b == stripped_l
            n = recipes.blob_count(l)
            if not n:
                assert not l.param
            elif l.name == head:
                assert l.param == b.param
            elif net is s2 and l.name in thawed:
                own = [b.param[i].lr_mult if i < len(b.param) else 1 for i in range(n)]
                assert _mults(l) == pytest.approx([rate * m for m in own], rel=1e-7), l.name
            else:
                assert _mults(l) == [0] * n, l.name


def test_two_stage_caffenet():
    base = zoo()["oxford102_caffenet/train_val.prototxt"]
    s1, s2, plan = recipes.two_stage(base, "fc8_oxford_102", top_blocks=2, rate=0.1)
    _check_stages(base, "fc8_oxford_102", s1, s2, {"fc6", "fc7"}, 0.1)
    assert plan["stage1"] == {"fc8_oxford_102": [10, 20]}
    assert plan["stage2"] == {"fc6": pytest.approx([0.1, 0.2]), "fc7": pytest.approx([0.1, 0.2]),
                              "fc8_oxford_102": [10, 20]}
    assert s1 == zoo()["oxford102_caffenet/train_val_stage1.prototxt"]
    assert s2 == zoo()["oxford102_caffenet/train_val_stage2.prototxt"]


def test_two_stage_vgg16_blocks_are_stages():
    base = zoo()["oxford102_vgg16/train_val.prototxt"]
    s1, s2, plan = recipes.two_stage(base, "fc8_oxford102", top_blocks=3, rate=0.5)
    _check_stages(base, "fc8_oxford102", s1, s2, {"conv5_1", "conv5_2", "conv5_3", "fc6", "fc7"}, 0.5)
    assert sorted(plan["stage2"]) == ["conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "fc8_oxford102"]


def test_two_stage_resnet50_units_and_batchnorm():
    base = zoo()["oxford102_resnet50/train_val.prototxt"]
    s1, s2, plan = recipes.two_stage(base, "fc_oxford102", top_blocks=3)
    res5 = {l.name for l in base.layer if l.type in ("Convolution", "Scale")
            and (l.name.startswith("res5") or l.name.startswith("scale5"))}
    assert len(res5) == 20                                  # 10 convolutions, 10 Scale layers
    _check_stages(base, "fc_oxford102", s1, s2, res5, 0.1)
    assert set(plan["stage2"]) == res5 | {"fc_oxford102"}
    bn5 = [l for l in s2.layer if l.type == "BatchNorm" and l.name.startswith("bn5")]
    assert len(bn5) == 10 and all(_mults(l) == [0, 0, 0] for l in bn5)
    scale = [l for l in s1.layer if l.name == "scale5c_branch2c"][0]
    assert _mults(scale) == [0, 0]                          # Scale had no param blocks: added, frozen
    assert zoo()["oxford102_resnet50/train_val_stage2.prototxt"] == s2


def test_two_stage_writes_its_nets(tmp_path):
    base = zoo()["oxford102_caffenet/train_val.prototxt"]
    s1, s2, _ = recipes.two_stage(base, "fc8_oxford_102", top_blocks=2, folder=str(tmp_path))
    assert io.read_net(str(tmp_path / "train_val_stage1.prototxt")) == io.read_net(to_prototxt(s1))
    assert io.read_net(str(tmp_path / "train_val_stage2.prototxt")) == io.read_net(to_prototxt(s2))


def test_two_stage_zero_blocks_and_errors():
    base = zoo()["oxford102_caffenet/train_val.prototxt"]
    s1, s2, plan = recipes.two_stage(base, "fc8_oxford_102", top_blocks=0)
    assert s1 == s2 and plan["stage1"] == plan["stage2"]
    with pytest.raises(NetError, match="top_blocks=8 but the net has 7 blocks"):
        recipes.two_stage(base, "fc8_oxford_102", top_blocks=8)
    with pytest.raises(NetError, match="no layer 'fc8'"):
        recipes.two_stage(base, "fc8")


def test_block_keys():
    assert [recipes.block_key(n) for n in ("bn_conv1", "scale_conv1", "res4f_branch2b", "bn4f_branch2b",
                                           "scale4f_branch1", "conv4_2", "inception_4a/3x3", "fire9/concat",
                                           "fc7")] == \
        ["conv1", "conv1", "res4f", "res4f", "res4f", "conv4", "inception_4a", "fire9", "fc7"]


def test_squeezenet_classifier_is_a_convolution():
    net = recipes.finetune(squeezenet.squeezenet_train_val(), "conv10", "conv10_new", 5, **recipes.NEW_LAYER)
    conv = [l for l in net.layer if l.name == "conv10_new"][0]
    assert conv.convolution_param.num_output == 5 and _mults(conv) == [10, 20]
    assert [l.bottom[0] for l in net.layer if l.name == "relu_conv10"] == ["conv10_new"]
