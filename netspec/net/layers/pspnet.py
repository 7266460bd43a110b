"""PSPNet's Interp layer (github.com/hszhao/PSPNet, after DeepLab v2: src/caffe/layers/interp_layer.cpp,
src/caffe/util/interp.cpp), with the fork's interp_param (protos/forkschema/pspnet.proto).
"""
import torch

from .base import Layer
from .registry import register


def interp_out_size(size_eff, p, other):
    """interp_layer.cpp Reshape, one axis: zoom_factor z: s + (s - 1)(z - 1); shrink_factor f:
    (s - 1) / f + 1; else the explicit size or the second bottom's (``other``). ``size_eff`` is the
    input size after pad_beg/pad_end cropping."""
    if p.HasField("zoom_factor"):
        return size_eff + (size_eff - 1) * (p.zoom_factor - 1)
    if p.HasField("shrink_factor"):
        return (size_eff - 1) // p.shrink_factor + 1
    return other


def align_corners_taps(size_in, size_out, device):
    """Source position of each output row, its two source rows and their weights, as
    caffe_cpu_interp2 computes them in float: r = (in - 1) / (out - 1) (0 for one output), src = r * i,
    i0 = int(src), i1 = i0 + 1 unless i0 is the last row, lambda1 = src - i0, lambda0 = 1 - lambda1
    ("align corners")."""
    f32 = torch.float32
    r = torch.tensor(size_in - 1, dtype=f32) / (size_out - 1) if size_out > 1 else torch.tensor(0.0, dtype=f32)
    src = r * torch.arange(size_out, dtype=f32)
    i0 = src.to(torch.int64)
    i1 = i0 + (i0 < size_in - 1).to(torch.int64)
    l1 = src - i0.to(f32)
    return [t.to(device) for t in (src, i0, i1, 1.0 - l1, l1)]


@register("Interp")
class Interp(Layer):
    """Bilinear (or nearest_neighbor) resize of H x W with Caffe's align-corners rule. The output size
    comes from exactly one of zoom_factor, shrink_factor, height+width or a second bottom; pad_beg and
    pad_end (<= 0) crop the input first (both axes, from the top-left by -pad_beg). Backward through
    autograd: the adjoint of the interpolation, as caffe_cpu_interp2_backward."""
    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1

    fork_param = "interp_param"

    def setup(self, p):
        shape = self.bottom_shapes[0]
        if len(shape) != 4:
            raise self.error(f"needs a 4-axis bottom (N, C, H, W), got {shape}")
        if p.interp_type not in ("bilinear", "nearest_neighbor"):
            raise self.error(f"interp_type {p.interp_type!r}; valid: bilinear, nearest_neighbor")
        specs = [p.HasField("zoom_factor"), p.HasField("shrink_factor"), p.HasField("height") and p.HasField("width"),
                 len(self.lp.bottom) == 2]
        if sum(specs) != 1:
            raise self.error("give the output size by exactly one of zoom_factor, shrink_factor, height and "
                             "width, or a second bottom")
        if p.pad_beg > 0 or p.pad_end > 0:
            raise self.error(f"pad_beg and pad_end must be <= 0 (cropping), got {p.pad_beg} and {p.pad_end}")
        if (p.HasField("zoom_factor") and p.zoom_factor < 1) or (p.HasField("shrink_factor") and p.shrink_factor < 1):
            raise self.error("zoom_factor and shrink_factor must be >= 1")
        self.nearest = p.interp_type == "nearest_neighbor"
        self.crop = -p.pad_beg
        h_eff, w_eff = shape[2] + p.pad_beg + p.pad_end, shape[3] + p.pad_beg + p.pad_end
        other = self.bottom_shapes[1][2:] if len(self.lp.bottom) == 2 else (p.height, p.width)
        out = (interp_out_size(h_eff, p, other[0]), interp_out_size(w_eff, p, other[1]))
        if min(h_eff, w_eff, *out) <= 0:
            raise self.error(f"input {h_eff} x {w_eff} (after cropping) and output {out[0]} x {out[1]} must "
                             "be positive")
        self.eff, self.out = (h_eff, w_eff), out
        self.top_shapes = [shape[:2] + out]

    def forward(self, x, *ref):
        (h, w), (ho, wo), c = self.eff, self.out, self.crop
        x = x[:, :, c:c + h, c:c + w]
        if (h, w) == (ho, wo):
            return [x.clone() if c == 0 else x.contiguous()]
        rows, cols = align_corners_taps(h, ho, x.device), align_corners_taps(w, wo, x.device)
        if self.nearest:     # caffe_cpu_nninterp2: floor(src + 0.5)
            ri, ci = torch.floor(rows[0] + 0.5).long(), torch.floor(cols[0] + 0.5).long()
            return [x.index_select(2, ri).index_select(3, ci)]
        h0, h1, w0, w1 = (t.to(x.dtype) for t in (rows[3], rows[4], cols[3], cols[4]))

        def mix(band):      # w0 * left + w1 * right, then h0 * upper + h1 * lower, as interp.cpp
            return band.index_select(3, cols[1]) * w0 + band.index_select(3, cols[2]) * w1
        return [mix(x.index_select(2, rows[1])) * h0.view(-1, 1) + mix(x.index_select(2, rows[2])) * h1.view(-1, 1)]
