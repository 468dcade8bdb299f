"""Detectors: one registry, one score sign (higher = more in-distribution)."""
from .base import DETECTORS, Detector, make_detector, register
from . import logits, features, layers, vae, likelihood, abs, union  # noqa: F401  (importing registers them)

__all__ = ["DETECTORS", "Detector", "make_detector", "register"]
