"""Oracle for the WindowData layer (tests/test_window_data.py): runs inside real Caffe 1.0.

    /work/shared/oracle/caffe-run python3 tests/oracle/make_window_goldens.py     # from the repository root

Re-runnable: the images are generated from a fixed seed. Writes into tests/golden/window/:
  img0.png, img1.png (colour), img2_grey.png (stored grey, read as colour BGR by Caffe)
  mean.binaryproto   a (1, 3, 20, 18) mean image (non-square: Caffe's mean_off uses the width)
  <case>.txt         the window file of each case (image paths relative to root_folder)
  window.npz         <case>_layer (LayerParameter text), <case>_data_<k>, <case>_label_<k> per batch

Caffe draws windows at random; each deterministic case has exactly one foreground and one background
window (rand % 1 == 0) and mirror false, so its batch is fixed ("square" hits a -6.5 tie, where C's
round gives -7). The "mirror" case has mirror true and records several batches: each item must equal
the unmirrored or the mirrored rendering of its window.
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden", "window")
REL = "tests/golden/window/"            # paths in the layer texts are relative to the repository root
SIZES = {"img0.png": (40, 50), "img1.png": (30, 36), "img2_grey.png": (28, 32)}   # (height, width)


def make_images():
    rng = np.random.RandomState(4321)
    for i, (name, (h, w)) in enumerate(sorted(SIZES.items())):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([xx * 4 + yy * 2 + 10 * i, yy * 6 + 30, (xx * yy) % 97 + 60], -1)
        img = np.clip(base + rng.randint(0, 50, size=(h, w, 3)), 0, 255).astype(np.uint8)
        if "grey" in name:
            Image.fromarray(img[:, :, 0]).save(os.path.join(GOLDEN, name))
        else:
            Image.fromarray(img).save(os.path.join(GOLDEN, name))
    mean = rng.uniform(0, 255, size=(1, 3, 20, 18)).astype(np.float32)
    import caffe
    with open(os.path.join(GOLDEN, "mean.binaryproto"), "wb") as f:
        f.write(caffe.io.array_to_blobproto(mean).SerializeToString())


def window_file(blocks):
    """blocks: [(image name, [(label, overlap, x1, y1, x2, y2), ...]), ...] -> window file text."""
    out = []
    for k, (name, wins) in enumerate(blocks):
        h, w = SIZES[name]
        out += ["# %d" % k, name, "3", str(h), str(w), str(len(wins))]
        out += ["%d %g %d %d %d %d" % win for win in wins]
    return "\n".join(out) + "\n"


# name: (window-file blocks, window_data_param extras, transform_param, batches)
FG0 = ("img0.png", [(3, 0.8, 5, 7, 30, 25), (2, 0.4, 1, 1, 10, 10)])      # the 0.4 one is neither fg nor bg
BG1 = ("img1.png", [(5, 0.1, 30, 20, 34, 27)])                              # bg: label forced 0; enlarged
CASES = {
    "warp": ([FG0, BG1], 'batch_size: 4 fg_fraction: 0.5 bg_threshold: 0.3', 'crop_size: 12', 1),
    "warp_fg_rounding": ([FG0, BG1], 'batch_size: 10 fg_fraction: 0.7 bg_threshold: 0.3', 'crop_size: 5', 1),
    "warp_context_border": (
        [("img0.png", [(1, 0.9, 0, 1, 15, 12)]), ("img1.png", [(0, 0.2, 20, 14, 35, 29)])],
        'batch_size: 2 fg_fraction: 0.5 context_pad: 3', 'crop_size: 14', 1),
    "square": (
        [("img0.png", [(2, 0.7, 10, 3, 40, 12)]), ("img1.png", [(4, 0.0, 3, 2, 9, 27)])],
        'batch_size: 3 fg_fraction: 0.34 crop_mode: "square" cache_images: true', 'crop_size: 10', 1),
    "square_context": (
        [("img1.png", [(7, 0.6, 1, 20, 30, 28)]), ("img0.png", [(0, 0.3, 40, 0, 49, 30)])],
        'batch_size: 2 fg_fraction: 0.5 crop_mode: "square" context_pad: 2', 'crop_size: 11', 1),
    "meanfile": (
        [("img0.png", [(6, 0.95, 2, 30, 20, 39)]), ("img1.png", [(0, 0.0, 0, 0, 12, 9)])],
        'batch_size: 2 fg_fraction: 0.5 context_pad: 2',
        'crop_size: 14 mean_file: "%smean.binaryproto"' % REL, 1),
    "meanvalue_scale": (
        [("img1.png", [(2, 0.5, 4, 4, 25, 20)]), ("img2_grey.png", [(0, 0.1, 3, 5, 20, 25)])],
        'batch_size: 2 fg_fraction: 0.5 scale: 0.0171', 'crop_size: 9 mean_value: 104 mean_value: 117 '
        'mean_value: 123', 1),
    "grey_single_mean": (
        [("img2_grey.png", [(1, 0.75, 0, 0, 31, 27), (0, 0.05, 10, 10, 15, 15)])],
        'batch_size: 2 fg_fraction: 0.5 context_pad: 1', 'crop_size: 8 mean_value: 100', 1),
    "context_clamp": (   # rounding makes pad + resized size exceed crop_size: Caffe shrinks the size
        [("img0.png", [(4, 0.66, 1, 1, 9, 9), (0, 0.1, 44, 2, 49, 20)])],
        'batch_size: 2 fg_fraction: 0.5 context_pad: 2', 'crop_size: 9', 1),
    "mirror": (
        [("img0.png", [(1, 0.9, 0, 1, 15, 12)]), ("img1.png", [(0, 0.2, 20, 14, 35, 29)])],
        'batch_size: 4 fg_fraction: 0.5 context_pad: 3 crop_mode: "square"', 'crop_size: 12 mirror: true', 4),
}


def layer_text(case, wparams, tparams):
    return ('name: "win" type: "WindowData" top: "data" top: "label" '
            'window_data_param { source: "%s%s.txt" root_folder: "%s" %s } transform_param { %s }'
            % (REL, case, REL, wparams, tparams))


def main():
    import caffe
    caffe.set_mode_cpu()
    caffe.set_random_seed(17)
    os.makedirs(GOLDEN, exist_ok=True)
    os.chdir(ROOT)
    make_images()
    out = {}
    for case, (blocks, wparams, tparams, batches) in sorted(CASES.items()):
        with open(os.path.join(GOLDEN, case + ".txt"), "w") as f:
            f.write(window_file(blocks))
        text = layer_text(case, wparams, tparams)
        net_path = "/tmp/window_oracle_%d.prototxt" % os.getpid()
        with open(net_path, "w") as f:
            f.write('name: "w" layer { %s }\n' % text)
        net = caffe.Net(net_path, caffe.TEST)
        os.remove(net_path)
        out[case + "_layer"] = np.array(text)
        for k in range(batches):
            net.forward()
            out["%s_data_%d" % (case, k)] = net.blobs["data"].data.copy()
            out["%s_label_%d" % (case, k)] = net.blobs["label"].data.copy()
        print(case, net.blobs["data"].data.shape, net.blobs["label"].data.shape, file=sys.stderr)
        del net
    np.savez_compressed(os.path.join(GOLDEN, "window.npz"), **out)


if __name__ == "__main__":
    main()
