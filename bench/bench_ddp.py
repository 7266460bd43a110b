"""Data-parallel training throughput on CPU: 1 process (iter_size 2) vs 2 processes (iter_size 1 each,
gloo), one thread per process, on CaffeNet-sized training (the CaffeNet deploy layers, DummyData in,
SoftmaxWithLoss out). Both runs do the same work per iteration (2 x batch images) and give the same
trajectory; the script prints images/s of each, their ratio, and the share of a 2-process iteration
spent in the gradient all-reduce (61M float32 gradients, SUM over the loopback).

    python bench/bench_ddp.py [--batch 8] [--iters 6] [--net models/zoo/bvlc_reference_caffenet/deploy.prototxt]

Not a test: the numbers depend on the machine and on what else runs (record them in bench/README.md).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_net(deploy, batch):
    """The deploy net as a training net: DummyData (constant data, label 0) in place of its input, a
    SoftmaxWithLoss in place of its final Softmax, gaussian fillers (deploy files have none), BatchNorm
    on batch statistics."""
    from google.protobuf import text_format
    from recaffe.protos import caffe_pb2
    from recaffe.protos.io import read_net
    param = caffe_pb2.NetParameter()
    param.CopyFrom(read_net(deploy))
    out = caffe_pb2.NetParameter(name=param.name)
    for lp in param.layer:
        if lp.type == "Input":
            d = out.layer.add(name=lp.name, type="DummyData", top=[lp.top[0], "label"])
            shape = [batch] + list(lp.input_param.shape[0].dim)[1:]
            d.dummy_data_param.shape.add(dim=shape)
            d.dummy_data_param.shape.add(dim=[batch])
            d.dummy_data_param.data_filler.add(type="constant", value=0.5)
            d.dummy_data_param.data_filler.add(type="constant", value=0)
            continue
        new = out.layer.add()
        new.CopyFrom(lp)
        if lp.type == "Softmax" and lp is param.layer[-1]:
            new.type = "SoftmaxWithLoss"
            new.bottom.append("label")
            new.top[0] = "loss"
        if lp.type == "BatchNorm":          # training: batch statistics
            new.batch_norm_param.ClearField("use_global_stats")
        for p in (new.convolution_param, new.inner_product_param):
            if p.num_output and not p.HasField("weight_filler"):
                p.weight_filler.type, p.weight_filler.std = "gaussian", 0.01
    return text_format.MessageToString(out)


WORKER = r'''
import json, os, sys, time
import torch
torch.set_num_threads(1)
from recaffe.solver import distributed
from recaffe.solver.solver import Solver
group = distributed.init("cpu")
s = Solver(sys.argv[1])
reduce_t = [0.0]
orig = s.sync.reduce_grads
def timed(params):
    t0 = time.perf_counter(); orig(params); reduce_t[0] += time.perf_counter() - t0
s.sync.reduce_grads = timed
s.step(1)                                   # warm-up
reduce_t[0] = 0.0
s.sync.barrier()
t0 = time.perf_counter()
s.step(int(sys.argv[2]))
s.sync.barrier()
dt = time.perf_counter() - t0
print(json.dumps({"rank": group.rank, "seconds": dt, "allreduce": reduce_t[0]}))
distributed.shutdown()
'''


def run(solver, iters, world):
    from recaffe.solver.launch import free_port
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, RECAFFE_DATA_WORKERS="0")
    port = free_port()
    procs = []
    for r in range(world):
        e = dict(env)
        if world > 1:
            e.update(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                     MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, solver, str(iters)], env=e, cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    out = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default=os.path.join(ROOT, "models/zoo/bvlc_reference_caffenet/deploy.prototxt"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=6)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_ddp_")
    with open(os.path.join(tmp, "net.prototxt"), "w") as f:
        f.write(train_net(a.net, a.batch))
    results = {}
    for world, iter_size in ((1, 2), (2, 1)):
        path = os.path.join(tmp, f"solver_{world}.prototxt")
        with open(path, "w") as f:
            f.write(f'net: "{tmp}/net.prototxt"\nbase_lr: 0.001 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"\n'
                    f"max_iter: 1000 iter_size: {iter_size} random_seed: 1 display: 0 snapshot_after_train: false\n")
        t0 = time.time()
        out = run(path, a.iters, world)
        secs = max(o["seconds"] for o in out)
        images = a.iters * 2 * a.batch
        results[world] = dict(images_per_s=images / secs, s_per_iter=secs / a.iters,
                              allreduce_share=out[0]["allreduce"] / out[0]["seconds"], wall=time.time() - t0)
        print(f"{world} process(es) x iter_size {iter_size}, batch {a.batch}, 1 thread each: "
              f"{results[world]['images_per_s']:.2f} images/s, {results[world]['s_per_iter']:.3f} s/iteration"
              + (f", all-reduce {100 * results[world]['allreduce_share']:.1f}% of an iteration" if world > 1 else ""),
              flush=True)
    print(f"ratio 2 processes / 1 process: {results[2]['images_per_s'] / results[1]['images_per_s']:.2f}x images/s")


if __name__ == "__main__":
    main()
