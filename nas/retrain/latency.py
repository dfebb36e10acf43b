"""Latency of a retrained network: predicted from the run's table, measured when possible.

* Predicted: :class:`~nas.latency.TableEstimator` with ``on_missing="interpolate"`` and
  ``save=False``: retraining never changes a table. Parts missing from the table (reference
  networks of another space) are interpolated and counted in ``predicted_interpolated``.
* Measured: only for an onnxruntime table (the export is ONNX; a LiteRT table is predicted only), when
  :func:`~nas.latency.is_local_table` says this machine is the table's device with its backend (version)
  installed. The exported ONNX file (trained weights) is timed with
  the table's own backend, thread count, batch size and timing settings, so the figure is
  comparable with the prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.arch import ArchSpec
from nas.errors import LatencyTableError
from nas.latency import LatencyTable, MeasureSettings, TableEstimator, get_backend, is_local_table
from nas.latency.measure import ORT_BACKENDS

__all__ = ["LatencyProbe"]


class LatencyProbe:
    """Predicts (and, on the table's device, measures) networks for one table."""

    def __init__(self, table: LatencyTable, *, measure: bool | None = None) -> None:
        self.table = table
        self.estimator = TableEstimator(table, on_missing="interpolate", save=False)
        # the export measured is ONNX: a LiteRT table's device is predicted only (its models are .tflite)
        onnx_table = table.metadata.get("backend") in ORT_BACKENDS
        self.local = (is_local_table(table) and onnx_table) if measure is None else measure
        self._backend: Any = None

    @property
    def backend_name(self) -> str:
        meta = self.table.metadata
        return f"{meta.get('backend')} {meta.get('threads')}t batch {meta.get('batch_size', 1)}"

    def predict(self, arch: ArchSpec) -> dict[str, Any]:
        try:
            pred = self.estimator.predict(arch)
        except LatencyTableError as exc:
            return {"predicted_ms": None, "predicted_interpolated": None, "predicted_error": str(exc)}
        return {"predicted_ms": pred.total_ms, "predicted_interpolated": len(pred.interpolated),
                "predicted_error": None}

    def measure(self, arch: ArchSpec, onnx_path: Path | None) -> dict[str, Any]:
        empty = {"measured_ms": None, "measured_p10_ms": None, "measured_p90_ms": None}
        if not self.local or onnx_path is None or not onnx_path.is_file():
            return empty
        meta = self.table.metadata
        if self._backend is None:
            known = set(MeasureSettings.__dataclass_fields__)
            settings = MeasureSettings(**{k: v for k, v in meta.get("measurement", {}).items() if k in known})
            self._backend = get_backend(meta["backend"], threads=int(meta["threads"]), settings=settings)
        shape = (int(meta.get("batch_size", 1)), arch.in_ch, arch.input_size, arch.input_size)
        t = self._backend.time_onnx(onnx_path.read_bytes(), shape)
        return {"measured_ms": t.median, "measured_p10_ms": t.p10, "measured_p90_ms": t.p90}
