"""The classic decomposition engine (CPU, no downloaded weights)."""

from services.decompose.engines.classic.engine import ClassicEngine

__all__ = ["ClassicEngine"]
