"""The few pycaffe names recaffe does not provide: each stays importable and, when used, raises one
line that says what to use instead (tests/test_pycaffe_api.py checks every entry of REFUSED)."""
from recaffe.protos.errors import RecaffeError

#: pycaffe name -> (why it is refused, what to use instead)
REFUSED = {
    "caffe.NCCL": ("multi-GPU training across processes is not implemented",
                   "one process with iter_size multiplied by the GPU count (Caffe's N-GPU run makes the same "
                   "updates, clip_gradients aside)"),
    "caffe.draw.get_pydot_graph": ("recaffe draws without pydot",
                                   "recaffe.draw.to_dot(caffe_net, rankdir) for the DOT text, or draw_net / "
                                   "draw_net_to_file"),
}


class NotProvidedError(RecaffeError, NotImplementedError):
    """A pycaffe feature recaffe refuses; the message names what to use instead."""


def message(name):
    why, instead = REFUSED[name]
    return f"{name} is not provided by recaffe ({why}); use {instead}"


def refuse(name):
    raise NotProvidedError(message(name))


def refused_class(name):
    """A class whose construction raises the refusal of ``name`` (pycaffe's NCCL)."""
    def __init__(self, *args, **kwargs):
        refuse(name)
    return type(name.rsplit(".", 1)[-1], (), {"__init__": __init__, "__doc__": message(name)})
