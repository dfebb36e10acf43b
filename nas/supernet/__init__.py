"""Weight-sharing supernets: train once on a space, then score any of its networks in seconds.

* :mod:`nas.supernet.model`     the supernet of a space; running and extracting sub-networks
* :mod:`nas.supernet.store`     the supernet directory (``supernet.json`` + checkpoint) and loading it
* :mod:`nas.supernet.train`     ``nas supernet train``: the sandwich rule with in-place distillation
* :mod:`nas.supernet.evaluate`  the supernet evaluator (BatchNorm re-estimated, validation accuracy)
* :mod:`nas.supernet.extract`   ``nas supernet extract``: one sub-network as an ordinary weights file
"""

from nas.supernet.evaluate import SupernetEvaluator, SupernetScoring, calibrated_subnet, check_scoring_device
from nas.supernet.model import Position, Supernet, largest_arch, smallest_arch
from nas.supernet.store import LoadedSupernet, check_same_space, load_supernet, read_info
from nas.supernet.train import SandwichSettings, SupernetTrainJob, run_supernet_train, sandwich_loss

__all__ = ["Supernet", "Position", "largest_arch", "smallest_arch", "LoadedSupernet", "load_supernet", "read_info",
           "check_same_space", "SupernetEvaluator", "SupernetScoring", "calibrated_subnet", "check_scoring_device", "SandwichSettings",
           "SupernetTrainJob", "run_supernet_train", "sandwich_loss"]
