"""fraudflow: real-time transaction anomaly and fraud detection on Bytewax."""

__version__ = "0.1.0"
