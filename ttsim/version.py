"""The ttsim version: one definition, read by the package and by what keys results by it (sweeps)."""

__version__ = "0.1.0"
