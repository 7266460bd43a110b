"""ParamSpec share_mode goldens from real Caffe (src/caffe/net.cpp: Net::AppendParam, ShareWeights), for
tests/test_share_mode.py. Re-run from /work/main:

    /work/shared/oracle/caffe-run python3 tests/oracle/make_share_goldens.py

Writes tests/golden/share/:
  permissive.prototxt  two PERMISSIVE sharings of equal counts and different shapes: InnerProduct 'ipB'
                       (weight 6x10) shares 'ipA''s 10x6 weight; InnerProduct 'ipC' (weight 8x6) shares
                       Convolution 'conv''s 4x3x2x2 kernel; two EuclideanLoss tops
  permissive.npz       inputs (x, y, img, v, t), every param blob Caffe holds after Net::Init with the
                       fillers replaced by np.random.RandomState(7) draws for the owners
                       ("p_<layer>_<i>", sharers as Caffe sees them), the tops after Forward
                       ("top_<name>"), the losses, and every param diff after one Backward
                       ("d_<layer>_<i>", sharers included: Caffe's shared diff memory)
  errors.json          Caffe's fatal messages for a STRICT shape mismatch and a PERMISSIVE count
                       mismatch (the check line of glog's output)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "share")

NET = """name: "permissive"
force_backward: true
layer { name: "in" type: "Input" top: "x" top: "y" top: "img" top: "v" top: "t"
  input_param { shape { dim: 2 dim: 6 } shape { dim: 2 dim: 6 } shape { dim: 2 dim: 3 dim: 4 dim: 4 }
                shape { dim: 2 dim: 6 } shape { dim: 2 dim: 8 } } }
layer { name: "ipA" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" } param { lr_mult: 2 }
  inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "TanH" bottom: "a" top: "a" }
layer { name: "ipB" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" share_mode: PERMISSIVE }
  inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "lossB" type: "EuclideanLoss" bottom: "b" bottom: "y" top: "lossB" }
layer { name: "conv" type: "Convolution" bottom: "img" top: "c" param { name: "k" }
  convolution_param { num_output: 4 kernel_size: 2 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "ipC" type: "InnerProduct" bottom: "v" top: "cc" param { name: "k" share_mode: PERMISSIVE }
  inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } } }
layer { name: "sum" type: "Eltwise" bottom: "cc" bottom: "t" top: "s" }
layer { name: "lossC" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "lossC" loss_weight: 0.5 }
layer { name: "silence" type: "Silence" bottom: "c" }
"""
OWNERS = ("ipA.0", "ipA.1", "ipB.1", "conv.0", "conv.1", "ipC.1")


def fatal_line(text):
    """The glog 'F...' line of a failed Net::Init, without its time stamp and thread id."""
    for line in text.splitlines():
        if line.startswith("F") and "] " in line:
            return line.split("] ", 1)[1]
    return text.strip().splitlines()[-1] if text.strip() else ""


def errors(tmp):
    ipb = ' share_mode: PERMISSIVE }\n  inner_product_param { num_output: 6'
    cases = {"strict_shape": NET.replace(ipb, ' }\n  inner_product_param { num_output: 6'),
             "permissive_count": NET.replace("num_output: 6 weight", "num_output: 5 weight")}
    out = {}
    for name, text in cases.items():
        path = os.path.join(tmp, name + ".prototxt")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([sys.executable, "-c", "import caffe; caffe.Net(%r, caffe.TRAIN)" % path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        assert r.returncode != 0, name
        out[name] = fatal_line(r.stderr)
    return out


def main():
    import caffe
    caffe.set_mode_cpu()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "permissive.prototxt")
    with open(path, "w") as f:
        f.write(NET)
    net = caffe.Net(path, caffe.TRAIN)
    rng = np.random.RandomState(7)
    for key in OWNERS:
        layer, i = key.split(".")
        blob = net.params[layer][int(i)]
        blob.data[...] = rng.standard_normal(blob.data.shape).astype(np.float32)
    g = {}
    for name in ("x", "y", "img", "v", "t"):
        g[name] = rng.standard_normal(net.blobs[name].data.shape).astype(np.float32)
        net.blobs[name].data[...] = g[name]
    for layer, blobs in net.params.items():
        for i, b in enumerate(blobs):
            g["p_%s_%d" % (layer, i)] = b.data.copy()
    net.forward()
    for name in ("a", "b", "cc", "s", "lossB", "lossC"):
        g["top_" + name] = net.blobs[name].data.copy()
    net.backward()
    for layer, blobs in net.params.items():
        for i, b in enumerate(blobs):
            g["d_%s_%d" % (layer, i)] = b.diff.copy()
    for name in ("x", "v"):
        g["dx_" + name] = net.blobs[name].diff.copy()
    np.savez(os.path.join(OUT, "permissive.npz"), **g)
    with tempfile.TemporaryDirectory() as tmp:
        msgs = errors(tmp)
    with open(os.path.join(OUT, "errors.json"), "w") as f:
        json.dump(msgs, f, indent=1, sort_keys=True)
    print("shapes:", {k: v.shape for k, v in g.items() if k.startswith("p_")})
    print(msgs)


if __name__ == "__main__":
    main()
