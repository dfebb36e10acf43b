"""nas: hardware-aware neural architecture search for MobileNet-style networks.

Subpackages, one concept each:

* :mod:`nas.arch`     architectures as data (``BlockSpec``, ``ArchSpec``), builder, costs
* :mod:`nas.space`    declarative search spaces (YAML), enumeration and sampling
* :mod:`nas.latency`  latency tables: measuring parts on a device, bundles, prediction
* :mod:`nas.data`     datasets: image folders, CIFAR python batches, embedded digits
* :mod:`nas.train`    the one training loop (proxy training, fine-tuning, retraining)
* :mod:`nas.search`   the hardware-aware search (Optuna), its trials, objectives and outputs
* :mod:`nas.supernet` weight-sharing supernets: train once, score any network of the space in a second
* :mod:`nas.adapt`    NetAdapt: shrinking a trained network onto a latency budget
* :mod:`nas.retrain`  retraining a search's winners, measuring them, the report
* :mod:`nas.export`   ONNX export with an onnxruntime parity check
* :mod:`nas.cli`      the ``nas`` command (parses arguments and calls the above)

Modules shared by all of them:

* :mod:`nas.errors`     the exception hierarchy (``NASError`` and its kinds)
* :mod:`nas.atomic`     atomic file writes
* :mod:`nas.interrupt`  Ctrl-C that is not lost inside a finalizer
* ``nas._json``         JSON loading that refuses a key given twice
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
