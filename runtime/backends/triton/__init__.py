"""Triton runner: the model on a Triton Inference Server, its contract and system shared memory."""
