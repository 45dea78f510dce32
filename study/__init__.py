"""hetero-pitfalls: a reproducible study of DL inference on heterogeneous processors.

Subpackages and modules:
  devices   where things run (local host, Android phone over adb)
  engines   how models run (LiteRT, ONNX Runtime, PyTorch)
  models    what runs (zoo architectures, trained mobile models, user files)
  measure   the harness (warm-up, interleaving, stopping rule, raw logs)
  one module per finding, sharing its name with its notebook and DVC stage
"""
__version__ = "0.1.0"
