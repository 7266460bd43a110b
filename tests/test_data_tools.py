"""tools/convert_imageset.py and tools/compute_image_mean.py against the real Caffe tools' output
(tests/golden/data/, made by tests/oracle/make_data_goldens.py): same keys, byte-identical Datums,
identical mean file; bad input; atomic output; both flag spellings."""
import os
import subprocess
import sys

import numpy as np
import pytest

from recaffe.netspec.data.convert import compute_image_mean, convert_imageset
from recaffe.netspec.data.datum import datum_to_array, parse_datum
from recaffe.netspec.data.lmdb_io import LMDBReader
from recaffe.netspec.data.meanfile import read_mean
from recaffe.netspec.data.sources import read_list
from recaffe.protos.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden", "data")
IMAGES = os.path.join(GOLDEN, "images") + "/"
LIST = os.path.join(IMAGES, "list.txt")


def records(path):
    return list(LMDBReader(path).items())


@pytest.mark.parametrize("golden,kw", [("lmdb_raw", {}), ("lmdb_enc", {"encoded": True}),
                                        ("lmdb_gray", {"gray": True}),
                                        ("lmdb_resized", {"resize_height": 13, "resize_width": 17}),
                                        ("lmdb_enc_resized", {"encoded": True, "resize_height": 13,
                                                              "resize_width": 17}),
                                        ("lmdb_gray_up", {"gray": True, "resize_height": 31, "resize_width": 12}),
                                        ("lmdb_png_gray", {"gray": True, "encode_type": "png"})])
@pytest.mark.parametrize("workers", [1, 2])
def test_convert_imageset_matches_caffe(tmp_path, golden, kw, workers):
    """Byte-identical to the real convert_imageset, in-line and with worker processes: OpenCV's
    decoding (colour, grey), INTER_LINEAR resize (shrinking, enlarging) and JPEG/PNG encoding."""
    out = str(tmp_path / "db")
    s = convert_imageset(IMAGES, LIST, out, workers=workers, progress=False, **kw)
    assert s["written"] == 8 and not s["skipped"]
    assert records(out) == records(os.path.join(GOLDEN, golden))    # keys and serialized Datums


def test_compute_image_mean_matches_caffe(tmp_path):
    mean, count = compute_image_mean(os.path.join(GOLDEN, "lmdb_raw"), workers=1)
    assert count == 8
    ref = read_mean(os.path.join(GOLDEN, "mean.binaryproto"))
    assert np.array_equal(mean, ref)
    out = tmp_path / "mean.binaryproto"
    subprocess.run([sys.executable, "-m", "recaffe.tools.compute_image_mean", os.path.join(GOLDEN, "lmdb_raw"), str(out),
                    "--npy", str(tmp_path / "mean.npy")], cwd=ROOT, check=True, capture_output=True)
    assert out.read_bytes() == open(os.path.join(GOLDEN, "mean.binaryproto"), "rb").read()
    assert np.array_equal(np.load(tmp_path / "mean.npy"), ref)


def assert_mean_is_float32_running_sum(tmp_path, arrs, serialize):
    """compute_image_mean over an LMDB of ``serialize(a, i)`` for each array equals Caffe's float32
    running sum of the arrays divided by their count."""
    from recaffe.netspec.data.lmdb_io import LMDBWriter
    with LMDBWriter(str(tmp_path / "db")) as w:
        for i, a in enumerate(arrs):
            w.put("%08d" % i, serialize(a, i))
    acc = np.zeros(arrs[0].shape, np.float32)
    for a in arrs:
        acc += a
    mean, count = compute_image_mean(str(tmp_path / "db"), workers=1)
    assert count == len(arrs) and np.array_equal(mean, acc / np.float32(len(arrs)))


