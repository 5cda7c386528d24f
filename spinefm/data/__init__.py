"""Data layer: readers of every source turn into one ImageRecord per radiograph."""

from spinefm.data.levels import LEVELS
from spinefm.data.problems import DataError, Problem
from spinefm.data.record import ImageRecord, Vertebra

__all__ = ["LEVELS", "DataError", "ImageRecord", "Problem", "Vertebra"]
