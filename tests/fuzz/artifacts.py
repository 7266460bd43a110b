"""Small, valid artifacts for the bad-input suite: nets, weights in every format, solver states, an LMDB,
HDF5 data, a mean file, images and image lists. The fuzz cases mutate these; tests/test_reliability.py
breaks them in the specific ways issue #14 lists. Everything is written under one folder, built with
recaffe's own writers (the files round-trip: each test first shows the intact file is accepted).
"""
import os
import struct
import zlib

import numpy as np

#: a deploy net with every parameter kind the fuzz mutates (conv, BatchNorm statistics, InnerProduct)
SMALL_NET = """name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""

#: a training net fed by DummyData (no files needed)
TRAIN_NET = """name: "small_train"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 3 dim: 12 dim: 12 } shape { dim: 4 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""

SOLVER = """net: "{net}"
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 0.5
stepsize: 2
max_iter: {max_iter}
display: 0
snapshot_prefix: "{prefix}"
random_seed: 7
type: "{type}"
"""

IMAGE_SHAPE = (3, 16, 16)       # C x H x W of the LMDB's datums and the images
SEED_SHAPE = (3, 256, 256)      # the seed nets' data (their crops are 224 / 227)


def write(path, data):
    with open(path, "wb" if isinstance(data, (bytes, bytearray)) else "w") as f:
        f.write(data)
    return path


def images(n=4, seed=0, shape=IMAGE_SHAPE):
    """n uint8 C x H x W BGR images (smooth gradients plus noise: JPEG/PNG encode them faithfully)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    base = np.add.outer(np.arange(h), np.arange(w))[None] * 6 + np.arange(c)[:, None, None] * 40
    return [np.clip(base + rng.integers(0, 30, (c, h, w)) + 17 * i, 0, 255).astype(np.uint8) for i in range(n)]


def encode(chw, ext):
    from recaffe.netspec.data.image import encode_image
    return encode_image(chw, ext)


def png_header_only(width, height):
    """A PNG whose IHDR declares width x height, with one tiny compressed row (a decompression bomb's
    header: a few dozen bytes that would decode to width * height * 3 bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_lmdb(path, values):
    """An LMDB of the given serialized values under keys 00000000, 00000001, ..."""
    from recaffe.netspec.data.lmdb_io import LMDBWriter
    with LMDBWriter(path) as db:
        for i, v in enumerate(values):
            db.put("%08d" % i, v)
    return path


def raw_datums(n=6, shape=IMAGE_SHAPE):
    from recaffe.netspec.data.datum import raw_datum_bytes
    return [raw_datum_bytes(img, i % 3) for i, img in enumerate(images(n, shape=shape))]


def encoded_datums(n=6, ext="png"):
    from recaffe.netspec.data.datum import encoded_datum_bytes
    return [encoded_datum_bytes(encode(img, ext), i % 3) for i, img in enumerate(images(n))]


def data_net(source, batch=2, mean_file="", backend="LMDB", crop=0):
    tp = (f'mean_file: "{mean_file}" ' if mean_file else "") + (f"crop_size: {crop} " if crop else "")
    return (f'name: "d" layer {{ name: "data" type: "Data" top: "data" top: "label" '
            f'transform_param {{ {tp}}} data_param {{ source: "{source}" batch_size: {batch} backend: {backend} }} }}\n')


def image_data_net(list_file, batch=2, root=""):
    return (f'name: "i" layer {{ name: "data" type: "ImageData" top: "data" top: "label" '
            f'image_data_param {{ source: "{list_file}" batch_size: {batch} root_folder: "{root}" }} }}\n')


def hdf5_net(list_file, batch=2):
    return (f'name: "h" layer {{ name: "data" type: "HDF5Data" top: "data" top: "label" '
            f'hdf5_data_param {{ source: "{list_file}" batch_size: {batch} }} }}\n')


def write_hdf5_data(path, rows=6, data=None, label=None):
    import h5py
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=rng.standard_normal((rows, 3, 4, 4)).astype(np.float32) if data is None else data)
        f.create_dataset("label", data=np.arange(rows, dtype=np.float32) if label is None else label)
    return path


def build(folder):
    """Every artifact, written into ``folder``; returns {name: path}."""
    import torch
    from recaffe.netspec.data.meanfile import write_mean
    from recaffe.netspec.net.net import Net
    from recaffe.solver.solver import Solver
    from recaffe.solver.netsetup import atomic_torch_save  # noqa: F401 (the .pth state writer Solver uses)
    os.makedirs(folder, exist_ok=True)
    p = {k: os.path.join(folder, v) for k, v in {
        "net": "net.prototxt", "train_net": "train.prototxt", "solver": "solver.prototxt",
        "caffemodel": "w.caffemodel", "pth": "w.pth", "h5": "w.caffemodel.h5", "lmdb": "lmdb",
        "lmdb_enc": "lmdb_enc", "mean": "mean.binaryproto", "png": "img0.png", "jpg": "img1.jpg",
        "list": "list.txt", "hdf5": "data.h5", "hdf5_list": "h5list.txt", "window": "window.txt",
        "lmdb_seed": "lmdb256", "mean_seed": "mean256.binaryproto", "list_seed": "list256.txt"}.items()}
    write(p["net"], SMALL_NET)
    write(p["train_net"], TRAIN_NET)
    torch.manual_seed(0)
    net = Net(p["net"])
    for key in ("caffemodel", "pth", "h5"):
        net.save_weights(p[key])
    prefix = os.path.join(folder, "snap")
    write(p["solver"], SOLVER.format(net=p["train_net"], max_iter=2, prefix=prefix, type="SGD"))
    s = Solver(p["solver"])
    s.step(2)
    for fmt, ext in (("binaryproto", ""), ("hdf5", ".h5"), ("pth", ".pth")):
        model, state = s.snapshot(fmt)
        p["state" + ext] = state
        p["state_model" + ext] = model
    write_lmdb(p["lmdb"], raw_datums())
    write_lmdb(p["lmdb_enc"], encoded_datums())
    write_mean(np.full(IMAGE_SHAPE, 100.0, np.float32), p["mean"])
    imgs = images(2)
    write(p["png"], encode(imgs[0], "png"))
    write(p["jpg"], encode(imgs[1], "jpg"))
    write(p["list"], f"{p['png']} 0\n{p['jpg']} 1\n")
    write_hdf5_data(p["hdf5"])
    write(p["hdf5_list"], p["hdf5"] + "\n")
    # ImageNet-sized inputs for the seed nets (crop 227/224 of 256 x 256)
    write_lmdb(p["lmdb_seed"], raw_datums(4, SEED_SHAPE))
    write_mean(np.full(SEED_SHAPE, 110.0, np.float32), p["mean_seed"])
    big = images(2, shape=SEED_SHAPE)
    seed_imgs = [write(os.path.join(folder, f"seed{i}.jpg"), encode(im, "jpg")) for i, im in enumerate(big)]
    write(p["list_seed"], "".join(f"{f} {i}\n" for i, f in enumerate(seed_imgs)))
    c, h, w = IMAGE_SHAPE      # WindowData: '# index', path, channels, height, width, windows, then windows
    write(p["window"], f"# 0\n{p['png']}\n{c}\n{h}\n{w}\n2\n1 0.8 0 0 8 8\n0 0.1 4 4 12 12\n")
    return p
