"""recaffe.netspec.net: the net runtime. A NetParameter (prototxt, any phase/stage/level) becomes a
``torch.nn.Module`` whose layers reproduce Caffe's forward and backward.

  net.py     the Net module: blobs, the schedule of Steps, forward/backward, reshape, weights
  build.py   NetParameter -> filtered, checked layer list and the schedule (Caffe's Net::Init)
  params.py  learnable blobs, sharing (param { name }), lr_mult/decay_mult
  fuse.py    the fusion plan: which steps run as one fused inference call
  kernels.py CPU fast paths (GEMM convolution, LRN passes, oneDNN linear, packing), one switch
  fillers.py Caffe's weight fillers
  layers/    one class per Caffe layer type, one file per family, and the registry
"""
from .net import Net  # noqa: F401
from .layers import Layer, register, layer_class, layer_type_list  # noqa: F401