def test_mean_of_float_datums_is_float32_running_sum(tmp_path):
    from recaffe.netspec.data.datum import array_to_datum
    rng = np.random.default_rng(3)
    arrs = [rng.integers(0, 256, (1, 2, 3)).astype(np.uint8) for _ in range(3)]
    arrs += [(rng.random((1, 2, 3)) * 1000).astype(np.float32) for _ in range(3)]
    assert_mean_is_float32_running_sum(tmp_path, arrs, lambda a, i: array_to_datum(a).SerializeToString())


def test_worker_arena_places_values_and_falls_back_to_bytes():
    """convert_imageset's shared-memory slots: values that fit are placed in the task's slot, the
    rest come back as bytes; both read back as the serialized datum."""
    from recaffe.netspec.data.convert import _Arena
    from recaffe.netspec.data.datum import raw_datum_bytes, raw_datum_parts
    arena = _Arena(2, 100)
    arrs = [np.full((1, 4, 5), i, np.uint8) for i in range(6)]        # 30-byte datums: 3 fit in a slot
    results = [(b"k%d" % i, raw_datum_parts(a, i), i, a.size) for i, a in enumerate(arrs)]
    results.insert(2, (b"bad", None, 9, "error"))
    out = arena.fill(1, results)
    assert [type(v) for _, v, _, _ in out] == [tuple, tuple, type(None), tuple, bytes, bytes, bytes]
    assert all(100 <= v[0] < 200 for _, v, _, _ in out if isinstance(v, tuple))   # inside slot 1
    got = [bytes(arena.value(v)) for _, v, _, _ in out if v is not None]
    assert got == [raw_datum_bytes(a, i) for i, a in enumerate(arrs)]
    arena.close()


def test_mean_of_many_uint8_datums_is_exact(tmp_path):
    """More datums than one uint16 block (257): the integer sums equal the float32 running sum."""
    from recaffe.netspec.data.datum import raw_datum_bytes
    arrs = np.random.default_rng(4).integers(0, 256, (600, 2, 3, 4), dtype=np.uint8)
    arrs[:300] = 255                                             # blocks at their largest sums
    assert_mean_is_float32_running_sum(tmp_path, arrs, raw_datum_bytes)


def test_resize_matches_caffe():
    """read_image with a resize (OpenCV's INTER_LINEAR) == Caffe's ImageData resize (19x23 -> 31x12,
    enlarging: the clamped border rows included), and resize() on an array the same."""
    from recaffe.netspec.data.image import read_image, resize
    with np.load(os.path.join(GOLDEN, "data_layers.npz")) as z:
        g = z["imagedata_resize_data_0"]
    for j, (path, _, _) in enumerate(read_list(LIST)):
        assert np.array_equal(read_image(IMAGES + path, "color", 31, 12), g[j])
        assert np.array_equal(resize(read_image(IMAGES + path, "color"), 31, 12), g[j])


