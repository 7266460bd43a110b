"""Weights goldens (.caffemodel reading and writing checked against real Caffe). Re-run with

    python tests/oracle/make_weights_goldens.py        # from /work/main, in OUR environment

which (1) writes /tmp/recaffe_weights/ours.caffemodel with our writer (netspec.Net.save_weights) for
tests/golden/weights/small.prototxt, its blobs set from np.random.RandomState(5).standard_normal, one
draw per blob of every layer with blobs in net order (a shared blob is drawn again for each user; the
last draw stays), then (2) re-runs itself inside real Caffe (/work/shared/oracle/caffe-run), which writes
into tests/golden/weights/:

  caffe_small.caffemodel + caffe_small.npz: a net Caffe built from small.prototxt, every blob set from
      np.random.RandomState(3).standard_normal in the same order, saved by Caffe's net.save (and
      net.save_hdf5: caffe_small.caffemodel.h5); npz "<layer>.<i>" = the values.
  v1_small.caffemodel + v1_small.npz: a V1-format file ('layers', legacy num/channels/height/width
      blobs, plus a layer 'gone' the net lacks) built with Caffe's own caffe_pb2; the npz holds what
      Caffe's net.copy_from read into small.prototxt for the layers the file has, and for 'fresh'
      (constant fillers, not in the file).
  ours_read_by_caffe.npz: sha256 and size of our file, and every blob Caffe read from it.
"""
import hashlib
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden", "weights")
PROTO = os.path.join(GOLDEN, "small.prototxt")
OURS = "/tmp/recaffe_weights/ours.caffemodel"


def set_blobs(layer_blobs, seed):
    """layer_blobs: [(layer name, [array-like setters])]; returns {"<layer>.<i>": values}."""
    rng = np.random.RandomState(seed)
    values = {}
    for name, blobs in layer_blobs:
        for i, (shape, setter) in enumerate(blobs):
            v = rng.standard_normal(shape).astype(np.float32)
            setter(v)
            values["%s.%d" % (name, i)] = v
    return values


def ours():
    import torch
    sys.path.insert(0, os.path.join(HERE, "..", ".."))
    from recaffe.netspec import Net
    net = Net(PROTO, phase="TEST")

    def setter(p):
        def f(v):
            with torch.no_grad():
                p.copy_(torch.from_numpy(v))
        return f
    set_blobs([(n, [(tuple(p.shape), setter(p)) for p in blobs]) for n, blobs in net.params.items()], 5)
    os.makedirs(os.path.dirname(OURS), exist_ok=True)
    net.save_weights(OURS)
    subprocess.check_call([locations.CAFFE_RUN, "python3", os.path.abspath(__file__)])


def caffe_side():
    import caffe
    from caffe.proto import caffe_pb2
    caffe.set_mode_cpu()

    def snapshot(net):
        return {"%s.%d" % (n, i): b.data.copy() for n, bl in net.params.items() for i, b in enumerate(bl)}

    # (a) Caffe writes
    net = caffe.Net(PROTO, caffe.TEST)

    def setter(b):
        def f(v):
            b.data[...] = v
        return f
    set_blobs([(n, [(b.data.shape, setter(b)) for b in bl]) for n, bl in net.params.items()], 3)
    net.save(os.path.join(GOLDEN, "caffe_small.caffemodel"))
    net.save_hdf5(os.path.join(GOLDEN, "caffe_small.caffemodel.h5"))
    np.savez(os.path.join(GOLDEN, "caffe_small.npz"), **snapshot(net))

    # (b) a V1 file with legacy 4-D blobs, read by Caffe
    rng = np.random.RandomState(4)
    v1 = caffe_pb2.NetParameter(name="weights_small_v1")

    def v1_layer(name, ltype, dims_list):
        l = v1.layers.add(name=name, type=ltype)
        for dims in dims_list:
            b = l.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
            b.data.extend(rng.standard_normal(int(np.prod(dims))).astype(np.float32).tolist())
    v1_layer("conv1", caffe_pb2.V1LayerParameter.CONVOLUTION, [(4, 3, 3, 3), (1, 1, 1, 4)])
    v1_layer("gone", caffe_pb2.V1LayerParameter.INNER_PRODUCT, [(1, 1, 7, 3), (1, 1, 1, 7)])
    v1_layer("ip1", caffe_pb2.V1LayerParameter.INNER_PRODUCT, [(1, 1, 5, 64), (1, 1, 1, 5)])
    v1_path = os.path.join(GOLDEN, "v1_small.caffemodel")
    with open(v1_path, "wb") as f:
        f.write(v1.SerializeToString())
    net = caffe.Net(PROTO, caffe.TEST)
    net.copy_from(v1_path)
    read = snapshot(net)
    keep = ("conv1.0", "conv1.1", "ip1.0", "ip1.1", "ip2.0", "fresh.0", "fresh.1")
    np.savez(os.path.join(GOLDEN, "v1_small.npz"), **{k: read[k] for k in keep})

    # (c) Caffe reads our file
    with open(OURS, "rb") as f:
        raw = f.read()
    net = caffe.Net(PROTO, caffe.TEST, weights=OURS)
    out = snapshot(net)
    out["sha256"] = np.array(hashlib.sha256(raw).hexdigest())
    out["size"] = np.array(len(raw))
    np.savez(os.path.join(GOLDEN, "ours_read_by_caffe.npz"), **out)
    print("wrote goldens; our file", len(raw), "bytes, sha256", out["sha256"])


if __name__ == "__main__":
    try:
        import caffe  # noqa: F401
    except ImportError:
        ours()
    else:
        caffe_side()
