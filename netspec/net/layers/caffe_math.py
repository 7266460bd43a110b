"""Caffe-specific arithmetic of the vision and normalization layers, one small named function per rule.

Each function names the Caffe source file whose rule it reproduces; the layers (vision.py, pooling.py,
normalization.py) call these instead of re-deriving the formulas inline, so the traps (ceil-and-clip
pooled sizes, the AVE divisor, BatchNorm's scale factor) are written down exactly once.
"""
import torch

#: Caffe's -FLT_MAX: the value of a MAX pooling output whose window holds no input cell.
NEG_FLT_MAX = -3.4028234663852886e38


def conv_out_size(size, kernel, pad, stride, dilation):
    """Convolution output length (src/caffe/layers/conv_layer.cpp, compute_output_shape):
    (in + 2*pad - ext) / stride + 1 with ext = dilation*(kernel-1)+1 and C++ integer division
    (truncation toward zero)."""
    ext = dilation * (kernel - 1) + 1
    num = size + 2 * pad - ext
    return int(num / stride) + 1 if num < 0 else num // stride + 1


def deconv_out_size(size, kernel, pad, stride, dilation):
    """Deconvolution output length (src/caffe/layers/deconv_layer.cpp, compute_output_shape):
    stride*(in-1) + ext - 2*pad with ext = dilation*(kernel-1)+1."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad


def pooled_size(size, kernel, pad, stride, ceil=True, clip=False):
    """Pooled output length (src/caffe/layers/pooling_layer.cpp, Reshape).

    (in + 2*pad - kernel) / stride is rounded up (round_mode CEIL, the default) or down (FLOOR),
    plus 1. When the layer has any padding (``clip``: pad_h or pad_w non-zero, for both axes), a last
    window starting at or beyond in + pad (inside the bottom/right padding) is dropped. Without
    padding no such check is made, so CEIL can create a window that starts past the input."""
    num = size + 2 * pad - kernel
    q = -(-num // stride) if ceil else num // stride
    out = q + 1
    if clip and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool_windows(size, kernel, pad, stride, out):
    """Per-output (start, end) of the pooling windows along one axis, unclipped:
    start = o*stride - pad, end = start + kernel (pooling_layer.cpp)."""
    starts = torch.arange(out, dtype=torch.int64) * stride - pad
    return starts, starts + kernel


def ave_pool_divisor(size, kernel, pad, stride, out):
    """AVE pooling divisor along one axis (pooling_layer.cpp, Forward_cpu AVE): the window
    [start, min(start + kernel, in + pad)) counted with its padding cells, i.e. clipped only at the
    padded border. The 2-D divisor is the outer product of the two axes' divisors. Values can be <= 0
    for a CEIL window that starts past an unpadded input (Caffe then divides by that, giving NaN/-0)."""
    starts, ends = pool_windows(size, kernel, pad, stride, out)
    return torch.minimum(ends, torch.tensor(size + pad)) - starts


def pool_window_nonempty(size, kernel, pad, stride, out):
    """Whether each window along one axis holds an input cell once clipped to [0, in)
    (pooling_layer.cpp MAX: hstart = max(hstart, 0), hend = min(hstart + kernel, height))."""
    starts, ends = pool_windows(size, kernel, pad, stride, out)
    return torch.minimum(ends, torch.tensor(size)) > torch.clamp(starts, min=0)


def spp_level_geometry(height, width, level):
    """Kernel, stride and pad of SPP pyramid level ``level`` (src/caffe/layers/spp_layer.cpp,
    GetPoolingParam): bins = 2**level per side, kernel = ceil(in/bins), stride = kernel,
    pad = (kernel*bins - in + 1) / 2 (integer division). Returns ((kh, kw), (sh, sw), (ph, pw))."""
    bins = 2 ** level
    kh, kw = -(-height // bins), -(-width // bins)
    ph, pw = (kh * bins - height + 1) // 2, (kw * bins - width + 1) // 2
    return (kh, kw), (kh, kw), (ph, pw)


def lrn_across_scale(sq_window_mean, alpha, k):
    """LRN ACROSS_CHANNELS scale (src/caffe/layers/lrn_layer.cpp, CrossChannelForward_cpu):
    scale = k + alpha/n * sum of squares over the n-channel window (zero outside [0, C)); the caller
    passes the window mean (sum/n). The output is x * scale^(-beta)."""
    return sq_window_mean * alpha + k


def lrn_within_scale(sq_window_mean, alpha):
    """LRN WITHIN_CHANNEL scale (lrn_layer.cpp: square -> AVE pooling n x n, pad (n-1)/2, stride 1 ->
    Power(shift 1, scale alpha) -> product): the AVE divisor is always n*n (padding counts) and the
    constant is 1, so ``k`` is ignored: scale = 1 + alpha * mean over the zero-padded window."""
    return sq_window_mean * alpha + 1.0


def batchnorm_scale_factor(blob2):
    """Multiplier applied to BatchNorm's running sums (src/caffe/layers/batch_norm_layer.cpp,
    Forward_cpu with use_global_stats): 1/blob2[0], or 0 when blob2[0] == 0."""
    f = blob2.reshape(-1)[0]
    return torch.where(f == 0, torch.zeros_like(f), 1.0 / torch.where(f == 0, torch.ones_like(f), f))


def batchnorm_variance_correction(m):
    """Unbiasing factor for the running variance (batch_norm_layer.cpp): m/(m-1) with m the number
    of values per channel (N * spatial), 1 when m == 1."""
    return m / (m - 1) if m > 1 else 1.0
