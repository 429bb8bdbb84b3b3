"""Metrics, traces and per-call logs: what an operator sees without reading code."""
