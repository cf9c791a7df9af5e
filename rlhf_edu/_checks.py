"""Input validators for the package's public functions; each raises ``ValueError`` naming
the argument and what was expected.

The checks are cheap: a few whole-tensor ops, no loops over tokens. The value checks on a
mask (0/1, prefix of ones) read one boolean back to the host, one sync per check.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection

import torch


def require_float_tensor(name: str, x: object, ndim: int | None = None) -> torch.Tensor:
    """Return ``x`` if it is a non-empty floating-point tensor (with ``ndim`` dims if given)."""
    _require_tensor(name, x)
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-dim tensor, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")
    return x


def require_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` if it holds no NaN and no infinity (one sync); name the first bad value."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = x[~finite].flatten()[0].item()
        raise ValueError(f"{name}: expected finite numbers, got {bad} (at least once)")
    return x


def require_shape(name: str, x: torch.Tensor, shape: tuple[int, ...], hint: str = "") -> None:
    """Raise unless ``x`` has exactly ``shape``; ``hint`` says where that shape comes from."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}{hint}, got {tuple(x.shape)}")


def require_same_shape(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """Raise unless ``x`` has exactly the shape of ``ref``."""
    require_shape(name, x, ref.shape, f" (the shape of {ref_name})")


def require_mask(name: str, mask: object, shape: torch.Size, prefix: bool = True) -> torch.Tensor:
    """Return ``mask`` as a bool tensor after checking its shape and that it holds only 0/1.

    With ``prefix=True`` also check that each row (last dim) is a run of ones followed by zeros,
    the convention for response tokens. This catches the common slip of passing a padding mask
    (1 = padding, as in TRL) where a validity mask is expected.
    """
    _require_tensor(name, mask)
    require_shape(name, mask, shape)
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name}: expected only 0/1 values")
    mask = mask.bool()
    if prefix and mask.dim() > 0 and not bool((mask[..., 1:] <= mask[..., :-1]).all()):
        raise ValueError(f"{name}: expected each row to be a prefix of ones (1 = valid token)")
    return mask


def require_number(
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float after checking it is a finite number in the given interval."""
    is_scalar_tensor = isinstance(value, torch.Tensor) and value.dim() == 0
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or is_scalar_tensor):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}")
    number = float(value)
    below = number <= low if low_open else number < low
    above = number >= high if high_open else number > high
    if not math.isfinite(number) or below or above:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return number


def require_int(name: str, value: object, low: int) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) with ``value >= low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


def require_choice(name: str, value: object, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def require_texts(name: str, texts: object) -> list[str]:
    """Return ``texts`` as a list if it is a non-empty list (or tuple) of strings.

    A single string is refused (it would be read as a list of characters), and so is a
    list holding anything but strings (``None``, numbers): the message names the first bad item.
    """
    if isinstance(texts, str):
        raise ValueError(f"{name}: expected a list of strings, got a single string {texts!r:.40}")
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"{name}: expected a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name}: expected a non-empty list of strings, got an empty list")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"{name}[{i}]: expected a string, got {type(text).__name__} {text!r:.40}"
            )
    return list(texts)


def require_callable(name: str, value: object, what: str = "a function") -> object:
    """Return ``value`` if it can be called; otherwise name ``name`` and ``what`` was expected."""
    if not callable(value):
        raise ValueError(f"{name}: expected {what}, got {type(value).__name__} {value!r:.40}")
    return value


DEVICE_TYPES = ("cpu", "cuda", "mps")


def require_device(value: object, name: str = "device") -> torch.device | None:
    """Return ``value`` as a ``torch.device`` if it names one of ``DEVICE_TYPES``.

    Accepts a ``torch.device`` or a string such as ``"cpu"``, ``"cuda"`` or ``"cuda:1"``;
    None is returned as None (the caller picks its default). Only the spelling is checked
    here: whether this machine has that GPU is torch's to say when a model is moved there.
    """
    if value is None:
        return None
    if isinstance(value, torch.device):
        device = value
    elif isinstance(value, str):
        try:
            device = torch.device(value)
        except RuntimeError:
            device = None
    else:
        raise ValueError(
            f"{name}: expected one of {list(DEVICE_TYPES)} (or 'cuda:N'), "
            f"a torch.device or None, got {type(value).__name__}"
        )
    if device is None or device.type not in DEVICE_TYPES:
        raise ValueError(
            f"{name}: expected one of {list(DEVICE_TYPES)} (or 'cuda:N'), "
            f"a torch.device or None, got {value!r}"
        )
    return device


def _require_tensor(name: str, x: object) -> None:
    if not isinstance(x, torch.Tensor):
        # ValueError, not TypeError: the package promises ValueError for every bad input
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
