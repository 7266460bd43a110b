"""Weights I/O benchmark: write and read a CaffeNet-sized .caffemodel (61M floats, ~244 MB).

    python bench/bench_weights.py [--keep]

Builds the CaffeNet deploy net at 227x227 (tests/golden/net/models/caffenet.prototxt), fills it with
random values, saves it with net.save_weights (timed), then in a fresh subprocess (so peak RSS is clean)
builds the net again and times net.load_weights, reporting the peak resident memory the load added
(ru_maxrss after minus RSS before) against the file size. Also times protobuf's own parser on the file,
for reference. Prints one line per measurement.
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PROTO = os.path.join(ROOT, "tests", "golden", "net", "models", "caffenet.prototxt")


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(path):
    import torch
    from recaffe.netspec import Net
    net = Net(PROTO)
    base = rss_mb()
    t = time.perf_counter()
    net.load_weights(path)
    dt = time.perf_counter() - t
    size = os.path.getsize(path) / 2 ** 20
    print(f"load .caffemodel: {dt:.2f} s for {size:.0f} MB ({size / dt:.0f} MB/s); peak RSS added by the load "
          f"{peak_mb() - base:.0f} MB = {(peak_mb() - base) / size:.2f}x file size (net params {size:.0f} MB "
          f"were allocated before)")
    from recaffe.protos import caffe_pb2
    t = time.perf_counter()
    with open(path, "rb") as f:
        msg = caffe_pb2.NetParameter.FromString(f.read())
    t1 = time.perf_counter()
    import numpy as np
    arrays = [np.array(b.data, dtype=np.float32) for l in msg.layer for b in l.blobs]
    t2 = time.perf_counter()
    print(f"reference: protobuf parse {t1 - t:.2f} s + repeated field -> numpy {t2 - t1:.2f} s "
          f"({len(arrays)} blobs)")
    del torch


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2])
    import torch
    from recaffe.netspec import Net
    net = Net(PROTO)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    fd, path = tempfile.mkstemp(suffix=".caffemodel")
    os.close(fd)
    try:
        t = time.perf_counter()
        net.save_weights(path)
        dt = time.perf_counter() - t
        size = os.path.getsize(path) / 2 ** 20
        print(f"save .caffemodel: {dt:.2f} s for {size:.0f} MB ({size / dt:.0f} MB/s)")
        subprocess.check_call([sys.executable, __file__, "--child", path])
        t = time.perf_counter()
        net.save_weights(path + ".pth")
        print(f"save .pth: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        net.load_weights(path + ".pth")
        print(f"load .pth: {time.perf_counter() - t:.2f} s")
    finally:
        for p in (path, path + ".pth"):
            if os.path.exists(p) and "--keep" not in sys.argv:
                os.unlink(p)


if __name__ == "__main__":
    main()
