"""recaffe.Detector (pycaffe's caffe.Detector) against real pycaffe's detections (goldens by
tests/oracle/make_detector_goldens.py), and the context-padded crop (pycaffe's own fails on Python 3)
against its definition worked out by hand."""
import os

import numpy as np
import pytest

import recaffe as caffe
from recaffe import io as caffe_io

G = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "detector")
WINDOWS = {"a.png": [(0, 0, 10, 12), (5, 7, 23, 31), (3, 2, 20, 9)], "b.png": [(1, 1, 16, 19), (4, 6, 9, 13)]}
CONFIGS = {"plain": {}, "full": dict(mean=np.array([0.4, 0.5, 0.6]) * 255, raw_scale=255.0,
                                     channel_swap=(2, 1, 0), input_scale=0.5)}


@pytest.fixture(scope="module")
def gold():
    with np.load(os.path.join(G, "detector.npz")) as z:
        return {k: z[k] for k in z.files}


def _detector(**kw):
    return caffe.Detector(os.path.join(G, "net.prototxt"), os.path.join(G, "net.caffemodel"), **kw)


@pytest.mark.parametrize("tag", sorted(CONFIGS))
def test_detect_windows_matches_pycaffe(gold, tag):
    det = _detector(**CONFIGS[tag])
    found = det.detect_windows([(os.path.join(G, f), [np.array(w) for w in ws]) for f, ws in WINDOWS.items()])
    assert [os.path.basename(d["filename"]) for d in found] == list(gold[tag + "_files"])
    np.testing.assert_array_equal(np.array([d["window"] for d in found]), gold[tag + "_windows"])
    np.testing.assert_allclose(np.array([d["prediction"] for d in found]), gold[tag + "_predictions"],
                               rtol=1e-5, atol=1e-6)


def test_context_crop_places_the_resized_context_on_the_mean():
    """Input 10 x 10, context_pad 1: scale 10/8. Window (4, 6, 11, 13) in a 16 x 20 image: half sizes
    4, centre (8, 10), box round(8 -+ 5, 10 -+ 5) = (3, 5, 13, 15) inside the image, full 11 x 11, so
    no padding and the 10 x 10 crop is resize_image(im[3:13, 5:15]) (clip 11 -> round(11 * 10/11))."""
    det = _detector(mean=np.array([10.0, 20.0, 30.0]), raw_scale=255.0, channel_swap=(2, 1, 0), context_pad=1)
    im = np.random.RandomState(3).uniform(0, 1, (16, 20, 3)).astype(np.float32)
    crop = det.crop(im, np.array([4, 6, 11, 13]))
    np.testing.assert_allclose(crop, caffe_io.resize_image(im[3:13, 5:15], (10, 10)), rtol=1e-6)
    # a window at the corner: the box leaves the image, the rest is the mean in raw input space
    corner = det.crop(im, np.array([0, 0, 7, 7]))
    # half 4, centre (4, 4), box round(4 -+ 5) = (-1, -1, 9, 9): full 11, pad round(1 * 10/11) = 1
    np.testing.assert_allclose(corner[0, :, :], np.tile(np.array([30.0, 20.0, 10.0]) / 255.0, (10, 1)), rtol=1e-6)
    np.testing.assert_allclose(corner[1:, 1:], caffe_io.resize_image(im[0:9, 0:9], (9, 9)), rtol=1e-6)
