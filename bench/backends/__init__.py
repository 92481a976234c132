"""Keras backends (tensorflow, jax, torch): one small module each behind :class:`bench.backends.base.Backend`.

Layer: between ``bench.model`` and ``bench.measure``; imports ``bench.model`` and base only. Nothing
here imports a framework at module level: the parent names a backend and builds its worker's
environment; only the worker (``bench.engines.worker``) calls the methods that import it.
"""
