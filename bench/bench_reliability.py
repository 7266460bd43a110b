"""What the reliability checks cost (issue #14). Prints, does not assert.

1. Prototxt parse time per field at growing sizes (protobuf's pure-Python text parser): the ratio of
   the per-field times at the largest and smallest size shows the parse is linear (about 1.0).
2. Opening an LMDB: listing its keys through liblmdb's cursor (what recaffe did) against
   netspec.data.lmdb_check (every page checked, keys listed), per record.
3. Reading an image's size from its header (the pixel limit) against decoding it, per image.

    python bench/bench_reliability.py [--records 300000]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def parse(sizes=(20000, 80000, 320000)):
    from recaffe.protos.io import read_net
    per = []
    for n in sizes:
        text = 'input: "data"\ninput_shape {\n' + "  dim: 1\n" * n + "}\n"
        t = best(lambda: read_net(text), 1 if n > 100000 else 3)
        per.append(t / n)
        print(f"parse {n:>8} dim fields ({len(text) / 2 ** 20:5.1f} MiB): {t:6.2f} s, {t / n * 1e6:.2f} us/field")
    print(f"  per-field time, largest / smallest size: {per[-1] / per[0]:.2f} (1.0 = linear)")


def lmdb_open(records):
    import lmdb
    from recaffe.netspec.data import lmdb_check
    from recaffe.netspec.data.lmdb_io import LMDBWriter
    folder = tempfile.mkdtemp()
    db = os.path.join(folder, "db")
    try:
        with LMDBWriter(db) as w:
            for i in range(records):
                w.put(b"%08d_train/n01440764/n01440764_%d.JPEG" % (i, i), b"x" * (120 if i % 4 else 3000))
        env = lmdb.open(db, readonly=True, lock=False)

        def cursor():
            with env.begin() as txn:
                return list(txn.cursor().iternext(values=False))
        a = best(cursor)
        b = best(lambda: lmdb_check.read_keys(os.path.join(db, "data.mdb")))
        print(f"LMDB of {records} records: cursor listing {a / records * 1e6:.2f} us/record, checked listing "
              f"{b / records * 1e6:.2f} us/record; ratio {b / a:.1f}x "
              f"(ImageNet's 1.28M records: +{(b - a) / records * 1.28e6:.1f} s when a reader opens)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def image_header():
    import numpy as np
    from recaffe.netspec.data.image import cv2, image_size
    img = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
    for ext in (".jpg", ".png"):
        buf = cv2().imencode(ext, img)[1].tobytes()
        h = best(lambda: [image_size(buf) for _ in range(1000)]) / 1000
        d = best(lambda: [cv2().imdecode(np.frombuffer(buf, np.uint8), 1) for _ in range(100)]) / 100
        print(f"{ext} 256x256: header {h * 1e6:.1f} us, decode {d * 1e6:.0f} us: check = {h / d * 100:.2f}% of a decode")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=300000)
    a = p.parse_args()
    parse()
    lmdb_open(a.records)
    image_header()
