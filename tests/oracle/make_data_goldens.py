"""Oracle for the data-input tests: runs inside real Caffe (Python 3.9 + pycaffe + the Caffe tools).

    /work/shared/oracle/caffe-run python3 tests/oracle/make_data_goldens.py          # (re)make goldens
    /work/shared/oracle/caffe-run python3 tests/oracle/make_data_goldens.py --check-ours DIR

Default mode (re-runnable, deterministic images): writes into tests/golden/data/
  images/*.png|jpg   small generated images (19x23 colour PNG and JPEG, one grey PNG) + list.txt
  lmdb_raw, lmdb_enc, lmdb_gray, lmdb_resized   made by the real convert_imageset (raw, --encoded,
                     --gray, --resize_height 13 --resize_width 17)
  lmdb_enc_resized, lmdb_gray_up, lmdb_png_gray   the same tool: --encoded with a resize (re-encoded
                     by OpenCV as JPEG/PNG after the file's extension), --gray enlarging to 31x12,
                     --encode_type png --gray (byte-level parity of our OpenCV-based decode/resize/encode)
  mean.binaryproto   made by the real compute_image_mean from lmdb_raw
  data_layers.npz    tops of real Caffe Data / ImageData layers (TEST phase) for several batches:
                     <case>_data_<k>, <case>_label_<k>, and <case>_layer (the LayerParameter text)

--check-ours DIR: DIR holds lmdb/ (and lmdb_enc/) and mean.binaryproto written by OUR tools from the
images above; Caffe's Data layer and compute_image_mean read them and the script writes what Caffe
saw to DIR/caffe_read.npz (tests/test_data_tools.py::test_caffe_reads_ours compares when present).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.normpath(os.path.join(HERE, "..", "golden", "data"))
H, W = 19, 23
N_BATCHES = 4


def make_images(folder):
    """8 images of 19x23: smooth gradients + noise (so JPEG is non-trivial), PNG and JPEG, one grey."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(1234)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    lines = []
    for i in range(8):
        base = np.stack([xx * (3 + i) + yy * 5, yy * (7 - i % 3) * 2 + 40 * i, (xx + yy) * 4 + 90], -1)
        img = np.clip(base + rng.randint(0, 60, size=(H, W, 3)), 0, 255).astype(np.uint8)
        if i == 5:
            name = "img_%d_grey.png" % i
            Image.fromarray(img[:, :, 1]).save(os.path.join(folder, name))
        elif i % 2 == 0:
            name = "img_%d.png" % i
            Image.fromarray(img).save(os.path.join(folder, name))
        else:
            name = "img_%d.jpg" % i
            Image.fromarray(img).save(os.path.join(folder, name), quality=90)
        lines.append("%s %d" % (name, (i * 3) % 5))
    with open(os.path.join(folder, "list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def forward_layer(layer_text, n_batches=N_BATCHES):
    import caffe
    caffe.set_mode_cpu()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write("layer {\n%s\n}\n" % layer_text)
    try:
        net = caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)
    out = []
    for _ in range(n_batches):
        net.forward()
        out.append((net.blobs["data"].data.copy(), net.blobs["label"].data.copy()))
    return out


def data_layer(source, batch, transform, backend="LMDB"):
    return ('name: "data" type: "Data" top: "data" top: "label"\n'
            'data_param { source: "%s" batch_size: %d backend: %s }\n'
            'transform_param { %s }' % (source, batch, backend, transform))


def make_goldens():
    img_dir = os.path.join(GOLDEN, "images")
    make_images(img_dir)
    lst = os.path.join(img_dir, "list.txt")
    for name, flags in [("lmdb_raw", []), ("lmdb_enc", ["--encoded"]), ("lmdb_gray", ["--gray"]),
                        ("lmdb_resized", ["--resize_height=13", "--resize_width=17"]),
                        ("lmdb_enc_resized", ["--encoded", "--resize_height=13", "--resize_width=17"]),
                        ("lmdb_gray_up", ["--gray", "--resize_height=31", "--resize_width=12"]),
                        ("lmdb_png_gray", ["--encode_type=png", "--gray"])]:
        shutil.rmtree(os.path.join(GOLDEN, name), ignore_errors=True)
        run("convert_imageset", *flags, img_dir + "/", lst, os.path.join(GOLDEN, name))
    mean = os.path.join(GOLDEN, "mean.binaryproto")
    run("compute_image_mean", os.path.join(GOLDEN, "lmdb_raw"), mean)
    rel = os.path.relpath(GOLDEN, os.getcwd())
    cases = {
        "raw_meanfile": data_layer(rel + "/lmdb_raw", 3, 'crop_size: 15 mean_file: "%s/mean.binaryproto" '
                                   'scale: 0.5' % rel),
        "enc_meanfile": data_layer(rel + "/lmdb_enc", 3, 'force_color: true crop_size: 15 '
                                   'mean_file: "%s/mean.binaryproto" scale: 0.5' % rel),
        "raw_meanvalue": data_layer(rel + "/lmdb_raw", 5, "crop_size: 16 mean_value: 104 mean_value: 117 "
                                    "mean_value: 123 scale: 0.017"),
        "raw_nocrop_single_mean": data_layer(rel + "/lmdb_raw", 3, "mean_value: 100"),
        "enc_force_gray": data_layer(rel + "/lmdb_enc", 4, "force_gray: true crop_size: 11"),
        "gray_raw": data_layer(rel + "/lmdb_gray", 3, "crop_size: 12 mean_value: 128 scale: 0.25"),
        "resized_raw": data_layer(rel + "/lmdb_resized", 8, ""),
        "imagedata_meanvalue": ('name: "data" type: "ImageData" top: "data" top: "label"\n'
                                'image_data_param { source: "%s/images/list.txt" root_folder: "%s/images/" '
                                'batch_size: 3 }\n'
                                'transform_param { crop_size: 14 mean_value: 10 mean_value: 20 '
                                'mean_value: 30 scale: 2 }' % (rel, rel)),
        "imagedata_gray": ('name: "data" type: "ImageData" top: "data" top: "label"\n'
                           'image_data_param { source: "%s/images/list.txt" root_folder: "%s/images/" '
                           'batch_size: 5 is_color: false }\ntransform_param { crop_size: 9 }' % (rel, rel)),
        "imagedata_resize": ('name: "data" type: "ImageData" top: "data" top: "label"\n'
                             'image_data_param { source: "%s/images/list.txt" root_folder: "%s/images/" '
                             'batch_size: 8 new_height: 31 new_width: 12 }' % (rel, rel)),
    }
    out = {}
    for cid, text in cases.items():
        out[cid + "_layer"] = np.array(text)
        for k, (d, l) in enumerate(forward_layer(text)):
            out["%s_data_%d" % (cid, k)] = d.astype(np.float32)
            out["%s_label_%d" % (cid, k)] = l.astype(np.float32)
    np.savez_compressed(os.path.join(GOLDEN, "data_layers.npz"), **out)
    for name in ("lmdb_raw", "lmdb_enc", "lmdb_gray", "lmdb_resized", "lmdb_enc_resized", "lmdb_gray_up",
                 "lmdb_png_gray"):   # lock files: made again by any reader
        lock = os.path.join(GOLDEN, name, "lock.mdb")
        if os.path.exists(lock):
            os.unlink(lock)


def check_ours(folder):
    """Let real Caffe read what our tools wrote; save what it saw next to it."""
    out = {}
    for name in ("lmdb", "lmdb_enc"):
        src = os.path.join(folder, name)
        if not os.path.isdir(src):
            continue
        tf = "force_color: true" if name == "lmdb_enc" else ""  # the grey PNG decodes to 1 channel
        for k, (d, l) in enumerate(forward_layer(data_layer(src, 8, tf), 1)):
            out["%s_data" % name], out["%s_label" % name] = d, l
        if name == "lmdb_enc":
            continue  # mixed 1/3-channel decodes: Caffe's compute_image_mean aborts on it (so do we)
        mean = os.path.join(folder, "caffe_mean_of_%s.binaryproto" % name)
        run("compute_image_mean", src, mean)
        import caffe
        from caffe.proto import caffe_pb2
        blob = caffe_pb2.BlobProto()
        with open(mean, "rb") as f:
            blob.ParseFromString(f.read())
        out["%s_caffe_mean" % name] = caffe.io.blobproto_to_array(blob)
    ours = os.path.join(folder, "mean.binaryproto")
    if os.path.exists(ours):  # our mean file, read by Caffe's own loader (as the transformer does)
        import caffe
        from caffe.proto import caffe_pb2
        blob = caffe_pb2.BlobProto()
        with open(ours, "rb") as f:
            blob.ParseFromString(f.read())
        out["our_mean_read_by_caffe"] = caffe.io.blobproto_to_array(blob)
        layer = data_layer(os.path.join(folder, "lmdb"), 8, 'mean_file: "%s"' % ours)
        out["lmdb_minus_our_mean"] = forward_layer(layer, 1)[0][0]
    np.savez(os.path.join(folder, "caffe_read.npz"), **out)
    print("wrote", os.path.join(folder, "caffe_read.npz"), sorted(out))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check-ours":
        check_ours(sys.argv[2])
    else:
        make_goldens()
