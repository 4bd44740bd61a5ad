"""computepods: an incremental, distributed build system that builds cycles."""

__version__ = "0.1.0"
