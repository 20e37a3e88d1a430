"""Edge Harness: TFLite variants of a detector, measured on edge devices."""

__version__ = "0.1.0"
