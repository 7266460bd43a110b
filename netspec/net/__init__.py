"""recaffe.netspec.net: the net runtime. A NetParameter (prototxt, any phase/stage/level) becomes a
``torch.nn.Module`` whose layers reproduce Caffe's forward and backward.

  net.py     the Net module: blobs, forward (ForwardFromTo over net.steps)/backward, reshape, weights
  build.py   NetParameter -> filtered, checked layers and the schedule of public Steps (Net::Init)
  params.py  learnable blobs, sharing (param { name }), lr_mult/decay_mult
  fuse.py    the fusion plan (net.fusion): which steps run as one fused call
  kernels/   CPU fast paths (GEMM convolution, LRN passes, oneDNN linear, pooling layout, chain
             packing), one selector per op, behind one switch (kernels.enabled / disabled())
  fillers.py Caffe's weight fillers
  layers/    one class per Caffe layer type, one file per family, and the registry
"""
from .net import Net  # noqa: F401
from .build import Step  # noqa: F401
from .layers import Layer, register, layer_class, layer_type_list  # noqa: F401
