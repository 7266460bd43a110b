"""Mixed precision and memory format for training (opt-in: ``-amp=bf16|fp16``, ``-channels_last``,
``Solver(amp=..., channels_last=...)``).

* The forward runs under ``torch.autocast(device, dtype)``: convolutions and inner products in bf16 /
  fp16, while the layers whose numbers need it compute in fp32 inside (Softmax, every loss,
  Accuracy, LRN, BatchNorm statistics and moving averages, MVN: see the layers). Parameters, their
  gradients and the solver histories stay fp32 (autocast never changes a parameter), so the update,
  weight decay, clipping and snapshots are Caffe's fp32 ones.
* fp16 uses a dynamic loss scale (``torch.amp.GradScaler``): the summed loss of each sub-batch is
  scaled, all ``iter_size`` passes of an iteration use the same scale, the gradients are unscaled
  before ``clip_gradients`` (Caffe clips the raw gradient), and an iteration whose gradients overflow
  is skipped (the iteration counter and the lr schedule move on; one log line says so).
* channels_last: 4-D weights in NHWC memory order (cuDNN's tensor-core layout); values are the same.

The pycaffe facade and ``caffe test`` / ``time`` are unaffected unless asked.
"""
import contextlib

import torch

from recaffe.protos.errors import SolverError

MODES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def parse_amp(value, where="-amp"):
    """'', 'fp32', 'off' -> None; 'bf16' / 'fp16' (also 'bfloat16', 'float16') -> the short name."""
    v = (value or "").strip().lower()
    v = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "fp32": "", "off": "", "none": ""}.get(v, v)
    if v and v not in MODES:
        raise SolverError(f"{where}: '{value}'; valid: bf16, fp16 (or fp32 for none)")
    return v or None


class Precision:
    """What a Solver does differently under AMP / channels-last (every method is a no-op when off)."""

    def __init__(self, amp=None, channels_last=False, device="cpu"):
        self.amp = parse_amp(amp, "amp")
        self.dtype = MODES.get(self.amp)
        self.channels_last = bool(channels_last)
        self.device = torch.device(device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == "fp16" else None
        self.skipped = 0

    @property
    def enabled(self):
        return self.dtype is not None

    def prepare(self, net):
        """Move ``net`` to channels-last weights; under AMP keep the fp32-only fused inference paths off
        (they would bypass autocast)."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        if self.enabled:
            net.fast_inference = False

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, net):
        """net.backward(), with the loss scaled under fp16."""
        if self.scaler is None:
            net.backward()
            return
        from recaffe.protos.errors import NetError
        if net.loss is None:
            raise NetError(f"net '{net.name}': no loss to back-propagate (no top has a loss_weight)")
        if net.loss.requires_grad:
            self.scaler.scale(net.loss).backward()

    def step(self, optimizer, iteration):
        """optimizer.step() on unscaled gradients; False (and a log line) when fp16 gradients overflowed
        and the update was skipped."""
        if self.scaler is None:
            optimizer.step()
            return True
        scale = self.scaler.get_scale()
        self.scaler.unscale_(optimizer)
        self.scaler.step(optimizer)
        self.scaler.update()
        if self.scaler.get_scale() < scale:       # the scale only backs off on inf/NaN gradients
            self.skipped += 1
            optimizer.last_clip = None
            from .log import warn
            warn(f"Iteration {iteration}, fp16 gradient overflow at loss scale {scale:g}: update skipped, "
                 f"loss scale now {self.scaler.get_scale():g}", "solver.cpp:0")
            return False
        return True

    def state_dict(self):
        return {} if self.scaler is None else self.scaler.state_dict()
