"""detect: objects in images with an SSD deploy net (MobileNet-SSD, VGG SSD...): prints the boxes and
draws them (PNG).

    python -m recaffe.tools.detect IMAGE... -model deploy.prototxt -weights W.caffemodel [-labels voc|
        labelmap.prototxt|names.txt] [-threshold 0.5] [-mean 127.5,127.5,127.5] [-scale 0.007843]
        [--swap_rb] [-out OUT.png | -out_dir DIR]

Each image (OpenCV, BGR) is resized to the net's input, (pixel - mean) * scale (MobileNet-SSD's
defaults; VGG SSD: -mean 104,117,123 -scale 1), and detections from -threshold up are printed, per
image, as ``IMAGE`` then ``  <label> <name> <score> <xmin> <ymin> <xmax> <ymax>`` in pixels. -out
(one image) or -out_dir (one PNG per image, named after it) write the image with the boxes drawn.
"""
import os
import sys

from recaffe.protos.errors import DataError
from recaffe.tools._cli import FlagParser, run


def parse(argv):
    p = FlagParser(prog="detect", description="detect objects with an SSD deploy net")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_flag("model", "", help="SSD deploy prototxt (with a DetectionOutput layer)")
    p.add_flag("weights", "", help=".caffemodel or .pth")
    p.add_flag("labels", "", help="'voc', an SSD label map prototxt, or one name per line")
    p.add_flag("threshold", 0.5, float, help="lowest score printed and drawn")
    p.add_flag("mean", "127.5,127.5,127.5", help="per-channel mean subtracted (BGR)")
    p.add_flag("scale", 0.007843, float, help="multiplier after the mean")
    p.add_flag("swap_rb", False, bool, help="feed RGB instead of BGR")
    p.add_flag("out", "", help="PNG with the boxes drawn (one image)")
    p.add_flag("out_dir", "", help="folder for one <image name>.png per image")
    return p.parse_args(argv)


def main(argv=None):
    import cv2
    import numpy as np
    from recaffe.ssd_detect import SSDDetector, draw, read_labels
    a = parse(sys.argv[1:] if argv is None else argv)
    if not a.model:
        raise DataError("-model is required (an SSD deploy prototxt)")
    if a.out and len(a.images) != 1:
        raise DataError(f"-out takes one image, got {len(a.images)}; use -out_dir for several")
    try:
        mean = [float(v) for v in a.mean.split(",")]
    except ValueError:
        raise DataError(f"-mean must be comma-separated numbers, got {a.mean!r}") from None
    det = SSDDetector(a.model, a.weights or None, mean, a.scale, a.swap_rb, read_labels(a.labels))
    if a.out_dir:
        os.makedirs(a.out_dir, exist_ok=True)
    for path in a.images:
        with open(path, "rb") as f:       # (cv2.imread would also print a warning of its own)
            data = np.frombuffer(f.read(), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR if det.channels == 3 else cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"{path}: cannot read the image (missing, or not an image OpenCV decodes)")
        found = det.detect(image, a.threshold)
        print(path)
        for d in found:
            print(f"  {d.label} {d.name} {d.score:.4f} {d.xmin:.1f} {d.ymin:.1f} {d.xmax:.1f} {d.ymax:.1f}")
        out = a.out or (os.path.join(a.out_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
                        if a.out_dir else "")
        if out:
            from recaffe.protos.files import atomic_write
            ok, png = cv2.imencode(".png", draw(image, found))
            atomic_write(out, png.tobytes(), DataError)
    return 0


def cli():
    """Console entry point (setup.py): one-line errors, exit status 2."""
    run(main, "detect")


if __name__ == "__main__":
    cli()
