"""One rank of a data-parallel test run (started by tests/ddp_helpers.py with torchrun's environment):
trains the solver and writes this rank's final weights to OUT.rank<r>.caffemodel, so a test can compare
every rank's weights (the solver itself snapshots on rank 0 only).

    python tests/ddp_worker.py SOLVER OUT
"""
import sys

import torch

from recaffe.solver import distributed
from recaffe.solver.solver import Solver


def main(solver_path, out):
    torch.set_num_threads(1)
    group = distributed.init("cpu")
    import recaffe
    print(f"pycaffe: solver_count={recaffe.solver_count()} solver_rank={recaffe.solver_rank()}", file=sys.stderr)
    s = Solver(solver_path)
    s.solve()
    s.net.save_weights(f"{out}.rank{group.rank}.caffemodel")
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:3])
