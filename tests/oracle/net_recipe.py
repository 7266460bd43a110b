"""Seed-reproducible weights and inputs for the whole-net parity goldens (pure numpy; runs both inside
real Caffe's Python 3.9/numpy 1.19 and in our environment, so the goldens need not store weights).

The recipe, for each layer with blobs in net order and each blob in Caffe's blob order, draws from ONE
``np.random.RandomState(seed)``:
  u = random_sample(min(n, POOL)) as float32, tiled with np.resize to the blob's n elements
  (blobs larger than POOL elements repeat a POOL-long stream; POOL is prime so rows do not align), then
    BatchNorm  blob 0 (mean) 0.2*(u-0.5); blob 1 (variance) 0.5+u; blob 2 (scale factor) 1
    Scale      blob 0 (gamma) 0.5+u; blob 1 (beta) 0.2*(u-0.5)
    PReLU      blob 0 (slopes) 0.5*u
    other      blobs of >= 2 axes: (2u-1)*sqrt(6/fan_in), fan_in = prod(shape[1:]) (He uniform);
               1-axis blobs (biases): 0.2*(u-0.5)
The input blob is drawn from RandomState(seed + 1): 2*random_sample(shape) - 1, float32.
"""
import numpy as np

POOL = 1000003


def blob_values(rng, layer_type, index, shape):
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape)) if shape else 1
    u = rng.random_sample(min(n, POOL)).astype(np.float32)
    if n > POOL:
        u = np.resize(u, n)
    half, fifth = np.float32(0.5), np.float32(0.2)
    if layer_type == "BatchNorm":
        v = [fifth * (u - half), half + u, np.ones_like(u)][index]
    elif layer_type == "Scale":
        v = (half + u) if index == 0 else fifth * (u - half)
    elif layer_type == "PReLU":
        v = half * u
    elif len(shape) >= 2:
        a = np.float32(np.sqrt(6.0 / int(np.prod(shape[1:]))))
        v = u  # (2u - 1) * a, in place: large blobs are hundreds of MB
        v *= np.float32(2)
        v -= np.float32(1)
        v *= a
    else:
        v = fifth * (u - half)
    return v.astype(np.float32, copy=False).reshape(shape)


def net_weights(seed, layers):
    """layers: [(layer type, [blob shapes])] in net order -> [[array per blob]] (same nesting)."""
    rng = np.random.RandomState(seed)
    return [[blob_values(rng, t, i, s) for i, s in enumerate(shapes)] for t, shapes in layers]


def net_input(seed, shape):
    rng = np.random.RandomState(seed + 1)
    return (np.float32(2) * rng.random_sample(tuple(shape)).astype(np.float32) - np.float32(1))


def checksum(weights):
    """Float64 sum of |w| over all blobs: the test checks it regenerated Caffe's weights."""
    return float(sum(np.abs(b).sum(dtype=np.float64) for blobs in weights for b in blobs))


#: the nets of the whole-net parity test: id -> (file in tests/golden/net/models, copied from
#: /work/shared/corpus, see SOURCES.tsv there; input shape; seed)
NETS = {
    "caffenet": ("caffenet.prototxt", (1, 3, 67, 67), 11),
    "alexnet": ("alexnet.prototxt", (1, 3, 67, 67), 12),
    "alexnet_v1": ("alexnet_v1.prototxt", (1, 3, 67, 67), 13),
    "googlenet": ("googlenet.prototxt", (1, 3, 224, 224), 14),
    "resnet50": ("resnet50.prototxt", (1, 3, 224, 224), 15),
    "squeezenet": ("squeezenet.prototxt", (1, 3, 67, 67), 16),
    "mobilenet": ("mobilenet.prototxt", (1, 3, 67, 67), 17),
    "vgg16_places365": ("vgg16_places365.prototxt", (1, 3, 200, 200), 18),
    "fcn8s": ("fcn8s.prototxt", (1, 3, 32, 32), 19),
    "lenet": ("lenet.prototxt", (2, 1, 28, 28), 20),
    "cifar10_quick": ("cifar10_quick.prototxt", (2, 3, 32, 32), 21),
    "cifar10_full": ("cifar10_full.prototxt", (2, 3, 32, 32), 22),
    "openpose_body25": ("openpose_body25.prototxt",
                        (1, 3, 16, 16), 23),
}


def set_input_shape(net_param, shape):
    """Point the net's single input (an Input layer or the legacy input_dim/input_shape) at ``shape``."""
    inputs = [l for l in net_param.layer if l.type == "Input"]
    if inputs:
        del inputs[0].input_param.shape[:]
        inputs[0].input_param.shape.add().dim.extend(shape)
    elif len(net_param.input_shape):
        del net_param.input_shape[0].dim[:]
        net_param.input_shape[0].dim.extend(shape)
    else:
        del net_param.input_dim[:]
        net_param.input_dim.extend(shape)
    return net_param
