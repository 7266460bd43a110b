"""The resource-limit cases of issue #14, run by every fuzz run (slice and long) next to the random
cases: each must be a clean error, fast, in little memory. tests/test_reliability.py checks their
messages; here they are timed and measured in a capped child like every other case."""
import os

import numpy as np

from . import artifacts
from .cases import run_data, run_net

INPUT = 'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}\n'


def _dims(*d):
    return " ".join(f"dim: {x}" for x in d)


NETS = {
    "input 1x3x100000x100000": INPUT.format(dims=_dims(1, 3, 100000, 100000)),
    "num_output 2e9": INPUT.format(dims=_dims(1, 3, 8, 8)) + 'layer { name: "ip" type: "InnerProduct" bottom: "data" '
                                                             'top: "ip" inner_product_param { num_output: 2000000000 } }',
    "DummyData of terabytes": 'layer { name: "d" type: "DummyData" top: "d" dummy_data_param { shape { dim: 100000 '
                              'dim: 100000 dim: 1000 } } }',
    "pad 1e6": INPUT.format(dims=_dims(1, 3, 8, 8)) + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                                                      'convolution_param { num_output: 2 kernel_size: 3 pad: 1000000 } }',
    "Tile 2e9": INPUT.format(dims=_dims(1, 3, 8, 8)) + 'layer { name: "t" type: "Tile" bottom: "data" top: "t" '
                                                       'tile_param { axis: 1 tiles: 2000000000 } }',
    "kernel 2^32-1": INPUT.format(dims=_dims(1, 3, 8, 8)) + 'layer { name: "c" type: "Convolution" bottom: "data" '
                                                            'top: "c" convolution_param { num_output: 2 kernel_size: 4294967295 } }',
    "Input height 1e9 in a pooling net": INPUT.format(dims=_dims(1, 3, 1000000000, 224)) + (
        'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }'),
    "33 axes": INPUT.format(dims=_dims(*[1] * 33)),
    "BatchNorm eps -1": INPUT.format(dims=_dims(1, 3, 8, 8)) + ('layer { name: "bn" type: "BatchNorm" bottom: "data" '
                                                                'top: "bn" batch_norm_param { eps: -1 } }'),
    "activations beyond memory": INPUT.format(dims=_dims(1, 1, 40000, 50000)) + ''.join(
        f'layer {{ name: "r{i}" type: "Sigmoid" bottom: "{"data" if i == 0 else f"r{i - 1}"}" top: "r{i}" }}\n'
        for i in range(40)),
}


def _files_case(name, folder, art):
    """The file-based examples: (function for the child)."""
    import h5py
    if name == "7 million dim: entries":
        path = os.path.join(folder, "dims.prototxt")
        with open(path, "w") as f:
            f.write('layer { name: "data" type: "Input" top: "data" input_param { shape {\n' + "  dim: 1\n" * 7_000_000
                    + "} } }\n")
        return lambda: run_net(path)
    if name == "-model=/dev/zero":
        return lambda: run_net("/dev/zero")
    if name == "weights /dev/zero":
        return lambda: run_net(art["net"], weights="/dev/zero")
    if name == "FIFO prototxt":
        path = os.path.join(folder, "fifo.prototxt")
        os.mkfifo(path)
        return lambda: run_net(path)
    if name == "HDF5 dataset declared 1e6 x 1e6":
        h5 = os.path.join(folder, "huge.h5")
        with h5py.File(h5, "w") as f:
            f.create_dataset("data", shape=(1000000, 1000000), dtype="f4", chunks=(1, 1024))
            f.create_dataset("label", data=np.zeros(1000000, np.float32))
        lst = artifacts.write(os.path.join(folder, "l.txt"), h5 + "\n")
        return lambda: run_net(artifacts.hdf5_net(lst))
    if name == "HDF5 dataset of strings":
        h5 = artifacts.write_hdf5_data(os.path.join(folder, "s.h5"), data=np.array([b"a"] * 6, dtype="S1"))
        lst = artifacts.write(os.path.join(folder, "l.txt"), h5 + "\n")
        return lambda: run_net(artifacts.hdf5_net(lst))
    if name in ("30000x30000 PNG in an image list", "30000x30000 PNG to convert_imageset",
                "30000x30000 PNG to load_image"):
        big = artifacts.write(os.path.join(folder, "big.png"), artifacts.png_header_only(30000, 30000))
        lst = artifacts.write(os.path.join(folder, "list.txt"), f"{art['png']} 0\n{big} 1\n")
        if "load_image" in name:
            def run():
                from recaffe.io import load_image
                return load_image(big).shape
            return run
        if "convert" in name:
            def run():
                from recaffe.netspec.data.convert import convert_imageset
                convert_imageset("", lst, os.path.join(folder, "db"), workers=2, progress=False)
            return run
        return lambda: run_net(artifacts.image_data_net(lst, batch=2))
    if name in ("truncated LMDB", "LMDB with an empty datum", "LMDB with a zero-sized datum"):
        import shutil
        from recaffe.protos import caffe_pb2
        db = os.path.join(folder, "db")
        if name == "truncated LMDB":
            shutil.copytree(art["lmdb"], db)
            os.truncate(os.path.join(db, "data.mdb"), os.path.getsize(os.path.join(db, "data.mdb")) // 2)
        else:
            bad = b"" if "empty" in name else caffe_pb2.Datum(channels=3, height=0, width=4).SerializeToString()
            artifacts.write_lmdb(db, artifacts.raw_datums(2) + [bad])
        return lambda: run_data(db)
    raise KeyError(name)


FILES = ["7 million dim: entries", "-model=/dev/zero", "weights /dev/zero", "FIFO prototxt",
         "HDF5 dataset declared 1e6 x 1e6", "HDF5 dataset of strings", "30000x30000 PNG in an image list",
         "30000x30000 PNG to convert_imageset", "30000x30000 PNG to load_image", "truncated LMDB",
         "LMDB with an empty datum", "LMDB with a zero-sized datum"]
NAMES = list(NETS) + FILES


def make(name, folder, art):
    """(description, child function) of the named limit case; its input is written into ``folder``."""
    if name in NETS:
        path = artifacts.write(os.path.join(folder, "net.prototxt"), NETS[name])
        return f"limit: {name}", lambda: run_net(path)
    return f"limit: {name}", _files_case(name, folder, art)
