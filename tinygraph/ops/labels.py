"""How numbers and index keys are written in op labels (diagrams, the explorer)."""
from ..backend import xp
from ..core.tensor import Tensor


def number_text(value):
    """A number as labels show it: 2, not 2.0; 4 significant digits otherwise."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def key_text(key):
    """A key as diagrams write it: [:, 0:4], [ints(2, 3), 1]."""
    parts = []
    for k in key:
        if isinstance(k, slice):
            text = ("" if k.start is None else str(k.start)) + ":" + (
                "" if k.stop is None else str(k.stop))
            parts.append(text + (f":{k.step}" if k.step is not None else ""))
        elif k is None:
            parts.append("None")
        elif k is Ellipsis:
            parts.append("...")
        elif isinstance(k, (xp.ndarray, Tensor)):
            parts.append(f"ints{tuple(k.shape)}")
        else:
            parts.append(str(k))
    return "[" + ", ".join(parts) + "]"
