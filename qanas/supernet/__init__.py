"""Weight-sharing supernets for the registered search spaces."""

from qanas.supernet.base import Supernet

__all__ = ["Supernet"]
