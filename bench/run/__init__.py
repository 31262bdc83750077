"""What one run carries from stage to stage: the embedded corpus, the run context that stages and workloads
read, the config checks made before any work starts, and what a rerun reuses after an interrupt.

The stages themselves, in order, are in :mod:`bench.runner`.
"""
