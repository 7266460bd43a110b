"""The README's main command, shrunk (--quick): every stage runs and writes what it promises."""
import os
import re

from recaffe.tools import demo, demo_data


def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    assert demo.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("curves.png", "target_end_to_end.caffemodel", "target_end_to_end.pth", "mean.binaryproto",
                 "source_train_lmdb/data.mdb", "target_deploy.prototxt"):
        assert os.path.getsize(tmp_path / name) > 0, name
    with open(tmp_path / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = re.findall(r"^\s+(predict only|classifier only|end to end|from scratch)\s+([01]\.\d{3})\s+([+-]\d\.\d{3})$",
                      out, re.M)
    assert [r[0] for r in rows] == ["predict only", "classifier only", "end to end", "from scratch"]
    acc = {r[0]: float(r[1]) for r in rows}
    for r in rows:   # the "vs scratch" column is the difference of the accuracies
        assert abs(float(r[2]) - (acc[r[0]] - acc["from scratch"])) < 1.5e-3
    # tools/classify printed a ranked top-3 with probabilities summing to at most 1
    probs = [float(p) for p in re.findall(r"^\s+\d\. (0\.\d{4}|1\.0000) target class \d$", out, re.M)]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-3


def test_demo_images_are_seeded():
    import numpy as np
    a = demo_data.render(np.random.RandomState(5), "target", 2)
    b = demo_data.render(np.random.RandomState(5), "target", 2)
    c = demo_data.render(np.random.RandomState(6), "target", 2)
    assert a.shape == (demo_data.SIZE, demo_data.SIZE, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
