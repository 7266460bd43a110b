"""pycaffe's prototxt text on the protobuf this project installs, from the oracle's goldens.

The goldens of tests/golden/dsl/ and tests/golden/pycaffe/ hold what real pycaffe printed inside the oracle
(protobuf 3.12, floats with 17 digits: ``0.009999999776482582``). pycaffe's NetSpec only builds the
message; its text is protobuf's. So "pycaffe's text on our protobuf" is that very message printed by our
protobuf: the golden is parsed (the structure is pycaffe's: layer order, names, which fields are set, the
float32 values, which a 17-digit decimal carries exactly) and printed again with the installed protobuf,
either by ``text_format.MessageToString`` (what pycaffe's ``str(msg)`` is in protobuf's Python
implementation: ``mean_value: 104.0``, ``alpha: 0.0001``, raw UTF-8) or by ``str()`` of the installed
backend (upb's encoder spells 104.0 as ``104``). Nothing here comes from recaffe's own printer.
"""
from google.protobuf import text_format

from recaffe.protos import caffe_pb2


def parse_golden(text):
    """The message a golden text holds: a NetParameter, or a SolverParameter (a solver golden has
    fields no NetParameter has, so exactly one parse succeeds)."""
    for kind in (caffe_pb2.NetParameter, caffe_pb2.SolverParameter):
        msg = kind()
        try:
            text_format.Parse(text, msg)
        except text_format.ParseError:
            continue
        return msg
    raise AssertionError("golden text is neither a NetParameter nor a SolverParameter")


def pycaffe_text(golden_text):
    """pycaffe's text of the golden's message through protobuf's text_format (our to_prototxt's text)."""
    return text_format.MessageToString(parse_golden(golden_text))


def pycaffe_str(golden_text):
    """``str(msg)`` of the golden's message under the installed protobuf backend (a legacy script's
    ``f.write(str(n.to_proto()))``)."""
    return str(parse_golden(golden_text))
