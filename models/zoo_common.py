"""Pieces shared by the model-zoo generators (alexnet, vgg, googlenet, resnet, squeezenet, recipes).

* `DataSpec`: the TRAIN/TEST input pair of a train_val net (Data over LMDB/LevelDB or ImageData over a list
  file), with everything the published files vary: sources, batch sizes, crop, mean file or mean values,
  whether `mirror` is written, the ImageData resize. `train_val(name, data, build)` builds a net with it:
  a NetSpec cannot hold two layers with the same tops, so the TEST layer is built apart and spliced in
  right after the TRAIN one, where every BVLC file puts it.
* `deploy(name, dims, build, input_style)`: a net fed by `data` of shape `dims`, either through an Input
  layer (Caffe >= rc3 files) or through the legacy NetParameter `input`/`input_dim` fields that older
  files use (Caffe upgrades those to an Input layer named "input": src/caffe/util/upgrade_proto.cpp,
  UpgradeNetInput).
* parameter-multiplier presets (`LEARN` = weights 1/decay 1, bias 2/decay 0, as in every BVLC file).
"""
from recaffe.netspec.spec import NetSpec, layers as L, params as P, write
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

__all__ = ["LEARN", "LEARN_W", "mults", "DataSpec", "train_val", "deploy", "finish", "constant", "gaussian"]


def mults(weight=1, bias=2, weight_decay=1, bias_decay=0, bias_term=True):
    """The `param` list of a layer with weights and (unless bias_term=False) a bias."""
    out = [dict(lr_mult=weight, decay_mult=weight_decay)]
    if bias_term:
        out.append(dict(lr_mult=bias, decay_mult=bias_decay))
    return out


LEARN = mults()
LEARN_W = mults(bias_term=False)


def gaussian(std, mean=None):
    return dict(type="gaussian", std=std) if mean is None else dict(type="gaussian", mean=mean, std=std)


def constant(value=0):
    return dict(type="constant", value=value)


def finish(net, path):
    """Write `net` to `path` when one is given (returns the path), else return the NetParameter."""
    return write(net, path) if path is not None else net


class DataSpec:
    """The two input layers of a train_val net, both named "data" with tops data and label.

    kind: "Data" (source is a database, `backend` LMDB/LEVELDB) or "ImageData" (source is a list file of
    `path label` lines, images resized to new_size x new_size). mirror: True writes `mirror: true` on TRAIN
    and `mirror: false` on TEST (BVLC files), None writes neither. mean_file / mean_value: as in
    TransformationParameter (None leaves them out)."""

    def __init__(self, train_source, test_source, batch_size, test_batch_size, crop_size, kind="Data",
                 mean_file=None, mean_value=None, mirror=True, new_size=256, backend=P.Data.LMDB):
        if kind not in ("Data", "ImageData"):
            raise NetError(f"DataSpec: kind '{kind}' is not supported; valid: Data, ImageData")
        self.kind, self.sources = kind, {caffe_pb2.TRAIN: train_source, caffe_pb2.TEST: test_source}
        self.batch = {caffe_pb2.TRAIN: batch_size, caffe_pb2.TEST: test_batch_size}
        self.crop_size, self.mean_file, self.mean_value = crop_size, mean_file, mean_value
        self.mirror, self.new_size, self.backend = mirror, new_size, backend

    def add(self, n, phase):
        """Set n.data, n.label to the input layer of `phase` (caffe_pb2.TRAIN or TEST)."""
        transform = {}
        if self.mirror is not None:
            transform["mirror"] = self.mirror and phase == caffe_pb2.TRAIN
        transform["crop_size"] = self.crop_size
        if self.mean_file is not None:
            transform["mean_file"] = self.mean_file
        if self.mean_value is not None:
            transform["mean_value"] = list(self.mean_value)
        common = dict(name="data", include=dict(phase=phase), transform_param=transform, ntop=2,
                      source=self.sources[phase], batch_size=self.batch[phase])
        if self.kind == "Data":
            n.data, n.label = L.Data(backend=self.backend, **common)
        else:
            n.data, n.label = L.ImageData(new_height=self.new_size, new_width=self.new_size, **common)


def _named(name, layers):
    net = caffe_pb2.NetParameter()
    if name is not None:
        net.name = name
    net.layer.extend(layers)
    return net


def train_val(name, data, build):
    """The train_val NetParameter: TRAIN input, TEST input, then what `build(n)` adds on n.data/n.label
    (name None leaves the net unnamed, as some published files are)."""
    n = NetSpec()
    data.add(n, caffe_pb2.TRAIN)
    build(n)
    test = NetSpec()
    data.add(test, caffe_pb2.TEST)
    layers = list(n.to_proto().layer)
    return _named(name, layers[:1] + list(test.to_proto().layer) + layers[1:])


def deploy(name, dims, build, input_style="layer"):
    """A deploy NetParameter: `data` of shape `dims`, then what `build(n)` adds. input_style "layer" uses
    an Input layer named data; "fields" the legacy `input: "data"` + `input_dim` fields; "shape" the
    legacy `input: "data"` + `input_shape { dim }`."""
    if input_style not in ("layer", "fields", "shape"):
        raise NetError(f"deploy({name!r}): input_style '{input_style}' is not valid; valid: layer, fields, shape")
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=list(dims)))
    build(n)
    layers = list(n.to_proto().layer)
    if input_style == "layer":
        return _named(name, layers)
    net = _named(name, layers[1:])
    net.input.append("data")
    if input_style == "fields":
        net.input_dim.extend(dims)
    else:
        net.input_shape.add().dim.extend(dims)
    return net
