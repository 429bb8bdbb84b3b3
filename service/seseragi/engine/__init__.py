"""The continuous-batching engine: plain-Python requests in, token events out.

`AsyncEngine` is the front door for asyncio code; `Engine.step()` is schedule -> run -> postprocess.
Only `model_runner` and `sampling` touch tensors.
"""
