"""recaffe.netspec.net.kernels: every CPU fast path of the net runtime, behind one switch.

The layer families (layers/*.py) are written in plain torch ops with Caffe's semantics; they run on
any device and dtype, under autocast, torch.compile and export. Where those ops are slow on the CPU,
a layer asks this package's selector for its op; the selector returns a function to call instead, or
None, and the layer then runs its plain ops:

  =====================  =================================================  ==============
  selector               kernel                                             module
  =====================  =================================================  ==============
  conv_plan              convolution passes by matrix product (autograd)    conv.py
  lrn_plan               LRN one sample at a time / channels-last pooling   lrn.py
  linear_plan            oneDNN inner product; persistent weight gradient   linear.py
  pool_plan              pooling channels-last; MAX scatter backward        pool.py
  conv_chain_plan,       the fused inference chains' oneDNN calls and the   fused.py
  linear_chain_plan,     weight packing (chains are planned in ../fuse.py)
  pack_conv
  =====================  =================================================  ==============

THE switch: every selector first asks ``enabled(*tensors)`` (switch.py), which is False

* after ``set_enabled(False)`` (whole process) or inside ``with disabled():`` (this thread, nests);
  ``Net.fast_inference = False`` runs that net's forward inside ``disabled()``,
* while a graph is captured: ``torch.compile``/dynamo, ``torch.export``, ONNX export (either
  exporter), TorchScript tracing/scripting (``tracing()``),
* under CPU autocast (``torch.is_autocast_enabled("cpu")``),
* for any tensor that is not float32 on the CPU (CUDA, meta, bfloat16, float64 ... run plain ops).

So code that needs the plain ops (autocast, export, compile, other devices) gets them without
asking; ``with kernels.disabled():`` forces them anywhere else, e.g. to compare against. Outputs
agree with the plain ops to float32 rounding (tests/test_kernels.py); gradients are Caffe's either way.
Nothing outside this package calls private oneDNN ops or chooses a layout for speed.
"""
from .switch import disabled, enabled, set_enabled, switched_on, tracing  # noqa: F401
from .conv import conv_plan  # noqa: F401
from .lrn import lrn_plan  # noqa: F401
from .linear import linear_plan  # noqa: F401
from .pool import pool_plan  # noqa: F401
from .fused import conv_chain_plan, linear_chain_plan, pack_conv  # noqa: F401
