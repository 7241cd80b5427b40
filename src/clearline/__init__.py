"""clearline: a machine-speed hotline and action gate between two states' autonomous defences."""

__version__ = "0.1.0"
