"""deploy_from_train_val: write a deploy prototxt for a train_val prototxt (beyond Caffe).

    python -m tools.deploy_from_train_val TRAIN_VAL.prototxt DEPLOY.prototxt [--batch N]
        [--shape N,C,H,W] [--noprob]

Drops data, loss, accuracy and TRAIN-only layers, adds an Input of the data layer's shape (batch 1
unless --batch, crop_size or the layer's size fields, or --shape) and a Softmax ``prob`` on the
classifier (see recaffe.deploy). The trained .caffemodel loads into the result unchanged.
"""
import sys

from netspec.data.flags import parse_flags
from protos.errors import NetError

USAGE = "usage: deploy_from_train_val TRAIN_VAL.prototxt DEPLOY.prototxt [--batch N] [--shape N,C,H,W] [--noprob]"
FLAGS = {"batch": 0, "shape": "", "prob": True}


def main(argv=None):
    from netspec.spec import write
    from recaffe.deploy import deploy_from_train_val
    flags, pos = parse_flags(sys.argv[1:] if argv is None else argv, FLAGS, USAGE)
    if len(pos) != 2:
        raise NetError(f"expected TRAIN_VAL.prototxt and DEPLOY.prototxt, got {len(pos)} argument(s)\n{USAGE}")
    shape = None
    if flags["shape"]:
        try:
            shape = tuple(int(d) for d in flags["shape"].split(","))
        except ValueError:
            raise NetError(f"--shape must be comma-separated integers (N,C,H,W), got {flags['shape']!r}") from None
        if len(shape) < 1 or any(d <= 0 for d in shape):
            raise NetError(f"--shape needs positive dimensions, got {flags['shape']!r}")
    if flags["batch"] < 0:
        raise NetError(f"--batch must be > 0, got {flags['batch']}")
    deploy = deploy_from_train_val(pos[0], shape=shape, batch=flags["batch"] or None, add_prob=flags["prob"])
    write(deploy, pos[1])
    print(f"{pos[1]}: {len(deploy.layer)} layers, input {list(deploy.layer[0].input_param.shape[0].dim) if len(deploy.layer) and deploy.layer[0].type == 'Input' else list(deploy.input)}")
    return 0


def _run():
    try:
        from tools._cli import run
    except ImportError:
        from tools.convert_imageset import _fallback_run as run
    return run(main)


if __name__ == "__main__":
    _run()
