"""A stored LightGBM model, loaded and run through LightGBM's C library directly.

Loading and predicting need four calls of `lib_lightgbm`, but `import lightgbm` also imports
SciPy, narwhals and (when installed) pandas and scikit-learn: about 0.4 s of every server's and
every CLI command's start. `NativeBooster` makes the same calls `lightgbm.Booster.predict` makes
on a float64 matrix (same library file, same parameters), so it returns the same numbers, and
imports only NumPy. Training still uses the `lightgbm` package.
"""

from __future__ import annotations

import ctypes
import importlib.util
import platform
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Constants of LightGBM's C API (c_api.h).
DTYPE_FLOAT64 = 1
PREDICT_NORMAL = 0
ROW_MAJOR = 1
MAX_ROWS = 2**31 - 1  # the C API counts rows in int32

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class NativeLightGBMError(RuntimeError):
    """LightGBM's C library refused a call; the message is LightGBM's own."""


def library() -> ctypes.CDLL:
    """`lib_lightgbm` of the installed `lightgbm` package, loaded once per process.

    If the package is imported already, its handle is reused; otherwise the file is found where
    the package keeps it, without running the package's imports."""
    global _lib
    with _lock:
        if _lib is None:
            basic = sys.modules.get("lightgbm.basic")
            lib = getattr(basic, "_LIB", None) if basic is not None else None
            _lib = lib if isinstance(lib, ctypes.CDLL) else ctypes.CDLL(str(_library_path()))
            _lib.LGBM_GetLastError.restype = ctypes.c_char_p
        return _lib


def _library_path() -> Path:
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise NativeLightGBMError("LightGBM is not installed: pip install lightgbm")
    package = Path(next(iter(spec.submodule_search_locations)))
    system = platform.system()
    name = {"Windows": "lib_lightgbm.dll", "Darwin": "lib_lightgbm.dylib"}.get(
        system, "lib_lightgbm.so"
    )
    # The places lightgbm's own libpath.py looks, in its order.
    for folder in (package.parent, package / "bin", package / "lib"):
        if (folder / name).is_file():
            return folder / name
    raise NativeLightGBMError(f"LightGBM's library {name} is not in {package}: reinstall lightgbm")


def check_status(status: int) -> None:
    if status != 0:
        message = library().LGBM_GetLastError()
        raise NativeLightGBMError(message.decode(errors="replace") if message else "failed")


class NativeBooster:
    """A LightGBM text model held by the C library: the subset of `lightgbm.Booster` that
    scoring uses (`predict`, `num_feature`, `num_model_per_iteration`, `model_to_string`)."""

    def __init__(self, model_str: str) -> None:
        lib = library()
        self._lib = lib
        self._model_str = model_str
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        check_status(
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(model_str.encode()),
                ctypes.byref(iterations),
                ctypes.byref(self._handle),
            )
        )
        self._features = self._int_property(lib.LGBM_BoosterGetNumFeature)
        self._per_iteration = self._int_property(lib.LGBM_BoosterNumModelPerIteration)

    def _int_property(self, call: Any) -> int:
        out = ctypes.c_int(0)
        check_status(call(self._handle, ctypes.byref(out)))
        return out.value

    def num_feature(self) -> int:
        return self._features

    def num_model_per_iteration(self) -> int:
        return self._per_iteration

    def model_to_string(self) -> str:
        """The model text as it was loaded."""
        return self._model_str

    def predict(self, data: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Like `Booster.predict(data, num_threads=...)` on a 2-D array: one value per row, or
        rows x outputs for a multiclass model."""
        import numpy as np

        matrix = np.ascontiguousarray(data, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self._features:
            raise NativeLightGBMError(
                f"expected a 2-D array of {self._features} columns, got shape {matrix.shape}"
            )
        rows = matrix.shape[0]
        if rows > MAX_ROWS:
            raise NativeLightGBMError(f"{rows} rows: predict at most {MAX_ROWS} at a time")
        count = ctypes.c_int64(0)
        check_status(
            self._lib.LGBM_BoosterCalcNumPredict(
                self._handle,
                ctypes.c_int(rows),
                ctypes.c_int(PREDICT_NORMAL),
                ctypes.c_int(0),  # first iteration
                ctypes.c_int(-1),  # every iteration (a loaded model has no best iteration)
                ctypes.byref(count),
            )
        )
        out = np.empty(count.value, dtype=np.float64)
        written = ctypes.c_int64(0)
        check_status(
            self._lib.LGBM_BoosterPredictForMat(
                self._handle,
                matrix.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(DTYPE_FLOAT64),
                ctypes.c_int32(rows),
                ctypes.c_int32(matrix.shape[1]),
                ctypes.c_int(ROW_MAJOR),
                ctypes.c_int(PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_char_p(f"num_threads={int(num_threads)}".encode()),
                ctypes.byref(written),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        if written.value != count.value:
            raise NativeLightGBMError(f"LightGBM wrote {written.value} of {count.value} outputs")
        return out.reshape(rows, -1) if rows and out.size != rows else out

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            self._lib.LGBM_BoosterFree(handle)
