"""C++ kernels for the CPU engine, compiled on the machine that runs them and cached.

Each kernel is a PyTorch operator (`torch.ops.seseragi.*`) built with the local C++ compiler for
this exact CPU (`-march=native`), so the cache key holds the CPU's flags as well as the source,
the compiler and PyTorch. Where no compiler is found or the build fails, callers fall back to
their PyTorch formulation.
"""
