"""Layers whose numbers need float32 under autocast (mixed precision): Softmax, every loss,
Accuracy, LRN, BatchNorm (statistics and moving averages), MVN. ``@fp32`` on their ``forward``
computes them in float32 -- low-precision bottoms cast up, autocast off inside -- and returns float32
tops; outside autocast it changes nothing. The CPU fast paths stay off inside too (netspec.net.kernels:
off under autocast, whatever a layer does with autocast for its own ops). (Caffe itself is float32
throughout.)"""
import functools

import torch

from .. import kernels

_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu")


def autocast_on(device_type):
    return device_type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device_type)


def fp32(forward):
    @functools.wraps(forward)
    def run(self, *args):
        dev = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        if not autocast_on(dev):
            return forward(self, *args)
        args = [a.float() if torch.is_tensor(a) and a.is_floating_point() and a.dtype != torch.float64 else a
                for a in args]
        with torch.autocast(dev, enabled=False), kernels.disabled():
            return forward(self, *args)
    return run
