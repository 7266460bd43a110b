"""Data-input benchmark: our convert_imageset / compute_image_mean / Data layer against real Caffe's.

    python bench/bench_data.py [--n 2000] [--batches 100] [--out bench/results_data.md]

Generates N JPEGs of mixed sizes (300-640 px a side, smooth colour fields + noise) under
/tmp/recaffe_bench_data (kept between runs), then, in one run:

1. convert_imageset, ours vs Caffe's (through /work/shared/oracle/caffe-run): raw datums resized to
   256x256, encoded datums resized to 256x256 (re-encoded), encoded datums stored verbatim;
   images/s, ratio, peak RSS (largest process of the tool's tree, from getrusage of the children);
2. compute_image_mean on the raw LMDB, ours vs Caffe's;
3. the Data layer, TRAIN phase, batch 50, crop 227, mirror, mean_file, ours (default worker count)
   vs Caffe's (pycaffe, its prefetch thread), on the raw and on the encoded LMDB: images/s after
   WARMUP (40) warm-up batches on both sides (steady state).

Also reported: CPU time per image (all processes / threads), which does not depend on how busy the
shared machine is, unlike images/s.

Prints a table and writes it with the date to --out. Not a test.
"""
import argparse
import datetime
import os
import resource
import shutil
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
WORK = "/tmp/recaffe_bench_data"
CAFFE_RUN = locations.CAFFE_RUN
#: Data-layer batches run before timing, on both sides: one pass over the 2000-image LMDB, so that the
#: rates are the steady state of a training run (mapped LMDB pages, warm batch buffers), not start-up
WARMUP = 40


