"""Reading Caffe-format training logs back (the rules of tools/extra/parse_log.py, caffe-spec 7.3):
the iteration is the last ``Iteration N`` seen, the rate the last ``lr = Z``, and each
``Train net output`` / ``Test net output`` line adds a named value to the current iteration's row.
Works on Caffe's own logs and on ours (solver.log writes the same lines)."""
import re

_ITER = re.compile(r"Iteration (\d+)")
_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+\w.]+)")
_LR = re.compile(r"lr = ([-+\w.]+)")
_OUT = re.compile(r"(Train|Test) net output #(\d+): (\S+) = ([-+\w.]+)")


def parse_log(lines):
    """-> {"train": [{"iter", "loss", "lr", <outputs>}], "test": [{"iter", <outputs>}]} ."""
    train, test = {}, {}
    it, lr = None, float("nan")
    for line in lines:
        msg = line.split("] ", 1)[1] if "] " in line else line
        m = _ITER.search(msg)
        if m:
            it = int(m.group(1))
        if it is None:
            continue
        m = _LOSS.search(msg)
        if m:
            train.setdefault(it, {"iter": it})["loss"] = float(m.group(2))
        m = _LR.search(msg)
        if m and "lr = " in msg and "Iteration" in msg:
            lr = float(m.group(1))
            train.setdefault(it, {"iter": it})["lr"] = lr
        m = _OUT.search(msg)
        if m:
            kind, name, v = m.group(1), m.group(3), float(m.group(4))
            row = (train if kind == "Train" else test).setdefault(it, {"iter": it})
            if name in row:          # multi-element outputs: name, name#1, ...
                k = 1
                while f"{name}#{k}" in row:
                    k += 1
                name = f"{name}#{k}"
            row[name] = v
    return {"train": [train[k] for k in sorted(train)], "test": [test[k] for k in sorted(test)]}
