#!/usr/bin/env bash
# Data parallel over processes: 1 node of 2 replicas against 2 nodes of 1 replica each (two
# processes on this machine, meeting through `trainer orchestrator`), alternated, twice. Run from
# the repository root after `cargo build --release --example mlp --bin trainer`; prints each
# run's final JSON line, prefixed with its name.
set -euo pipefail
M=target/release/examples/mlp
T=target/release/trainer
P=39611
$T orchestrator --port $P 2>/dev/null & OP=$!
trap "kill $OP" EXIT
sleep 0.5
for round in 1 2; do
  $M --device ndarray --replicas 2 2>/dev/null | tail -1 | sed 's/^/one-node-2-replicas /'
  pids=()
  for r in 0 1; do
    $M --device ndarray --nodes 2 --node-rank $r --orchestrator ws://127.0.0.1:$P \
      --node-address ws://127.0.0.1:$((P + 1 + r)) 2>/dev/null | tail -1 | sed "s/^/two-nodes-rank-$r /" &
    pids+=($!)
  done
  wait "${pids[@]}"
done