def make_images(n):
    from PIL import Image
    img_dir = os.path.join(WORK, "imgs")
    marker = os.path.join(WORK, f"images_{n}.done")
    if os.path.exists(marker):
        return img_dir
    shutil.rmtree(img_dir, ignore_errors=True)
    os.makedirs(img_dir)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(300, 641, 2))
        small = rng.integers(0, 256, (max(2, h // 40), max(2, w // 40), 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))
        name = f"{i % 10}/img_{i:05d}.jpg"
        os.makedirs(os.path.join(img_dir, str(i % 10)), exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(os.path.join(img_dir, name), quality=90)
        lines.append(f"{name} {i % 10}")
    with open(os.path.join(WORK, "list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    open(marker, "w").close()
    return img_dir


_RSS = ("import resource,subprocess,sys,time;t=time.perf_counter();"
        "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL);"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(time.perf_counter()-t, r.ru_maxrss/1024, r.ru_utime+r.ru_stime)")


def timed(cmd, caffe=False):
    """(seconds, peak RSS MiB of the largest process in the command's tree, CPU seconds of the tree),
    measured by a small wrapper process (inside the Caffe root for Caffe's tools)."""
    wrapper = [CAFFE_RUN, "python3"] if caffe else [sys.executable]
    out = subprocess.run([*wrapper, "-c", _RSS, *cmd], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


CAFFE_DATA = r'''
import sys, time, resource, caffe
caffe.set_mode_cpu()
cpu = lambda: (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
src, mean, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
open("/tmp/recaffe_bench_data/caffe_data.prototxt", "w").write("""layer { name: "data" type: "Data"
 top: "data" top: "label" data_param { source: "%s" batch_size: 50 backend: LMDB }
 transform_param { crop_size: 227 mirror: true mean_file: "%s" } }""" % (src, mean))
net = caffe.Net("/tmp/recaffe_bench_data/caffe_data.prototxt", caffe.TRAIN)
for _ in range(int(sys.argv[4])): net.forward()
t, c = time.perf_counter(), cpu()
for _ in range(batches): net.forward()
print(batches * 50 / (time.perf_counter() - t), (cpu() - c) / (batches * 50))
'''


def caffe_data_rate(src, mean, batches):
    out = subprocess.run([CAFFE_RUN, "python3", "-c", CAFFE_DATA, src, mean, str(batches), str(WARMUP)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[-2]), float(out[-1])


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def our_data_rate(src, mean, batches):
    import torch
    from google.protobuf import text_format
    from recaffe.netspec.net.layers import layer_class
    from recaffe.protos import caffe_pb2
    lp = caffe_pb2.LayerParameter()
    text_format.Merge('name: "data" type: "Data" top: "data" top: "label" data_param { source: "%s" batch_size: 50 '
                      'backend: LMDB } transform_param { crop_size: 227 mirror: true mean_file: "%s" }'
                      % (src, mean), lp)
    torch.manual_seed(0)
    layer = layer_class("Data")(lp, [], "TRAIN")
    for _ in range(WARMUP):
        layer()
    t, c = time.perf_counter(), _cpu()
    for _ in range(batches):
        layer()
    rate = batches * 50 / (time.perf_counter() - t)
    cpu = (_cpu() - c) / (batches * 50)
    layer.close()
    return rate, cpu


def _cv_version():
    try:
        import cv2
        return cv2.__version__
    except ImportError:
        return "(not installed)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results_data.md"))
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    load0 = open("/proc/loadavg").read().split()[0]
    t_all = time.perf_counter()
    img_dir = make_images(args.n) + "/"
    lst = os.path.join(WORK, "list.txt")
    rows = []
    convs = [("raw, resize 256x256", ["--resize_height=256", "--resize_width=256"], "raw"),
             ("encoded, resize 256x256", ["--encoded", "--resize_height=256", "--resize_width=256"], "enc"),
             ("encoded, verbatim", ["--encoded"], "verb")]
    for what, flags, tag in convs:
        ours_db, caffe_db = os.path.join(WORK, f"ours_{tag}"), os.path.join(WORK, f"caffe_{tag}")
        for p in (ours_db, caffe_db):
            shutil.rmtree(p, ignore_errors=True)
        t_c, m_c, c_c = timed(["convert_imageset", *flags, img_dir, lst, caffe_db], caffe=True)
        t_o, m_o, c_o = timed([sys.executable, "-m", "recaffe.tools.convert_imageset", "--quiet", *flags, img_dir, lst,
                               ours_db])
        rows.append((f"convert_imageset ({what})", args.n / t_o, args.n / t_c, m_o, m_c, c_o / args.n, c_c / args.n))
    mean_o, mean_c = os.path.join(WORK, "ours_mean.binaryproto"), os.path.join(WORK, "caffe_mean.binaryproto")
    t_c, m_c, c_c = timed(["compute_image_mean", os.path.join(WORK, "caffe_raw"), mean_c], caffe=True)
    t_o, m_o, c_o = timed([sys.executable, "-m", "recaffe.tools.compute_image_mean", os.path.join(WORK, "ours_raw"), mean_o])
    rows.append(("compute_image_mean (raw LMDB)", args.n / t_o, args.n / t_c, m_o, m_c, c_o / args.n, c_c / args.n))
    for tag, what in [("raw", "raw datums"), ("enc", "encoded JPEG datums")]:
        r_c, c_c = caffe_data_rate(os.path.join(WORK, f"caffe_{tag}"), mean_c, args.batches)
        r_o, c_o = our_data_rate(os.path.join(WORK, f"ours_{tag}"), mean_o, args.batches)
        rows.append((f"Data layer TRAIN, batch 50, crop 227, mirror, mean_file ({what})", r_o, r_c, None, None,
                     c_o, c_c))
    total = time.perf_counter() - t_all
    load1 = open("/proc/loadavg").read().split()[0]
    lines = [f"# Data-input benchmark ({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC)", "",
             f"{args.n} generated JPEGs of 300-640 px a side; machine: {os.cpu_count()} cores (shared), torch "
             f"CPU. Ours uses its default worker count ({min(4, os.cpu_count() or 1)}: forked processes for "
             f"convert_imageset, threads for the Data layer); images are decoded, resized and encoded by OpenCV "
             f"{_cv_version()} (Caffe's datums byte for byte). Caffe 1.0 (Debian CPU build, OpenCV 4.5) runs "
             f"single-threaded tools and one prefetch thread. Peak RSS: largest process of the tool's process "
             f"tree. Script: bench/bench_data.py ({total:.0f} s).", "",
             f"Load average at the start: {load0}, at the end: {load1}; CPU ms/image = user+sys CPU time of all "
             f"processes and threads per image (much less dependent on how busy the machine is than images/s).",
             "",
             "| what | ours (images/s) | Caffe (images/s) | ratio | CPU ms/image ours / Caffe | "
             "peak RSS ours / Caffe (MiB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for what, o, c, mo, mc, co, cc in rows:
        mem = f"{mo:.0f} / {mc:.0f}" if mo is not None else "-"
        lines.append(f"| {what} | {o:.0f} | {c:.0f} | {o / c:.2f}x | {co * 1000:.1f} / {cc * 1000:.1f} | {mem} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
