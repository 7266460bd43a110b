"""Goldens for recaffe.Detector (tests/test_facade_detector.py), written by real pycaffe's
caffe.Detector. Re-run from /work/main with

    /work/shared/oracle/caffe-run python3 tests/oracle/make_detector_goldens.py

It writes into tests/golden/detector/: net.prototxt (Input 2 x 3 x 10 x 10 -> Convolution -> ReLU ->
InnerProduct -> Softmax), net.caffemodel (weights RandomState(7).uniform(-0.5, 0.5) per blob, in net
order, saved by pycaffe), two RGB PNGs (RandomState(8) pixels, 23 x 31 and 17 x 20), and
detector.npz: for each configuration (plain: no preprocessing options; full: mean per channel,
raw_scale 255, channel_swap (2, 1, 0), input_scale 0.5) the predictions of detect_windows over
WINDOWS (5 windows: not a multiple of the batch of 2) and the windows themselves. pycaffe's
context_pad path slices with a float box, which Python 3's numpy refuses, so it is not covered here.
The oracle's skimage no longer takes the ``as_grey`` argument pycaffe's caffe.io.load_image passes,
so load_image is replaced by its definition on PIL (RGB, img_as_float: uint8 / 255, float32); the
detector code under test is pycaffe's own.
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "detector")
NET = """name: "det"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 10 dim: 10 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 stride: 2 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""
IMAGES = {"a.png": (23, 31), "b.png": (17, 20)}
WINDOWS = {"a.png": [(0, 0, 10, 12), (5, 7, 23, 31), (3, 2, 20, 9)], "b.png": [(1, 1, 16, 19), (4, 6, 9, 13)]}
CONFIGS = {"plain": {}, "full": dict(mean=np.array([0.4, 0.5, 0.6]) * 255, raw_scale=255.0,
                                     channel_swap=(2, 1, 0), input_scale=0.5)}


def main():
    import caffe
    from PIL import Image
    caffe.set_mode_cpu()

    def load_image(filename, color=True):
        im = np.asarray(Image.open(filename).convert("RGB" if color else "L"), dtype=np.float64) / 255.0
        return (im if color else im[:, :, None]).astype(np.float32)
    caffe.io.load_image = load_image
    os.makedirs(OUT, exist_ok=True)
    proto = os.path.join(OUT, "net.prototxt")
    with open(proto, "w") as f:
        f.write(NET)
    net = caffe.Net(proto, caffe.TEST)
    rng = np.random.RandomState(7)
    for name in net.params:
        for blob in net.params[name]:
            blob.data[...] = rng.uniform(-0.5, 0.5, blob.data.shape)
    weights = os.path.join(OUT, "net.caffemodel")
    net.save(weights)
    rng = np.random.RandomState(8)
    for fname, (h, w) in IMAGES.items():
        Image.fromarray(rng.randint(0, 256, (h, w, 3)).astype(np.uint8)).save(os.path.join(OUT, fname))
    rec = {}
    for tag, kw in CONFIGS.items():
        det = caffe.Detector(proto, weights, **kw)
        pairs = [(os.path.join(OUT, f), [np.array(w) for w in ws]) for f, ws in WINDOWS.items()]
        found = det.detect_windows(pairs)
        rec[tag + "_predictions"] = np.array([d["prediction"] for d in found])
        rec[tag + "_windows"] = np.array([d["window"] for d in found])
        rec[tag + "_files"] = np.array([os.path.basename(d["filename"]) for d in found])
    np.savez_compressed(os.path.join(OUT, "detector.npz"), **rec)
    print("wrote", OUT, sorted(rec))


if __name__ == "__main__":
    main()
