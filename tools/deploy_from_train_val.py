"""deploy_from_train_val: write a deploy prototxt for a train_val prototxt (beyond Caffe).

    python -m recaffe.tools.deploy_from_train_val TRAIN_VAL.prototxt DEPLOY.prototxt [--batch N]
        [--shape N,C,H,W] [--noprob]

Drops data, loss, accuracy and TRAIN-only layers, adds an Input of the data layer's shape (batch 1
unless --batch, crop_size or the layer's size fields, or --shape) and a Softmax ``prob`` on the
classifier (see recaffe.deploy). The trained .caffemodel loads into the result unchanged.
"""
import sys

from recaffe.protos.errors import NetError
from recaffe.tools._cli import FlagParser, run


def parse(argv):
    p = FlagParser(prog="deploy_from_train_val", description="a deploy prototxt from a train_val prototxt")
    p.add_argument("train_val")
    p.add_argument("deploy")
    p.add_flag("batch", 0, int, help="input batch size (default: 1, or --shape's)")
    p.add_flag("shape", "", help="input shape N,C,H,W (default: from the data layer)")
    p.add_flag("prob", True, bool, help="add a Softmax 'prob' on the classifier (--noprob: do not)")
    return p.parse_args(argv)


def main(argv=None):
    from recaffe.netspec.spec import write
    from recaffe.deploy import deploy_from_train_val
    ns = parse(sys.argv[1:] if argv is None else argv)
    flags, pos = vars(ns), [ns.train_val, ns.deploy]
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
    first = deploy.layer[0] if len(deploy.layer) else None
    shape = list(first.input_param.shape[0].dim) if first is not None and first.type == "Input" else list(deploy.input)
    print(f"{pos[1]}: {len(deploy.layer)} layers, input {shape}")
    return 0


def cli(argv=None):
    """Entry point (tools/deploy_from_train_val, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "deploy_from_train_val", argv)


if __name__ == "__main__":
    cli()
