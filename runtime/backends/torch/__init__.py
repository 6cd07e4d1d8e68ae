"""Torch runner: the bundle's student weights on a CUDA GPU (torch imported lazily), and the student's definition."""
