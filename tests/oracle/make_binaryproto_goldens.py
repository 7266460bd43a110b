"""Goldens for tests/test_protos_io.py: .binaryproto files written and read by real Caffe 1.0
(re-runnable; half a minute).

    python3 tests/oracle/make_binaryproto_goldens.py      # from /work/main, on the host (not inside caffe-run)

1. Inside the oracle (/work/shared/oracle/caffe-run): writes 5 small seeded RGB PNGs, builds an LMDB with
   Caffe's `convert_imageset`, runs `compute_image_mean` (tools/compute_image_mean.cpp) on it, and keeps
   mean.binaryproto (Caffe's bytes: legacy num/channels/height/width) with mean.npy, the array pycaffe's
   caffe.io.blobproto_to_array reads from it. It also draws seeded test arrays (arrays.npz: 0-D to 5-D,
   with -0, inf, nan, denormals) and stores pycaffe's caffe.io.array_to_blobproto bytes of each
   (pycaffe_<name>.binaryproto).
2. On the host: recaffe's protos.io.write_blobproto writes each array (``shape`` layout, and the legacy
   layout for arrays of at most 4 axes) and the mean into /tmp.
3. Inside the oracle: pycaffe reads every file recaffe wrote (caffe.io.blobproto_to_array), and the C++
   side reads recaffe's legacy mean file as the mean_file of an ImageData layer over the same PNGs
   (DataTransformer, src/caffe/data_transformer.cpp). read_by_caffe.json records, per file, the sha256
   of the bytes Caffe read, the shape it saw and whether its values equal the array bit for bit.
The test re-writes the same arrays and checks it produces exactly those bytes.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden", "binaryproto")
CAFFE_RUN = locations.CAFFE_RUN
H, W = 5, 7


def _arrays():
    rng = np.random.RandomState(7)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3.4e38, 1.5], np.float32)
    return {
        "a0": np.array(2.5, np.float32),
        "a1": special,
        "a2": rng.randn(3, 4).astype(np.float32),
        "a3": rng.randn(2, 3, 1).astype(np.float32),
        "a4": rng.randn(2, 3, 4, 5).astype(np.float32),
        "a5": rng.randn(1, 2, 3, 2, 2).astype(np.float32),
    }


def inner_make(work):
    import caffe
    from PIL import Image
    os.makedirs(GOLDEN, exist_ok=True)
    rng = np.random.RandomState(3)
    with open(os.path.join(work, "list.txt"), "w") as f:
        for i in range(5):
            img = rng.randint(0, 256, size=(H, W, 3)).astype(np.uint8)
            name = f"img{i}.png"
            Image.fromarray(img).save(os.path.join(work, name))
            f.write(f"{name} {i % 2}\n")
    subprocess.run(["convert_imageset", work + "/", os.path.join(work, "list.txt"), os.path.join(work, "lmdb")],
                   check=True, capture_output=True)
    mean_path = os.path.join(GOLDEN, "mean.binaryproto")
    subprocess.run(["compute_image_mean", os.path.join(work, "lmdb"), mean_path], check=True, capture_output=True)
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.ParseFromString(open(mean_path, "rb").read())
    np.save(os.path.join(GOLDEN, "mean.npy"), caffe.io.blobproto_to_array(blob))
    arrays = _arrays()
    np.savez(os.path.join(GOLDEN, "arrays.npz"), **arrays)
    for name, arr in arrays.items():
        with open(os.path.join(GOLDEN, f"pycaffe_{name}.binaryproto"), "wb") as f:
            f.write(caffe.io.array_to_blobproto(arr).SerializeToString())


def host_write(work):
    sys.path.insert(0, ROOT)
    from recaffe.protos.io import read_blobproto, write_blobproto
    arrays = dict(np.load(os.path.join(GOLDEN, "arrays.npz")))
    for name, arr in arrays.items():
        write_blobproto(arr, os.path.join(work, f"ours_{name}.binaryproto"))
        if arr.ndim <= 4:
            write_blobproto(arr, os.path.join(work, f"ours_legacy_{name}.binaryproto"), legacy=True)
    mean = read_blobproto(os.path.join(GOLDEN, "mean.binaryproto"))
    write_blobproto(mean, os.path.join(work, "ours_legacy_mean.binaryproto"), legacy=True)
    write_blobproto(mean, os.path.join(work, "ours_mean.binaryproto"))


def _imagedata_out(work, mean_file):
    import caffe
    net_txt = os.path.join(work, "net.prototxt")
    mean = f'mean_file: "{mean_file}"' if mean_file else ""
    with open(net_txt, "w") as f:
        f.write(f"""layer {{ name: "d" type: "ImageData" top: "data" top: "label"
  image_data_param {{ source: "{work}/list.txt" root_folder: "{work}/" batch_size: 5 }}
  transform_param {{ {mean} }} }}\n""")
    net = caffe.Net(net_txt, caffe.TEST)
    net.forward()
    return net.blobs["data"].data.copy()


def inner_check(work):
    import caffe
    arrays = dict(np.load(os.path.join(GOLDEN, "arrays.npz")))
    arrays["mean"] = np.load(os.path.join(GOLDEN, "mean.npy"))
    record = {}
    for fname in sorted(os.listdir(work)):
        if not fname.startswith("ours_"):
            continue
        name = fname[:-len(".binaryproto")].split("_")[-1]
        raw = open(os.path.join(work, fname), "rb").read()
        blob = caffe.proto.caffe_pb2.BlobProto()
        blob.ParseFromString(raw)
        seen = caffe.io.blobproto_to_array(blob).astype(np.float32)
        arr = arrays[name]
        record[fname] = {"sha256": hashlib.sha256(raw).hexdigest(), "caffe_shape": list(seen.shape),
                         "equal": bool(seen.size == arr.size and seen.tobytes() == arr.astype(np.float32).tobytes())}
    plain = _imagedata_out(work, None)
    with_mean = _imagedata_out(work, os.path.join(work, "ours_legacy_mean.binaryproto"))
    mean = arrays["mean"].astype(np.float32)
    record["cpp_imagedata_mean_file"] = {"equal": bool(np.array_equal(with_mean, plain - mean))}
    with open(os.path.join(GOLDEN, "read_by_caffe.json"), "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)


def host():
    work = tempfile.mkdtemp(prefix="bp_oracle_", dir="/tmp")
    try:
        me = "tests/oracle/make_binaryproto_goldens.py"
        subprocess.run([CAFFE_RUN, "python3", me, "--make", work], check=True, cwd=ROOT)
        host_write(work)
        subprocess.run([CAFFE_RUN, "python3", me, "--check", work], check=True, cwd=ROOT)
        print(open(os.path.join(GOLDEN, "read_by_caffe.json")).read())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make":
        inner_make(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--check":
        inner_check(sys.argv[2])
    else:
        host()