def test_cli_flag_spellings(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    env = dict(os.environ, PYTHONPATH=ROOT)
    for db, flags in [(a, ["-resize_height=13", "-resize_width=17", "-exact_resize"]),   # accepted, no-op
                      (b, ["--resize_height", "13", "--resize_width", "17", "--workers", "1", "--quiet",
                           "--exact_resize=true"])]:
        r = subprocess.run([sys.executable, "-m", "recaffe.tools.convert_imageset", *flags, IMAGES, LIST, db], cwd=ROOT,
                           env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "wrote 8 images" in r.stderr
    assert records(a) == records(b) == records(os.path.join(GOLDEN, "lmdb_resized"))
    from recaffe.tools.convert_imageset import parser
    a = parser().parse_args(["-gray", "--nogray", "-shuffle=true", "--encode_type", "png", "--skip-bad",
                             "r/", "l", "d"])
    assert (a.gray, a.shuffle, a.encode_type, a.skip_bad, a.db) == (False, True, "png", True, "d")


def test_cli_errors_one_line_exit_2(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("img_0.png 1\nimg_1.jpg x\n")
    r = subprocess.run([sys.executable, "-m", "recaffe.tools.convert_imageset", IMAGES, str(lst), str(tmp_path / "db")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "list.txt:2: label 'x' is not an integer" in lines[0], r.stderr
    assert not (tmp_path / "db").exists()


def test_bad_image_is_an_error_and_leaves_nothing(tmp_path):
    lst = tmp_path / "list.txt"
    (tmp_path / "broken.png").write_bytes(b"not an image")
    lst.write_text("img_0.png 0\n%s/broken.png 1\nimg_2.png 2\n" % os.path.relpath(tmp_path, IMAGES))
    db = str(tmp_path / "db")
    with pytest.raises(DataError, match=r"list.txt:2: .*broken.png: cannot decode image"):
        convert_imageset(IMAGES, str(lst), db, workers=1, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["broken.png", "list.txt"]   # no db, no temp dir left
    s = convert_imageset(IMAGES, str(lst), db, workers=1, progress=False, skip_bad=True)
    assert s["written"] == 2 and len(s["skipped"]) == 1
    keys = [k for k, _ in records(db)]
    assert keys == [b"00000000_img_0.png", b"00000002_img_2.png"]   # the bad line's index is consumed
    with pytest.raises(DataError, match="already exists"):
        convert_imageset(IMAGES, str(lst), db, workers=1, progress=False, skip_bad=True)


def test_interrupt_leaves_nothing(tmp_path):
    import signal
    import time
    lst = tmp_path / "list.txt"
    names = [path for path, _, _ in read_list(LIST)]
    lst.write_text("".join(f"{names[i % 8]} {i}\n" for i in range(40000)))
    db = tmp_path / "db"
    p = subprocess.Popen([sys.executable, "-m", "recaffe.tools.convert_imageset", "--workers", "2",
                          "--resize_height", "64", "--resize_width", "64", IMAGES, str(lst), str(db)],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while not [n for n in os.listdir(tmp_path) if n.startswith(".db.tmp")] and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        workers = [int(pid) for pid in f.read().split()]
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=30)[1]
    assert p.returncode == 130, err
    assert len(workers) == 2, "the worker processes were running"
    assert sorted(os.listdir(tmp_path)) == ["list.txt"]   # neither the database nor its temp dir
    deadline = time.time() + 5
    while any(os.path.exists(f"/proc/{pid}") for pid in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)   # the workers are gone too


def test_bad_lines_skipped_and_counted(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("img_0.png 0\nnolabel\nimg_2.png 2.5\nimg_4.png 4\n")
    with pytest.raises(DataError, match=r"list.txt:2: expected '<image path> <integer label>'"):
        convert_imageset(IMAGES, str(lst), str(tmp_path / "db"), workers=1, progress=False)
    s = convert_imageset(IMAGES, str(lst), str(tmp_path / "db"), workers=1, progress=False, skip_bad=True)
    assert s["written"] == 2 and len(s["skipped"]) == 2
    assert [parse_datum(v).label for _, v in records(str(tmp_path / "db"))] == [0, 4]


def test_encode_type_reencodes_and_check_size(tmp_path):
    out = str(tmp_path / "png")
    convert_imageset(IMAGES, LIST, out, encode_type="png", workers=1, progress=False)
    raw = records(os.path.join(GOLDEN, "lmdb_raw"))
    for (k, v), (k2, v2) in zip(records(out), raw):
        d = parse_datum(v)
        assert k == k2 and d.encoded and d.data[:4] == b"\x89PNG"   # .png files verbatim, .jpg re-encoded
        assert np.array_equal(datum_to_array(d, "color"), datum_to_array(parse_datum(v2)))   # lossless
    from PIL import Image
    Image.new("RGB", (5, 4)).save(tmp_path / "small.png")
    lst = tmp_path / "list.txt"
    lst.write_text("img_0.png 0\n%s/small.png 1\n" % os.path.relpath(tmp_path, IMAGES))
    with pytest.raises(DataError, match=r"list.txt:2: .*datum of 60 bytes, the first had 1311"):
        convert_imageset(IMAGES, str(lst), str(tmp_path / "db"), check_size=True, workers=1, progress=False)
    assert not os.path.exists(tmp_path / "db")


def test_corrupt_and_missing_lmdb(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        compute_image_mean(str(tmp_path / "nope"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "data.mdb").write_bytes(b"\0garbage" * 512)
    with pytest.raises(DataError, match="cannot open LMDB"):
        LMDBReader(str(bad))
    import lmdb
    env = lmdb.open(str(tmp_path / "notdatum"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"00000000_x", b"\xff\xff\xff")
    env.close()
    with pytest.raises(DataError, match="key '00000000_x': not a serialized caffe Datum"):
        compute_image_mean(str(tmp_path / "notdatum"))


def test_shuffle_is_reproducible_with_seed(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    convert_imageset(IMAGES, LIST, a, shuffle=True, seed=5, workers=1, progress=False)
    convert_imageset(IMAGES, LIST, b, shuffle=True, seed=5, workers=1, progress=False)
    ra, ref = records(a), dict(records(os.path.join(GOLDEN, "lmdb_raw")))
    assert ra == records(b)
    # same datums, keys renumbered in the shuffled order
    by_path = {k.split(b"_", 1)[1]: v for k, v in ref.items()}
    assert sorted(k.split(b"_", 1)[1] for k, _ in ra) == sorted(by_path)
    assert all(by_path[k.split(b"_", 1)[1]] == v for k, v in ra)
    assert [int(k[:8]) for k, _ in ra] == list(range(8))


def test_encoded_datum_decodes_like_raw():
    raw = dict(records(os.path.join(GOLDEN, "lmdb_raw")))
    for k, v in records(os.path.join(GOLDEN, "lmdb_enc")):
        ours = datum_to_array(parse_datum(v), "color")
        assert np.array_equal(ours, datum_to_array(parse_datum(raw[k])))   # our decoding == Caffe's


from locations import CAFFE_RUN, oracle_skip_reason  # noqa: E402


@pytest.mark.skipif(oracle_skip_reason() is not None, reason=str(oracle_skip_reason()))
def test_caffe_reads_ours(tmp_path):
    """Real Caffe's Data layer and compute_image_mean read what our tools wrote."""
    folder = tmp_path / "ours"
    folder.mkdir()
    convert_imageset(IMAGES, LIST, str(folder / "lmdb"), workers=1, progress=False)
    convert_imageset(IMAGES, LIST, str(folder / "lmdb_enc"), encoded=True, workers=1, progress=False)
    from recaffe.netspec.data.meanfile import write_mean
    mean, _ = compute_image_mean(str(folder / "lmdb"), workers=1)
    write_mean(mean, str(folder / "mean.binaryproto"))
    subprocess.run([CAFFE_RUN, "python3", "tests/oracle/make_data_goldens.py", "--check-ours",
                    str(folder)], cwd=ROOT, check=True, capture_output=True)
    seen = np.load(folder / "caffe_read.npz")
    imgs = [datum_to_array(parse_datum(v)) for _, v in records(os.path.join(GOLDEN, "lmdb_raw"))]
    assert np.array_equal(seen["lmdb_data"], np.stack(imgs).astype(np.float32))
    assert seen["lmdb_label"].tolist() == [(i * 3) % 5 for i in range(8)]
    assert np.array_equal(seen["lmdb_enc_data"], np.stack(imgs).astype(np.float32))
    assert np.array_equal(seen["our_mean_read_by_caffe"][0], mean)
    assert np.array_equal(seen["lmdb_caffe_mean"][0], mean)
    assert np.array_equal(seen["lmdb_minus_our_mean"], np.stack(imgs).astype(np.float32) - mean)
