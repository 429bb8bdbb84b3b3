"""Benchmarks Seseragi against naive and static-batch transformers baselines (`make bench`)."""
