"""Latency lookup tables: measure parts of networks on a device, store them, predict networks.

* :mod:`~nas.latency.signature`      canonical part signatures
* :mod:`~nas.latency.table`          the JSON table format, validation, atomic save
* :mod:`~nas.latency.measure`        onnxruntime timing backends, the measurement protocol, timing models
* :mod:`~nas.latency.passes`         timing many models in interleaved passes
* :mod:`~nas.latency.build`          resumable table building and calibration
* :mod:`~nas.latency.correction`     fitting a table's correction on whole networks
* :mod:`~nas.latency.predict`        the ``LatencyEstimator`` interface and the table estimator
* :mod:`~nas.latency.validate`       whole random networks measured against the table's prediction
* :mod:`~nas.latency.spaces`         finding the search space a table was built for
* :mod:`~nas.latency.bundle`         device bundles for devices that cannot run this project
* :mod:`~nas.latency.bundle_runner`  the script a bundle runs on the device (standalone: numpy + onnxruntime)
* :mod:`~nas.latency.importer`       a device's bundle results as a table
* :mod:`~nas.latency.ofa`            published Once-for-All / ProxylessNAS tables as a table
"""

from nas.latency.build import (
    DEFAULT_CALIBRATION,
    add_entries,
    build_table,
    calibrate,
    calibration_archs,
    reference_archs,
    space_parts,
)
from nas.latency.measure import (
    BACKENDS,
    CLOCKS,
    DEFAULT_PASSES,
    Backend,
    MeasureSettings,
    OrtBackend,
    Timing,
    get_backend,
    table_backend,
)
from nas.latency.predict import (
    ON_MISSING,
    LatencyEstimator,
    PartLatency,
    Prediction,
    TableEstimator,
    check_table_for_arch,
    check_table_for_space,
    is_local_table,
    part_macs,
)
from nas.latency.signature import Part, arch_parts, block_signature, head_signature, parse_signature, stem_signature
from nas.latency.table import SCHEMA_VERSION, Correction, Entry, LatencyTable, load_table, save_table

__all__ = [
    "Part", "arch_parts", "block_signature", "head_signature", "parse_signature", "stem_signature",
    "SCHEMA_VERSION", "Correction", "Entry", "LatencyTable", "load_table", "save_table",
    "BACKENDS", "CLOCKS", "DEFAULT_PASSES", "Backend", "MeasureSettings", "OrtBackend", "Timing", "get_backend", "table_backend",
    "DEFAULT_CALIBRATION", "add_entries", "build_table", "calibrate", "calibration_archs", "reference_archs",
    "space_parts",
    "ON_MISSING", "LatencyEstimator", "part_macs", "PartLatency", "Prediction", "TableEstimator",
    "check_table_for_arch", "check_table_for_space",
    "is_local_table",
]
