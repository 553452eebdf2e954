"""History -> fitted response curves (the first stage of the pipeline).

Imports neither ``formulations`` nor ``solver``.
"""

from forecasting.curves import Curve, CurveBatch, CurveError

__all__ = ["Curve", "CurveBatch", "CurveError"]
