"""Triton kernels of fused_sched (installed as ``fused_sched.kernels``); only @triton.jit code."""
