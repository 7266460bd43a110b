"""classify: top-k classes of images with a deploy net (python/classify.py of Caffe, printing instead of
saving an .npy).

    python -m recaffe.tools.classify IMAGE... -model deploy.prototxt -weights W.caffemodel [-mean mean.npy|
        mean.binaryproto] [-crop 227] [-resize 256] [-labels synset_words.txt] [-top 5] [--oversample]
        [-raw_scale 255] [-channel_swap 2,1,0] [-input_scale 1]
    python -m recaffe.tools.classify IMAGE deploy.prototxt W.caffemodel [mean.npy [CROP]]     # positional form

Each image (PIL-decoded, RGB in [0, 1]) is resized to -resize x -resize (default 256, or the crop when
larger), then the centre crop (or, with --oversample, the 4 corners + centre and their mirrors,
averaged) of -crop x -crop (default: the net input's size; the input is reshaped to it) goes through
recaffe.Classifier: channel swap to BGR, x raw_scale, minus the mean (the per-channel mean of the mean
file, as classify.py does), x input_scale. Prints, per image, ``IMAGE`` then ``  <rank>. <prob> <label>``.
"""
import sys

import numpy as np

from recaffe.protos.errors import DataError
from recaffe.tools._cli import FlagParser, run

USAGE = ("usage: classify IMAGE... -model deploy.prototxt -weights W [-mean FILE] [-crop N] [-resize N] "
         "[-labels FILE] [-top K] [--oversample]\n   or: classify IMAGE deploy.prototxt W [mean.npy [CROP]]")


def parse(argv):
    p = FlagParser(prog="classify", description="top-k classes of images with a deploy net")
    p.add_argument("args", nargs="*", help="IMAGE... (or IMAGE MODEL WEIGHTS [MEAN [CROP]])")
    p.add_flag("model", "", help="deploy prototxt")
    p.add_flag("weights", "", help=".caffemodel or .pth")
    p.add_flag("mean", "", help="mean.npy or mean.binaryproto (its per-channel mean is used)")
    p.add_flag("crop", 0, int, help="crop size (default: the net input size)")
    p.add_flag("resize", 0, int, help="images are first resized to this square size")
    p.add_flag("labels", "", help="one label per line, e.g. synset_words.txt")
    p.add_flag("top", 5, int, help="how many classes to print")
    p.add_flag("oversample", False, bool, help="average the 10 corner/centre crops and their mirrors")
    p.add_flag("raw_scale", 255.0, float)
    p.add_flag("channel_swap", "2,1,0")
    p.add_flag("input_scale", 1.0, float)
    ns = p.parse_args(argv)
    flags = {k: v for k, v in vars(ns).items() if k != "args"}
    return flags, list(ns.args)


def _positional(flags, pos):
    """The seed-recipe form: IMAGE MODEL WEIGHTS [MEAN [CROP]] (model recognised by .prototxt)."""
    proto = [i for i, p in enumerate(pos) if p.endswith(".prototxt")]
    if flags["model"] or not proto:
        return pos
    i = proto[0]
    rest = pos[i + 1:]
    images = pos[:i]
    flags["model"] = pos[i]
    if not rest:
        raise DataError(f"positional form needs WEIGHTS after {pos[i]}\n{USAGE}")
    flags["weights"] = rest[0]
    if len(rest) > 1:
        flags["mean"] = rest[1]
    if len(rest) > 2:
        try:
            flags["crop"] = int(rest[2])
        except ValueError:
            raise DataError(f"CROP must be an integer, got {rest[2]!r}") from None
    if len(rest) > 3:
        raise DataError(f"too many positional arguments after {pos[i]}\n{USAGE}")
    return images


def read_channel_mean(path):
    """Per-channel mean (C,) of a .npy (C x H x W, or C) or .binaryproto file."""
    if path.endswith(".npy"):
        try:
            arr = np.load(path)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read mean .npy: {e}") from None
    else:
        from recaffe.netspec.data.meanfile import read_mean
        arr = np.asarray(read_mean(path))
    arr = np.asarray(arr, np.float32)
    if arr.ndim == 3:
        return arr.mean(1).mean(1)
    if arr.ndim == 1:
        return arr
    raise DataError(f"{path}: mean must be C x H x W or C values, got shape {arr.shape}")


def read_labels(path):
    try:
        with open(path) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except OSError as e:
        raise DataError(f"{path}: cannot read labels: {e.strerror}") from None


def classify(images, flags, out=None):
    out = out or sys.stdout
    import recaffe
    from recaffe.io import load_image
    clf = recaffe.Classifier(flags["model"], flags["weights"])
    if not clf.inputs:
        raise DataError(f"{flags['model']}: the net has no Input blob to feed images to")
    in_ = clf.inputs[0]
    shape = clf.blobs[in_].shape
    if len(shape) != 4:
        raise DataError(f"{flags['model']}: input '{in_}' has shape {shape}; an image net needs N x C x H x W")
    crop = flags["crop"] or shape[2]
    if flags["resize"]:
        resize = flags["resize"]
    else:
        resize = max(256, crop) if flags["crop"] else crop
    if resize < crop:
        raise DataError(f"-resize {resize} is smaller than -crop {crop}")
    try:
        swap = tuple(int(c) for c in flags["channel_swap"].split(",")) if flags["channel_swap"] else None
    except ValueError:
        raise DataError(f"-channel_swap must be comma-separated integers, got {flags['channel_swap']!r}") from None
    mean = read_channel_mean(flags["mean"]) if flags["mean"] else None
    batch = 10 if flags["oversample"] else 1
    clf.blobs[in_].reshape(batch, shape[1], crop, crop)
    clf.reshape()
    clf._configure((resize, resize), mean, flags["input_scale"], flags["raw_scale"], swap)
    labels = read_labels(flags["labels"]) if flags["labels"] else None
    for path in images:
        try:
            img = load_image(path, color=shape[1] == 3)
        except OSError as e:
            raise DataError(f"{path}: cannot read image: {e}") from None
        probs = clf.predict([img], oversample=flags["oversample"])[0]
        if labels is not None and len(labels) != probs.size:
            raise DataError(f"{flags['labels']}: {len(labels)} labels for {probs.size} classes")
        print(path, file=out)
        for rank, k in enumerate(np.argsort(-probs, kind="stable")[:flags["top"]], 1):
            name = labels[k] if labels is not None else str(k)
            print(f"  {rank}. {probs[k]:.4f} {name}", file=out)
    return 0


def main(argv=None):
    flags, pos = parse(sys.argv[1:] if argv is None else argv)
    images = _positional(flags, pos)
    if not images:
        raise DataError(f"no image given\n{USAGE}")
    for need in ("model", "weights"):
        if not flags[need]:
            raise DataError(f"-{need} is required\n{USAGE}")
    return classify(images, flags)


def cli(argv=None):
    """Entry point (tools/classify, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "classify", argv)


if __name__ == "__main__":
    cli()
