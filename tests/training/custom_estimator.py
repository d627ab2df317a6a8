"""A project's own estimator class: trusted code where it was written, unknown to a loader."""

from __future__ import annotations

from typing import Any

from sklearn.linear_model import Ridge


class ShiftedRegressor(Ridge):
    """Ridge plus a constant: any class outside scikit-learn's own modules."""

    def predict(self, X: Any) -> Any:
        return super().predict(X) + 1.0
