"""tools/detect.py (recaffe.ssd_detect): MobileNet-SSD from the corpus with seeded weights on a
synthetic photo: the printed boxes (pixels) are OpenCV DNN's for the same preprocessing
(cv2.dnn.blobFromImage with MobileNet-SSD's mean 127.5 and scale 0.007843), and the PNG written has
them drawn."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from corpus import corpus_file, needs_corpus
from fork_oracle import opencv_forward, seed_weights, temper_ssd_confidences
from recaffe.netspec.net.net import Net
from recaffe.ssd_detect import VOC_LABELS, read_labels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = corpus_file("chuanqi305__MobileNet-SSD/deploy.prototxt")


def _detect(*args):
    return subprocess.run([sys.executable, "-m", "recaffe.tools.detect", *args], cwd=ROOT, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detect")
    net = temper_ssd_confidences(seed_weights(Net(MODEL), seed=3))
    weights = str(folder / "w.caffemodel")
    net.save_weights(weights)
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:320, 0:400]
    img = np.stack([xx * 0.5, yy * 0.7, (xx + yy) * 0.3], -1) + rng.integers(0, 40, (320, 400, 3))
    image = str(folder / "street.png")
    cv2.imwrite(image, np.clip(img, 0, 255).astype(np.uint8))
    return weights, image, folder


@needs_corpus
def test_detect_prints_opencvs_boxes_and_draws_them(seeded):
    weights, image, folder = seeded
    out = folder / "boxes.png"
    r = _detect(image, "-model", MODEL, "-weights", weights, "-labels", "voc", "-threshold", "0.3", "-out", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == image
    ours = [ln.split() for ln in lines[1:]]
    assert len(ours) > 5
    img = cv2.imread(image)
    blob = cv2.dnn.blobFromImage(img, 0.007843, (300, 300), (127.5, 127.5, 127.5))
    rows = opencv_forward(MODEL, weights, {"data": blob}, "detection_out")[0, 0]
    rows = rows[rows[:, 2] >= 0.3]
    px = rows[:, 3:] * [400, 320, 400, 320]
    ref = np.column_stack([rows[:, 1], rows[:, 2], px])
    got = np.array([[float(v) for v in f[:1] + f[2:]] for f in ours])
    assert [f[1] for f in ours] == [VOC_LABELS[int(f[0])] for f in ours]
    ref, got = (a[np.lexsort((a[:, 2], a[:, 0]))] for a in (ref, got))     # by label, then left edge
    np.testing.assert_array_equal(got[:, 0], ref[:, 0])
    np.testing.assert_allclose(got[:, 1], ref[:, 1], atol=1e-4)
    np.testing.assert_allclose(got[:, 2:], ref[:, 2:], rtol=1e-3, atol=0.06)
    labels = [int(f[0]) for f in ours]
    assert labels == sorted(labels)           # printed in the fork's order: grouped by label
    drawn = cv2.imread(str(out))
    assert drawn.shape == img.shape and (drawn != img).any()
    best = px[np.argmax(rows[:, 2])]
    x0, y0 = int(round(best[0])), int(round(best[1]))            # a box edge of the best detection
    if 2 < x0 < 398 and 20 < y0 < 318:
        assert (drawn[y0 + 5, x0] != img[y0 + 5, x0]).any()


@needs_corpus
def test_detect_out_dir_and_errors(seeded, tmp_path):
    weights, image, _ = seeded
    r = _detect(image, image, "-model", MODEL, "-weights", weights, "-threshold", "0.9",
                "-out_dir", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert os.path.exists(tmp_path / "o" / "street.png")
    assert r.stdout.splitlines().count(image) == 2
    r = _detect(str(tmp_path / "missing.jpg"), "-model", MODEL, "-weights", weights)
    assert r.returncode == 2 and "missing.jpg: No such file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    lenet = corpus_file("BVLC__caffe/examples__mnist__lenet.prototxt")
    r = _detect(image, "-model", lenet)
    assert r.returncode == 2 and "no DetectionOutput layer" in r.stderr


def test_label_files(tmp_path):
    lm = tmp_path / "labelmap.prototxt"
    lm.write_text('item { name: "none_of_the_above" label: 0 display_name: "background" }\n'
                  'item { name: "aeroplane" label: 1 display_name: "plane" }\nitem { name: "cat" label: 7 }\n')
    assert read_labels(str(lm)) == {0: "background", 1: "plane", 7: "cat"}
    names = tmp_path / "names.txt"
    names.write_text("bg\ncar\n\nperson\n")
    assert read_labels(str(names)) == {0: "bg", 1: "car", 3: "person"}
    assert read_labels("voc")[15] == "person"
