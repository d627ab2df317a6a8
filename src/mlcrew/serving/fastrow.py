"""One-row predictions through LightGBM's own single-row fast path.

`Booster.predict` spends most of its ~45 µs on one row checking and converting its input in
Python. LightGBM's C API has a prepared single-row path (`LGBM_BoosterPredictForMatSingleRowFast`)
made for serving: the configuration is parsed once, then each call is ~8 µs. Same model, same
numbers; any other shape (several rows, a LightGBM without the call) goes through
`Booster.predict`.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_PREDICT_NORMAL = 0
_FLOAT64 = 1


class SingleRowPredictor:
    """Predicts one float64 row at a time with a prepared LightGBM configuration."""

    def __init__(self, booster: Any) -> None:
        import numpy as np

        from mlcrew.training.native import check_status, library

        self._lib = lib = library()
        self._booster = booster  # keeps the model alive as long as the configuration
        self.width = booster.num_feature()
        self.outputs = booster.num_model_per_iteration()
        self._config = ctypes.c_void_p()
        check_status(
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(self.width),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        # Buffers and their pointers made once: building them per call costs more than the model.
        double_p = ctypes.POINTER(ctypes.c_double)
        self._row = np.empty(self.width, dtype=np.float64)
        self._row_ptr = self._row.ctypes.data_as(double_p)
        self._out = np.empty(self.outputs, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(double_p)
        self._out_len = ctypes.c_int64()
        self._out_len_ptr = ctypes.pointer(self._out_len)
        # The same library through PyDLL: a call of a few microseconds keeps the interpreter
        # lock instead of releasing it and queueing to get it back behind other threads.
        self._call = ctypes.PyDLL(lib._name).LGBM_BoosterPredictForMatSingleRowFast
        # The prepared configuration holds one buffer: one caller at a time.
        self._lock = threading.Lock()

    def predict(self, row: np.ndarray) -> np.ndarray:
        """The model's output for one row of floats (a copy the caller may keep)."""
        with self._lock:
            self._row[:] = row
            status = self._call(self._config, self._row_ptr, self._out_len_ptr, self._out_ptr)
            out = self._out.copy()
        if status != 0:
            raise RuntimeError(self._lib.LGBM_GetLastError().decode())
        return out

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


def single_row_predictor(booster: Any) -> SingleRowPredictor | None:
    """A prepared one-row predictor, or None if this LightGBM cannot make one."""
    try:
        return SingleRowPredictor(booster)
    except Exception:  # any failure to prepare means: use Booster.predict
        return None
