"""The array module every piece of tinygraph math goes through.

numpy today; swapping this one import (for CuPy, say) is the planned GPU path, so no other
module imports numpy for array math.
"""
import numpy as xp

__all__ = ["xp"]
