"""torch.compile as an opt-in: ``net.compile()`` (torch's nn.Module.compile; the CPU fast paths step
aside while Dynamo traces) gives the eager output;
``caffe time -compile`` reports eager and compiled whole-net times. (Inductor compiles for ~20 s on
2 cores: one tiny net.)"""
import os
import sys

import numpy as np
import torch

from recaffe.netspec.net.net import Net
from recaffe.solver.log import capture

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_onnx_export import tiny_deploy  # noqa: E402


def test_compiled_net_equals_eager_and_time_reports_both(tmp_path):
    net = Net(tiny_deploy(tmp_path))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = {k: v.clone() for k, v in net(data=x).items()}
    from recaffe.solver.compiled import compare
    with capture() as lines:
        eager_ms, comp_ms, compile_s = compare(net, 3, torch.device("cpu"), train=False)
    assert eager_ms > 0 and comp_ms > 0 and compile_s > 0
    assert any("Whole net forward: eager " in ln and " ms, torch.compile " in ln for ln in lines)
    assert any("torch.compile is " in ln for ln in lines)
    net.compile()
    with torch.no_grad():
        out = net(data=x)
    for k in ref:
        np.testing.assert_allclose(out[k].numpy(), ref[k].numpy(), rtol=1e-5, atol=1e-7)
