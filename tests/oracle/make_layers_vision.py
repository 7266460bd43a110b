"""Golden cases for the vision layers (Convolution, Deconvolution, Pooling, SPP, Im2col, LRN, Crop),
computed by real Caffe.

Re-run from the repository root (idempotent; overwrites tests/golden/layers/vision_*.npz):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_layers_vision.py

Shapes are small but chosen where Caffe's rules bite: truncating conv output sizes, ceil-and-clip
pooled sizes, AVE divisors counting padding, MAX ties (small-integer inputs) with the mask top, pad
larger than kernel/2, an empty CEIL window. STOCHASTIC pooling is GPU-only in Caffe (the CPU build
aborts), so it is tested against its closed form in tests/test_layers_vision.py. The MAX case with an
empty window runs without backward: Caffe would write its gradient to index -1.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layer_oracle import case  # noqa: E402
from make_layers_common import partial_case  # noqa: E402


def gauss(seed, shape, scale=1.0):
    return (np.random.RandomState(seed).randn(*shape) * scale).astype(np.float32)


def ints(seed, shape, hi=4):
    """Small integers: many exact ties for MAX pooling."""
    return np.random.RandomState(seed).randint(0, hi, size=shape).astype(np.float32)


def lay(name, type_, param, bottoms=("x",), tops=("y",)):
    b = " ".join('bottom: "%s"' % x for x in bottoms)
    t = " ".join('top: "%s"' % x for x in tops)
    return 'name: "%s" type: "%s" %s %s %s' % (name, type_, b, t, param)


def conv(cid, param, x, type_="Convolution", seed=0, bottoms=("x",), tops=("y",), more=()):
    case(cid, lay("conv", type_, "convolution_param { %s }" % param, bottoms, tops), [x] + list(more), seed=seed)


def convolution():
    x = gauss(1, (2, 3, 6, 5))
    conv("vision_conv_basic", "num_output: 4 kernel_size: 3 pad: 1", x)
    conv("vision_conv_hw", "num_output: 2 kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1", x)
    conv("vision_conv_stride_pad", "num_output: 3 kernel_size: 3 stride: 2 pad: 2", gauss(2, (2, 2, 7, 6)))
    conv("vision_conv_dilation", "num_output: 2 kernel_size: 3 dilation: 2 pad: 2", gauss(3, (1, 2, 7, 7)))
    conv("vision_conv_per_axis", "num_output: 2 kernel_size: 3 kernel_size: 2 dilation: 2 dilation: 1 "
         "stride: 1 stride: 2 pad: 0 pad: 1", gauss(4, (2, 2, 7, 6)))
    conv("vision_conv_group", "num_output: 6 kernel_size: 3 group: 2 pad: 1", gauss(5, (2, 4, 5, 5)))
    conv("vision_conv_nobias", "num_output: 3 kernel_size: 2 bias_term: false", x)
    conv("vision_conv_1x1", "num_output: 5 kernel_size: 1", x)
    conv("vision_conv_axis", "num_output: 2 kernel_size: 3 axis: 2 pad: 1", gauss(6, (2, 2, 3, 4, 4)))
    conv("vision_conv_3d", "num_output: 2 kernel_size: 3 pad: 1 stride: 2", gauss(7, (1, 2, 4, 5, 5)))
    conv("vision_conv_1d", "num_output: 3 kernel_size: 3 stride: 2", gauss(8, (2, 2, 9)))
    # (4 - 5) / 2 + 1 = 1 with C++ truncation: the window reads zeros past the input
    conv("vision_conv_short", "num_output: 2 kernel_size: 5 stride: 2", gauss(9, (1, 2, 4, 6)))
    conv("vision_conv_force_nd", "num_output: 2 kernel_size: 3 pad_h: 2 stride: 2 force_nd_im2col: true",
         gauss(12, (2, 2, 5, 6)))
    conv("vision_conv_2bottoms", "num_output: 3 kernel_size: 3", gauss(10, (2, 2, 4, 4)),
         bottoms=("x", "x2"), tops=("y", "y2"), more=[gauss(11, (2, 2, 4, 4))])


def deconvolution():
    d = "Deconvolution"
    conv("vision_deconv_basic", "num_output: 2 kernel_size: 4 stride: 2 pad: 1", gauss(20, (2, 3, 3, 4)), d)
    conv("vision_deconv_group", "num_output: 4 kernel_size: 3 stride: 2 group: 2", gauss(21, (2, 6, 3, 3)), d)
    conv("vision_deconv_dilation", "num_output: 2 kernel_size: 3 dilation: 2 pad: 1", gauss(22, (1, 2, 4, 4)), d)
    conv("vision_deconv_hw", "num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1",
         gauss(23, (2, 2, 3, 3)), d)
    conv("vision_deconv_3d", "num_output: 2 kernel_size: 2 stride: 2 pad: 1", gauss(25, (1, 2, 3, 3, 4)), d)
    conv("vision_deconv_nobias", "num_output: 3 kernel_size: 2 stride: 2 bias_term: false",
         gauss(24, (1, 2, 3, 3)), d)


def pool(cid, param, x, tops=("y",), seed=0):
    case(cid, lay("pool", "Pooling", "pooling_param { %s }" % param, tops=tops), [x], seed=seed)


def pooling():
    t2 = ("y", "mask")
    pool("vision_pool_max_ceil", "pool: MAX kernel_size: 3 stride: 2", gauss(30, (2, 2, 7, 6)))
    pool("vision_pool_max_mask", "pool: MAX kernel_size: 3 stride: 2", ints(31, (2, 2, 7, 6)), t2)
    pool("vision_pool_max_pad", "pool: MAX kernel_size: 3 stride: 2 pad: 1", ints(32, (2, 2, 6, 7)), t2)
    pool("vision_pool_max_clip", "pool: MAX kernel_size: 2 stride: 2 pad: 1", ints(33, (2, 2, 5, 5)), t2)
    pool("vision_pool_max_bigpad", "pool: MAX kernel_size: 3 stride: 2 pad: 2", ints(34, (2, 2, 6, 5)), t2)
    pool("vision_pool_max_hw", "pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0",
         ints(35, (2, 2, 5, 7)), t2)
    pool("vision_pool_max_floor", "pool: MAX kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR",
         ints(36, (2, 2, 6, 7)), t2)
    pool("vision_pool_max_stride_gt_kernel", "pool: MAX kernel_size: 2 stride: 3", gauss(37, (2, 2, 7, 8)), t2)
    pool("vision_pool_max_neg", "pool: MAX kernel_size: 3 stride: 2 pad: 1", -np.abs(gauss(38, (1, 2, 5, 5))), t2)
    pool("vision_pool_ave_ceil", "pool: AVE kernel_size: 3 stride: 2", gauss(40, (2, 2, 7, 6)))
    pool("vision_pool_ave_pad", "pool: AVE kernel_size: 3 stride: 2 pad: 1", gauss(41, (2, 2, 6, 7)))
    pool("vision_pool_ave_clip", "pool: AVE kernel_size: 2 stride: 2 pad: 1", gauss(42, (2, 2, 5, 5)))
    pool("vision_pool_ave_bigpad", "pool: AVE kernel_size: 3 stride: 2 pad: 2", gauss(43, (2, 2, 6, 5)))
    pool("vision_pool_ave_hw", "pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 2",
         gauss(44, (2, 2, 5, 6)))
    pool("vision_pool_ave_floor", "pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR",
         gauss(45, (2, 2, 6, 7)))
    pool("vision_pool_ave_floor_nopad", "pool: AVE kernel_size: 3 stride: 2 round_mode: FLOOR",
         gauss(46, (2, 2, 7, 6)))
    # CEIL without padding: the last window starts past the input (divisor 0 -> NaN, -1 -> -0)
    pool("vision_pool_ave_empty", "pool: AVE kernel_size: 1 stride: 2", gauss(47, (1, 2, 4, 5)))
    partial_case("vision_pool_max_empty", lay("pool", "Pooling", "pooling_param { pool: MAX kernel_size: 1 "
                                              "stride: 3 }", tops=t2), [gauss(48, (1, 2, 5, 5))])
    # kernel larger than the input: (2 - 3) / 2 rounds up to 0, one window hanging past the input
    pool("vision_pool_max_bigkernel", "pool: MAX kernel_size: 3 stride: 2", gauss(52, (1, 2, 2, 3)), t2)
    pool("vision_pool_ave_bigkernel", "pool: AVE kernel_size: 3 stride: 2", gauss(53, (1, 2, 2, 3)))
    pool("vision_pool_global_max", "pool: MAX global_pooling: true", ints(50, (2, 3, 5, 4)), t2)
    pool("vision_pool_global_ave", "pool: AVE global_pooling: true", gauss(51, (2, 3, 5, 4)))


def spp_im2col():
    x = gauss(60, (2, 2, 7, 9))
    case("vision_spp_max", lay("spp", "SPP", "spp_param { pyramid_height: 3 pool: MAX }"), [x])
    case("vision_spp_ave", lay("spp", "SPP", "spp_param { pyramid_height: 3 pool: AVE }"), [x])
    case("vision_spp_single", lay("spp", "SPP", "spp_param { pyramid_height: 1 pool: MAX }"), [x])
    case("vision_spp_two", lay("spp", "SPP", "spp_param { pyramid_height: 2 pool: AVE }"), [gauss(61, (1, 3, 4, 6))])
    case("vision_im2col", lay("i2c", "Im2col", "convolution_param { kernel_size: 3 pad: 1 stride: 2 }"),
         [gauss(62, (2, 2, 5, 6))])
    case("vision_im2col_dil", lay("i2c", "Im2col", "convolution_param { kernel_h: 2 kernel_w: 3 dilation: 2 }"),
         [gauss(63, (1, 2, 5, 6))])


def lrn_crop():
    x = gauss(70, (2, 7, 3, 3))
    case("vision_lrn_across", lay("lrn", "LRN", ""), [x])
    case("vision_lrn_across_params", lay("lrn", "LRN", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 k: 2 }"), [x])
    case("vision_lrn_across_1", lay("lrn", "LRN", "lrn_param { local_size: 1 alpha: 2 beta: 1.5 k: 0.5 }"), [x])
    case("vision_lrn_across_wide", lay("lrn", "LRN", "lrn_param { local_size: 9 alpha: 3 beta: 0.8 k: 1.5 }"),
         [gauss(76, (1, 4, 2, 3))])
    w = gauss(71, (2, 2, 5, 4))
    case("vision_lrn_within", lay("lrn", "LRN", "lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 2 "
                                                "beta: 0.75 k: 5 }"), [w])
    case("vision_lrn_within5", lay("lrn", "LRN", "lrn_param { norm_region: WITHIN_CHANNEL local_size: 5 "
                                                 "alpha: 0.3 beta: 0.5 }"), [w])
    data, ref = gauss(72, (2, 3, 7, 6)), gauss(73, (1, 1, 4, 3))
    crop = lambda p: lay("crop", "Crop", p, bottoms=("x", "r"))  # noqa: E731
    case("vision_crop_default", crop(""), [data, ref])
    case("vision_crop_offset", crop("crop_param { offset: 2 }"), [data, ref])
    case("vision_crop_per_axis", crop("crop_param { axis: 1 offset: 1 offset: 2 offset: 3 }"),
         [data, gauss(74, (1, 2, 3, 2))])
    case("vision_crop_neg_axis", crop("crop_param { axis: -1 offset: 3 }"), [data, gauss(75, (1, 1, 1, 2))])


def main():
    convolution()
    deconvolution()
    pooling()
    spp_im2col()
    lrn_crop()


if __name__ == "__main__":
    main()
