"""The wire between the operator and its programs: what one side writes and the other reads.

- `labels`: the labels and annotations on Conveyor's objects and children;
- `layouts`: where the programs' outputs live in the bucket (snapshots, runs, prediction logs);
- `invocations`: the argument lists and environment of `conveyor materialize` and `conveyor
  train`, built by the operator and parsed by the programs;
- `outcomes`: how a program can end — reason, exit code, whether a retry may help — which the
  programs raise and the Jobs' podFailurePolicy is built from;
- `results`: a program's outcome (its termination message) and a run's result.json;
- `manifest`: a snapshot's manifest.json.

Each is built on one side and parsed on the other from the same definition, so the two cannot
drift apart. Nothing here does I/O.
"""
