"""Moved to ``r2d.backends.processors`` (the hf backend applies them); kept importable here."""

from r2d.backends.processors import PivotRecorder, PivotThresholdProcessor

__all__ = ["PivotRecorder", "PivotThresholdProcessor"]
