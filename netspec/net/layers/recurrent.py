"""Caffe's recurrent layers: RNN, LSTM (time-major T x N x ..., with the continuation indicator
``cont``) and LSTMUnit (one LSTM step).

Caffe builds an unrolled net inside the layer (src/caffe/layers/recurrent_layer.cpp, rnn_layer.cpp,
lstm_layer.cpp); here a loop over time steps does the same arithmetic:

* the input transform ``W_x x_t + b`` of every step at once, plus ``W_static x_static`` when a third
  (static) bottom is given;
* ``h_{t-1}`` is multiplied by ``cont_t`` before the recurrent weight, so ``cont_t == 0`` starts a
  new sequence (LSTMUnit also multiplies the forget gate by ``cont_t``);
* blobs in the unrolled net's parameter order: LSTM ``W_xc (4H, I), b_c (4H), [W_xc_static (4H, Is)],
  W_hc (4H, H)`` with gates ordered (input, forget, output, cell candidate); RNN ``W_xh, b_h,
  [W_xh_static], W_hh, W_ho, b_o``;
* without ``expose_hidden`` the state carries over between forward passes (Caffe copies the last
  step's h/c into the next pass's initial state; the first pass starts from zeros);
* with ``expose_hidden`` the initial states are extra bottoms and the final states extra tops, but,
  as in Caffe, no gradient flows into those bottoms nor from those tops (RecurrentLayer shares
  only their data with the unrolled net); ``cont`` never gets a gradient.
"""
import torch

from .base import Layer, count
from .registry import register


class _ContForget(torch.autograd.Function):
    """Forget gate of lstm_unit_layer.cpp: f = cont * sigmoid(x) (0 where cont == 0), whose
    gradient Caffe takes as f (1 - f) with f already scaled by cont."""

    @staticmethod
    def forward(ctx, x, cont):
        f = torch.where(cont == 0, torch.zeros_like(x), cont * torch.sigmoid(x))
        ctx.save_for_backward(f)
        return f

    @staticmethod
    def backward(ctx, grad):
        f, = ctx.saved_tensors
        return grad * f * (1 - f), None


def lstm_unit(c_prev, gates, cont):
    """One LSTMUnit step on (N, H) state, (N, 4H) gate inputs (i, f, o, g) and (N,) cont: (c, h)."""
    hd = c_prev.shape[-1]
    i = torch.sigmoid(gates[:, :hd])
    f = _ContForget.apply(gates[:, hd:2 * hd], cont.unsqueeze(1))
    o = torch.sigmoid(gates[:, 2 * hd:3 * hd])
    g = torch.tanh(gates[:, 3 * hd:])
    c = f * c_prev + i * g
    return c, o * torch.tanh(c)


@register("LSTMUnit")
class LSTMUnit(Layer):
    """lstm_unit_layer.cpp: bottoms c_prev (1, N, H), gate input X (1, N, 4H), cont (1, N);
    tops c (1, N, H), h (1, N, H). No gradient to cont."""
    exact_bottoms = 3
    exact_tops = 2

    def setup(self, p):
        lp = self.lp
        c, x, cont = self.bottom_shapes
        n = c[1] if len(c) > 1 else None
        for i, s in enumerate(self.bottom_shapes):
            want = 2 if i == 2 else 3
            if len(s) != want or s[0] != 1 or s[1] != n:
                raise self.error(f"bottom {i} '{lp.bottom[i]}' must be ({'1, N' if i == 2 else '1, N, D'}) "
                                 f"with N = {n}, got {s}")
        if x[2] != 4 * c[2]:
            raise self.error(f"gate input must have 4 * {c[2]} = {4 * c[2]} channels, got {x[2]}")
        self.top_shapes = [c, c]

    def forward(self, c_prev, x, cont):
        c, h = lstm_unit(c_prev[0], x[0], cont.detach()[0].to(x.dtype))
        return [c.unsqueeze(0), h.unsqueeze(0)]


