"""The version of predistort (one place: the package, saved configs and the model cards read it)."""
__version__ = "0.1.0"
