#!/usr/bin/env bash
# Re-make every golden in tests/golden/ from real Caffe 1.0 (the oracle).
#   ../shared/oracle/setup-caffe            # once: installs the oracle (~90 s, 1 GiB)
#   bash tests/oracle/regenerate.sh [NAME...] # from the repository root; NAME = a script's stem, e.g. make_layers_vision
# Scripts marked "host" run here and call the oracle themselves (they pass files through /tmp);
# the others run inside it. Goldens only ever hold what real Caffe computed or read.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN="${CAFFE_RUN:-$(cd .. && pwd)/shared/oracle/caffe-run}"
inside=(dump_proto_schema make_dsl_goldens make_layers_vision make_layers_linear make_layers_normalization
        make_layers_neuron make_layers_common make_layers_loss make_layers_recurrent make_net_goldens
        make_solver_goldens make_data_goldens make_leveldb_goldens make_share_goldens make_window_goldens
        make_detector_goldens make_cli_goldens)
host=(make_upgrade_goldens make_binaryproto_goldens make_zoo_goldens make_facade_goldens make_weights_goldens make_h5_goldens)
want=("$@")
pick() { [ ${#want[@]} -eq 0 ] && return 0; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
for s in "${inside[@]}"; do
  if pick "$s"; then echo "== $s (inside the oracle)"; "$RUN" python3 "tests/oracle/$s.py"; fi
done
for s in "${host[@]}"; do
  if pick "$s"; then echo "== $s (host, drives the oracle)"; python3 "tests/oracle/$s.py"; fi
done
