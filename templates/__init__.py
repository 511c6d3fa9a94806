"""Operator templates: ordinary dense Numba CUDA kernels, decorated with @sparse_conv.

Installed as ``irprune.templates`` (the folder is ``templates/`` in the
repository).
"""
