"""Results near chance level: test accuracies that say nothing about an architecture.

A very short retraining can leave a network predicting one class for nearly every image; its
test accuracy is then the share of that class, and differences between such networks are
noise. A result is flagged (``near_chance`` in ``results.csv``, marked in ``report.md``) when

* its test accuracy is within ``max(5 points, 3 binomial standard deviations)`` of chance
  level, the accuracy of always predicting the test split's most frequent class (``1/classes``
  on a balanced split). Five points is half of chance on a 10-class problem; the binomial term
  widens it on small test splits, where chance-level guessing alone spreads that far (3 sigma
  is 12.7 points for 50 test images at 10 % chance); or
* it predicts one class for at least ``max(50 %, twice chance level)`` of the test images:
  half the images for a 10-class problem, every image for two balanced classes (where anything
  less is judged by the accuracy rule).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NEAR_CHANCE_POINTS", "NEAR_CHANCE_SIGMAS", "ONE_CLASS_SHARE", "chance_accuracy", "chance_flag",
           "near_chance_margin"]

#: Accuracies within this many points (as a fraction) of chance level are flagged ...
NEAR_CHANCE_POINTS = 0.05
#: ... or within this many binomial standard deviations of it, whichever is wider.
NEAR_CHANCE_SIGMAS = 3.0
#: A network predicting one class for at least this share of the images (or twice chance level) is flagged.
ONE_CLASS_SHARE = 0.5


def chance_accuracy(labels: np.ndarray, num_classes: int) -> float:
    """The accuracy of always predicting the most frequent class of ``labels`` (at least ``1/num_classes``)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    return max(1.0 / num_classes, float(counts.max()) / max(1, len(labels)))


def near_chance_margin(chance: float, images: int) -> float:
    """How far above ``chance`` an accuracy on ``images`` test images must be not to be flagged."""
    sigma = math.sqrt(chance * (1.0 - chance) / max(1, images))
    return max(NEAR_CHANCE_POINTS, NEAR_CHANCE_SIGMAS * sigma)


def chance_flag(*, test_acc: float, chance_acc: float, top_class_share: float, top_class: str,
                test_images: int) -> str:
    """Why the result is at chance level ("; "-joined reasons), or "" when it is not."""
    reasons = []
    margin = near_chance_margin(chance_acc, test_images)
    if test_acc < chance_acc + margin:
        reasons.append(f"test accuracy {test_acc * 100:.1f} % is within {margin * 100:.1f} points of chance level "
                       f"({chance_acc * 100:.1f} %)")
    if top_class_share >= max(ONE_CLASS_SHARE, min(1.0, 2 * chance_acc)):
        reasons.append(f"it predicts one class ({top_class!r}) for {top_class_share * 100:.0f} % of the test images")
    return "; ".join(reasons)
