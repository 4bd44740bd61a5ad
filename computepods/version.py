"""The package's version, in a module of its own: the package's own modules
read it from here, never from ``computepods`` (the public façade, which sits
above them all; reading it from there would make an import cycle)."""

__version__ = "0.1.0"
