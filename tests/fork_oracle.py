"""OpenCV DNN as the reference for fork layers that no Caffe here runs (SSD, PSPNet, ShuffleNet, Fast
R-CNN, mobile nets): the same prototxt and the same .caffemodel (written by our Net.save_weights, with
seeded random weights) go to ``cv2.dnn.readNetFromCaffe``; its outputs are compared with ours.

    net, ref = run_both(PROTOTXT_TEXT, tmp_path, {"data": x}, ["top"])
"""
import os

import numpy as np
import torch

from recaffe.netspec.net.net import Net


def seed_weights(net, seed=0):
    """Seeded random weights that keep activations finite: He-scaled filters, small biases, BatchNorm
    statistics with variance in [0.5, 1.5), Scale / SegNet BN multipliers in [0.5, 1.5), Normalize
    scales around 20 (SSD's initial value)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in net.layers:
            blobs = list(layer.blobs)
            if layer.type == "BatchNorm":
                c = blobs[0].shape[0]
                blobs[0].copy_(torch.randn(c, generator=g) * 0.1)
                blobs[1].copy_(torch.rand(c, generator=g) + 0.5)
                blobs[2].fill_(1.0)
            elif layer.type in ("Scale", "BN"):
                for i, b in enumerate(blobs):
                    r = torch.rand(b.shape, generator=g) + 0.5 if i == 0 else torch.randn(b.shape, generator=g) * 0.1
                    b.copy_(r)
            elif layer.type == "Normalize":
                blobs[0].copy_(20 + torch.randn(blobs[0].shape, generator=g))
            else:
                for b in blobs:
                    if b.dim() > 1:
                        b.copy_(torch.randn(b.shape, generator=g) * (2.0 / b[0].numel()) ** 0.5)
                    else:
                        b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return net


def temper_ssd_confidences(net, factor=0.3):
    """Scale the SSD confidence heads (layers named *_mbox_conf) so that random weights give softmax
    scores well apart (saturated scores tie at float precision, and any two implementations may then
    order them differently)."""
    with torch.no_grad():
        for name, layer in zip(net.layer_names, net.layers):
            if name.endswith("_mbox_conf"):
                for b in layer.blobs:
                    b.mul_(factor)
    return net


def align_ties(ours, ref, tie=2e-6):
    """``ref`` detection rows [image, label, score, box...] reordered, within runs of scores closer than
    ``tie`` (near-equal scores that two implementations may order either way), to follow ``ours``
    (both sorted by score); other rows stay where they are."""
    ref = np.asarray(ref)
    out, start = ref.copy(), 0
    for i in range(1, len(ref) + 1):
        if i == len(ref) or abs(ref[i, 2] - ref[i - 1, 2]) >= tie:
            rows = list(range(start, i))
            for j in range(start, i):
                k = min(rows, key=lambda g: np.abs(ref[g] - ours[j]).sum()) if j < len(ours) else rows[0]
                rows.remove(k)
                out[j] = ref[k]
            start = i
    return out


def opencv_net(prototxt, caffemodel=None):
    import cv2
    if caffemodel is None:
        return cv2.dnn.readNetFromCaffe(prototxt)
    return cv2.dnn.readNetFromCaffe(prototxt, caffemodel)


def opencv_forward(prototxt, caffemodel, inputs, output):
    """OpenCV's value of blob ``output`` (one forward per requested blob: OpenCV's multi-output
    forward can hand back reused buffers)."""
    cv = opencv_net(prototxt, caffemodel)
    for name, value in inputs.items():
        cv.setInput(np.ascontiguousarray(value, dtype=np.float32), name)
    return cv.forward(output)


def run_both(text, tmp_path, inputs, outputs, seed=0, weights=True, phase="TEST", lenient=False):
    """Build ``text`` (prototxt text, or a path) with our Net, seed its weights, write them to a
    .caffemodel, run both nets on ``inputs`` and return (net, {output: (ours, opencv)})."""
    if os.path.exists(str(text)):
        proto = str(text)
    else:
        proto = str(tmp_path / "net.prototxt")
        with open(proto, "w") as f:
            f.write(text)
    net = Net(proto, phase=phase, lenient=lenient)
    model = None
    if weights and any(len(layer.blobs) for layer in net.layers):
        seed_weights(net, seed)
        model = str(tmp_path / "net.caffemodel")
        net.save_weights(model)
    with torch.no_grad():
        net(**{k: torch.as_tensor(v, dtype=torch.float32) for k, v in inputs.items()})
    out = {}
    for name in outputs:
        out[name] = (net.blobs[name].detach().numpy(), opencv_forward(proto, model, inputs, name))
    return net, out


def input_layer(name, shape):
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def make_layer(text, bottom_shapes, phase="TEST"):
    """One layer built from its prototxt text (fork fields read as protos.io reads them)."""
    from recaffe.netspec.net.layers import layer_class
    from recaffe.protos import io
    lp = io.read_net(f"layer {{ {text} }}").layer[0]
    layer = layer_class(lp.type, lp.name)(lp, bottom_shapes, phase)
    layer.apply_fillers()    # as the Net does right after building a layer
    return layer


def gradcheck_layer(layer, inputs, grad_inputs=None, top=0, atol=1e-6):
    """torch.autograd.gradcheck, in float64, of top ``top`` w.r.t. the inputs listed in ``grad_inputs``
    (default all) and the layer's blobs (through torch.func.functional_call)."""
    layer = layer.double()
    xs = [torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in inputs]
    grad_inputs = list(range(len(xs)) if grad_inputs is None else grad_inputs)
    names = [n for n, _ in layer.named_parameters()]
    args = [xs[i].clone().requires_grad_(True) for i in grad_inputs] + \
           [p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters()]

    def f(*a):
        ins = list(xs)
        for k, i in enumerate(grad_inputs):
            ins[i] = a[k]
        params = dict(zip(names, a[len(grad_inputs):]))
        return torch.func.functional_call(layer, params, tuple(ins))[top]
    return torch.autograd.gradcheck(f, args, atol=atol)
