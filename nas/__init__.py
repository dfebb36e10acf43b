"""nas: hardware-aware neural architecture search for MobileNet-style networks.

Subpackages, one concept each:

* :mod:`nas.arch`    architectures as data (``BlockSpec``, ``ArchSpec``), builder, costs
* :mod:`nas.space`   declarative search spaces (YAML), enumeration and sampling
* :mod:`nas.data`    datasets: image folders, CIFAR python batches, embedded digits
* :mod:`nas.train`   the one training loop (proxy training, fine-tuning, retraining)
* :mod:`nas.export`  ONNX export with an onnxruntime parity check
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
