"""Regenerate models/zoo/ from the generators: `tools/emit_zoo [--check]` (or `python -m recaffe.tools.emit_zoo`).

models/zoo/<folder>/ holds, for each zoo net, the published files as the generators emit them (pycaffe's
text layout, shortest float32 spellings):
    bvlc_reference_caffenet, bvlc_alexnet, bvlc_googlenet   BVLC Caffe models/<folder>/ (train_val, deploy,
                                                            solver; paths relative to CAFFE_ROOT)
    vgg16_places365                                         CSAILVision/places365 VGG16 (365 classes)
    squeezenet_v1.1                                         DeepScale/SqueezeNet SqueezeNet_v1.1
    resnet50                                                KaimingHe ResNet-50 deploy; train_val in the
                                                            training form of fish145 (ImageNet, 1000 classes)
and the fine-tuning recipes of models.recipes:
    finetune_flickr_style                                   BVLC Caffe models/finetune_flickr_style
    oxford102_{caffenet,vgg16,resnet50}                     fish145/fine-tuning Oxford102, plus the
                                                            two-stage files (train_val_stage1/2, solver_stage1/2)
tests/test_models_zoo.py fails when a file here differs from what `zoo_files()` generates now.
With --check nothing is written: the stale, missing and extra files are listed and the exit status is 1.
"""
import os

from recaffe.models import alexnet, googlenet, recipes, resnet, squeezenet, vgg
from recaffe.netspec.spec import to_prototxt, write
from recaffe.tools._cli import FlagParser, run

ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "zoo")


def _bvlc(folder, train_val, deploy, prefix):
    return {f"{folder}/train_val.prototxt": train_val, f"{folder}/deploy.prototxt": deploy,
            f"{folder}/solver.prototxt": alexnet.imagenet_solver(f"models/{folder}/train_val.prototxt",
                                                                 f"models/{folder}/{prefix}")}


def zoo_files():
    """{path relative to models/zoo: NetParameter or SolverParameter}, in a fixed order."""
    files = {}
    files.update(_bvlc("bvlc_reference_caffenet", alexnet.caffenet_train_val(), alexnet.caffenet_deploy(),
                       "caffenet_train"))
    files.update(_bvlc("bvlc_alexnet", alexnet.alexnet_train_val(), alexnet.alexnet_deploy(), "caffe_alexnet_train"))
    files.update({"bvlc_googlenet/train_val.prototxt": googlenet.googlenet_train_val(),
                  "bvlc_googlenet/deploy.prototxt": googlenet.googlenet_deploy(),
                  "bvlc_googlenet/solver.prototxt": googlenet.googlenet_solver()})
    places = dict(classifier="fc8a", num_output=365, classifier_fillers=False)
    files.update({"vgg16_places365/train_val.prototxt": vgg.vgg16_train_val(**places),
                  "vgg16_places365/deploy.prototxt": vgg.vgg16_deploy("VGG-Places365", input_style="fields",
                                                                      **places),
                  "vgg16_places365/solver.prototxt": vgg.places365_solver()})
    files.update({"squeezenet_v1.1/train_val.prototxt": squeezenet.squeezenet_train_val(),
                  "squeezenet_v1.1/deploy.prototxt": squeezenet.squeezenet_deploy(),
                  "squeezenet_v1.1/solver.prototxt": squeezenet.squeezenet_solver()})
    files.update({"resnet50/train_val.prototxt": resnet.resnet50_train_val(),
                  "resnet50/deploy.prototxt": resnet.resnet50_deploy(),
                  "resnet50/solver.prototxt": alexnet.imagenet_solver(
                      "models/zoo/resnet50/train_val.prototxt", "models/zoo/resnet50/resnet50", base_lr=0.1,
                      weight_decay=0.0001, stepsize=150000, max_iter=600000)})
    for name, msg in recipes.flickr_style().items():
        files[f"finetune_flickr_style/{name}"] = msg
    for net in ("caffenet", "vgg16", "resnet50"):
        for name, msg in recipes.oxford102(net).items():
            files[f"oxford102_{net}/{name}"] = msg
    return files


def check(zoo_dir=ZOO_DIR):
    """(stale, missing, extra) relative paths of zoo_dir against zoo_files()."""
    expected = {rel: to_prototxt(msg) for rel, msg in zoo_files().items()}
    stale, missing = [], []
    for rel, text in expected.items():
        path = os.path.join(zoo_dir, rel)
        if not os.path.exists(path):
            missing.append(rel)
        else:
            with open(path) as f:
                if f.read() != text:
                    stale.append(rel)
    on_disk = {os.path.relpath(os.path.join(d, f), zoo_dir) for d, _, fs in os.walk(zoo_dir) for f in fs}
    return stale, missing, sorted(on_disk - set(expected))


def main(argv=None):
    ap = FlagParser("emit_zoo", "regenerate models/zoo from the generators")
    ap.add_flag("check", False, bool, "only report stale, missing and extra files (exit status 1 if any)")
    ap.add_flag("zoo-dir", ZOO_DIR, str, "the folder to write or check")
    args = ap.parse_args(argv)
    if args.check:
        stale, missing, extra = check(args.zoo_dir)
        for kind, rels in (("stale", stale), ("missing", missing), ("extra", extra)):
            for rel in rels:
                print(f"{kind}: {rel}")
        return 1 if stale or missing or extra else 0
    files = zoo_files()
    for rel, msg in files.items():
        path = os.path.join(args.zoo_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write(msg, path)
    print(f"wrote {len(files)} files under {args.zoo_dir}")
    return 0


def cli(argv=None):
    """Entry point (tools/emit_zoo): through the error boundary (tools/_cli.py)."""
    return run(main, "emit_zoo", argv)


if __name__ == "__main__":
    cli()
