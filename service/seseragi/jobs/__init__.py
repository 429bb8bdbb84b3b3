"""Durable generation jobs: a Redis-backed queue, its workers and the JobService."""
