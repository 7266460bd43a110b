"""recaffe.io against pycaffe's caffe.io: resize_image equals real pycaffe's (scikit-image resize:
anti-aliased down-scaling, zero borders, nearest rounding) on the golden cases; Transformer and
oversample on closed forms. Golden: tests/oracle/make_facade_goldens.py (resize.npz)."""
import os
import sys

import numpy as np
import pytest
from PIL import Image

from recaffe import io as cio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "oracle"))
import make_facade_goldens as recipe  # noqa: E402


@pytest.mark.parametrize("k", range(len(recipe.RESIZE_CASES)))
def test_resize_image_matches_pycaffe(k):
    shape, dims, order = recipe.RESIZE_CASES[k]
    with np.load(os.path.join(HERE, "golden", "facade", "resize.npz")) as z:
        im, want = z["in_%d" % k], z["out_%d" % k]
    np.testing.assert_array_equal(im, recipe.resize_inputs()[k][0])
    got = cio.resize_image(im, dims, interp_order=order)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * float(np.abs(want).max()))


def test_constant_image_and_load_image(tmp_path):
    out = cio.resize_image(np.full((3, 4, 3), 7, np.float32), (5, 6))
    assert out.shape == (5, 6, 3) and np.all(out == 7)
    pix = np.random.RandomState(0).randint(0, 256, (4, 5, 3)).astype(np.uint8)
    Image.fromarray(pix).save(tmp_path / "a.png")
    np.testing.assert_allclose(cio.load_image(str(tmp_path / "a.png")), pix / 255.0, rtol=1e-6)
    gray = cio.load_image(str(tmp_path / "a.png"), color=False)
    assert gray.shape == (4, 5, 1)


def test_transformer_round_trip_and_oversample():
    t = cio.Transformer({"data": (1, 3, 4, 4)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([1.0, 2.0, 3.0]))
    t.set_input_scale("data", 0.5)
    img = np.random.RandomState(1).rand(4, 4, 3).astype(np.float32)
    x = t.preprocess("data", img)
    np.testing.assert_allclose(x, (img.transpose(2, 0, 1)[::-1] * 255 - [[[1]], [[2]], [[3]]]) * 0.5, rtol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", x), img, rtol=1e-5, atol=1e-6)
    crops = cio.oversample([np.arange(5 * 5 * 1, dtype=np.float32).reshape(5, 5, 1)], (3, 3))
    assert crops.shape == (10, 3, 3, 1)
    assert crops[0, 0, 0, 0] == 0 and crops[3, 0, 0, 0] == 12 and crops[4, 0, 0, 0] == 6
    np.testing.assert_array_equal(crops[5], crops[0][:, ::-1])
    with pytest.raises(KeyError):
        t.preprocess("nope", img)
