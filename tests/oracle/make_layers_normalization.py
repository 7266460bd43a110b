"""Golden cases for the normalization layers (BatchNorm, MVN), computed by real Caffe.

Re-run from the repository root (idempotent; overwrites tests/golden/layers/norm_*.npz):

    /work/shared/oracle/caffe-run python3 tests/oracle/make_layers_normalization.py

BatchNorm's blobs are given explicitly (running sums with a positive variance sum and scale factor,
or a zero scale factor), so that TEST uses meaningful global statistics and TRAIN's moving-average
update (param_after_*) starts from non-trivial values.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layer_oracle import case  # noqa: E402


def gauss(seed, shape, scale=1.0, shift=0.0):
    return (np.random.RandomState(seed).randn(*shape) * scale + shift).astype(np.float32)


def bn_blobs(seed, c, factor):
    r = np.random.RandomState(seed)
    return [(r.randn(c) * factor).astype(np.float32), (r.rand(c) * 2 * factor + 0.1).astype(np.float32),
            np.array([factor], np.float32)]


def bn(param=""):
    return 'name: "bn" type: "BatchNorm" bottom: "x" top: "y" %s' % param


def batchnorm():
    x = gauss(1, (2, 3, 4, 3), 2.0, 0.5)
    case("norm_bn_test", bn(), [x], params="given", param_values=bn_blobs(2, 3, 2.5))
    case("norm_bn_test_zero_factor", bn(), [x], params="given", param_values=bn_blobs(3, 3, 0.0))
    case("norm_bn_test_eps", bn("batch_norm_param { eps: 0.01 }"), [x], params="given",
         param_values=bn_blobs(4, 3, 0.7))
    case("norm_bn_test_2d", bn(), [gauss(5, (4, 3))], params="given", param_values=bn_blobs(6, 3, 1.5))
    case("norm_bn_train", bn(), [x], phase="TRAIN", params="given", param_values=bn_blobs(7, 3, 3.0))
    case("norm_bn_train_2d", bn(), [gauss(8, (5, 4), 1.5, -1.0)], phase="TRAIN", params="given",
         param_values=bn_blobs(9, 4, 1.0))
    case("norm_bn_train_eps_frac", bn("batch_norm_param { eps: 0.001 moving_average_fraction: 0.9 }"), [x],
         phase="TRAIN", params="given", param_values=bn_blobs(10, 3, 0.0))
    case("norm_bn_test_batch_stats", bn("batch_norm_param { use_global_stats: false }"), [x], params="given",
         param_values=bn_blobs(11, 3, 1.0))
    case("norm_bn_train_global", bn("batch_norm_param { use_global_stats: true }"), [x], phase="TRAIN",
         params="given", param_values=bn_blobs(12, 3, 2.0))
    case("norm_bn_train_m1", bn(), [gauss(13, (1, 3))], phase="TRAIN", params="given",
         param_values=bn_blobs(14, 3, 1.0))
    case("norm_bn_train_5d", bn(), [gauss(15, (2, 2, 2, 3, 2))], phase="TRAIN", params="given",
         param_values=bn_blobs(16, 2, 1.0))


def mvn():
    x = gauss(20, (2, 3, 4, 3), 1.5, 0.3)
    m = lambda p="": 'name: "mvn" type: "MVN" bottom: "x" top: "y" %s' % p  # noqa: E731
    case("norm_mvn", m(), [x])
    case("norm_mvn_mean_only", m("mvn_param { normalize_variance: false }"), [x])
    case("norm_mvn_across", m("mvn_param { across_channels: true }"), [x])
    case("norm_mvn_across_mean_only", m("mvn_param { across_channels: true normalize_variance: false }"), [x])
    case("norm_mvn_eps", m("mvn_param { eps: 0.5 }"), [gauss(21, (2, 2, 3, 3), 0.5)])
    case("norm_mvn_2d_across", m("mvn_param { across_channels: true eps: 0.1 }"), [gauss(22, (3, 5))])


def main():
    batchnorm()
    mvn()


if __name__ == "__main__":
    main()