class _Recurrent(Layer):
    """Shared setup of RNN and LSTM (recurrent_layer.cpp)."""
    n_states = 1  # recurrent blobs carried between steps: RNN h; LSTM h and c
    gate_mult = 1  # rows of the weights per hidden unit (LSTM: 4 gates)
    n_extra_blobs = 0  # blobs after W_hc / W_hh (RNN: W_ho, b_o)
    param_field = "recurrent_param"
    # the class-level check only guarantees x and cont; setup checks the counts that expose_hidden implies
    min_bottoms = 2

    @classmethod
    def blob_count(cls, lp):
        expose = lp.recurrent_param.expose_hidden
        static = len(lp.bottom) > 2 + expose * cls.n_states
        return 3 + static + cls.n_extra_blobs

    def setup(self, rp):
        self.expose = rp.expose_hidden
        self.min_bottoms = 2 + self.expose * self.n_states
        self.max_bottoms = self.min_bottoms + 1
        self.exact_tops = 1 + self.expose * self.n_states
        self.check_counts()
        x, cont = self.bottom_shapes[:2]
        if len(x) < 3:  # 2 in RecurrentLayer's check, but its InnerProduct (axis 2) needs a third
            raise self.error(f"bottom 0 must have at least 3 axes (#timesteps, #streams, features...), got {x}")
        self.T, self.N = int(x[0]), int(x[1])
        if cont != (self.T, self.N):
            raise self.error(f"bottom 1 (cont) must be (#timesteps, #streams) = {(self.T, self.N)}, got {cont}")
        self.static = len(self.bottom_shapes) > 2 + self.expose * self.n_states
        if self.static:
            s = self.bottom_shapes[2]
            if len(s) < 1 or s[0] != self.N:
                raise self.error(f"static input (bottom 2) must have {self.N} rows, got {s}")
        self.H = rp.num_output
        if self.H <= 0:
            raise self.error("recurrent_param.num_output must be positive")
        state = (1, self.N, self.H)
        for i in range(2 + self.static, len(self.bottom_shapes)):
            if self.bottom_shapes[i] != state:
                raise self.error(f"bottom {i} (initial hidden state) must be {state}, got {self.bottom_shapes[i]}")
        g, w, b = self.gate_mult * self.H, rp.weight_filler, rp.bias_filler
        self.add_blob((g, count(x, 2)), w)
        self.add_blob((g,), b)
        if self.static:
            self.add_blob((g, count(self.bottom_shapes[2], 1)), w)
        self.add_blob((g, self.H), w)
        self.add_extra_blobs(w, b)
        self.top_shapes = [(self.T, self.N, self.H)] + [state] * (self.expose * self.n_states)
        self._carried = None  # state handed from one forward pass to the next (no expose_hidden)

    def add_extra_blobs(self, weight_filler, bias_filler):
        pass

    def initial_states(self, exposed, like):
        if self.expose:
            return [s.detach().reshape(self.N, self.H).to(like.dtype) for s in exposed]
        carried = self._carried
        if carried is None or carried[0].shape != (self.N, self.H):
            return [like.new_zeros(self.N, self.H) for _ in range(self.n_states)]
        return [s.to(like.dtype) for s in carried]

    def forward(self, x, cont, *rest):
        if x.dim() < 3 or x.shape[0] != self.T or tuple(cont.shape) != tuple(x.shape[:2]):
            raise self.error(f"input must be ({self.T}, N, ...) with cont (T, N): the number of timesteps "
                             f"is fixed at setup; got {tuple(x.shape)} and {tuple(cont.shape)}")
        self.N = x.shape[1]
        x_static = rest[0] if self.static else None
        exposed = rest[1:] if self.static else rest
        w_x, b_x = self.blobs[0], self.blobs[1]
        gx = x.reshape(self.T, self.N, -1) @ w_x.t() + b_x
        if x_static is not None:
            gx = gx + (x_static.reshape(self.N, -1) @ self.blobs[2].t()).unsqueeze(0)
        out, finals = self.unroll(gx, cont.detach().to(x.dtype), self.initial_states(exposed, x))
        if not self.expose:
            self._carried = [s.detach() for s in finals]
            return [out]
        return [out] + [s.detach().unsqueeze(0) for s in finals]

    def weights_after_static(self):
        return list(self.blobs)[3 if self.static else 2:]


@register("LSTM")
class LSTM(_Recurrent):
    """lstm_layer.cpp: gate_t = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static],
    then LSTMUnit; top h (T, N, H) [, h_T, c_T]; bottoms x, cont [, x_static] [, h_0, c_0]."""
    n_states = 2
    gate_mult = 4

    def unroll(self, gx, cont, states):
        h, c = states
        w_hc, = self.weights_after_static()
        hs = []
        for t in range(self.T):
            gates = (cont[t].unsqueeze(1) * h) @ w_hc.t() + gx[t]
            c, h = lstm_unit(c, gates, cont[t])
            hs.append(h)
        return torch.stack(hs), (h, c)


@register("RNN")
class RNN(_Recurrent):
    """rnn_layer.cpp: h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static]),
    o_t = tanh(W_ho h_t + b_o); top o (T, N, H) [, h_T]; bottoms x, cont [, x_static] [, h_0]."""
    n_extra_blobs = 2

    def add_extra_blobs(self, weight_filler, bias_filler):
        self.add_blob((self.H, self.H), weight_filler)  # W_ho
        self.add_blob((self.H,), bias_filler)  # b_o

    def unroll(self, gx, cont, states):
        h, = states
        w_hh, w_ho, b_o = self.weights_after_static()
        hs = []
        for t in range(self.T):
            h = torch.tanh((cont[t].unsqueeze(1) * h) @ w_hh.t() + gx[t])
            hs.append(h)
        return torch.tanh(torch.stack(hs) @ w_ho.t() + b_o), (h,)
