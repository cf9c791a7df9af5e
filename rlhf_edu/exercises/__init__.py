"""Checkers for the lessons' exercises: compare a learner's function with the reference.

Each lesson has a module here (``exercises.<topic>``) with ``check_<name>(fn)``: it runs
the learner's ``fn`` on cases that each isolate one thing (a case of the clipped
objective, a padded position, ...), and raises :class:`ExerciseError` naming the case with
the expected and the obtained values, or prints a short success line.
"""

from __future__ import annotations

import torch


class ExerciseError(AssertionError):
    """A learner's answer differs from the reference on a named case."""


def compare(case: str, got, expected, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise :class:`ExerciseError` saying which ``case`` differs, with expected vs got."""
    if not isinstance(got, torch.Tensor):
        try:
            got = torch.as_tensor(got, dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise ExerciseError(f"{case}: expected a tensor, got {type(got).__name__}") from err
    expected = torch.as_tensor(expected)
    if got.shape != expected.shape:
        raise ExerciseError(
            f"{case}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        )
    got_f, exp_f = got.detach().float().cpu(), expected.detach().float().cpu()
    if not torch.allclose(got_f, exp_f, atol=atol, rtol=rtol, equal_nan=False):
        where = (~torch.isclose(got_f, exp_f, atol=atol, rtol=rtol)).nonzero()
        first = tuple(where[0].tolist()) if len(where) else ()
        raise ExerciseError(
            f"{case}: expected {_fmt(exp_f)}, got {_fmt(got_f)}"
            + (f" (first difference at index {first})" if first else "")
        )


def learner_gradient(case: str, got, wrt: torch.Tensor, hint: str) -> torch.Tensor:
    """d ``got.sum()`` / d ``wrt`` for a learner's result (zeros where ``wrt`` is unused).

    Raises :class:`ExerciseError` ``"<case>: <hint>"`` when ``got`` carries no autograd graph
    (a detached result, ``.item()``, numpy), so the checker can name the mistake.
    """
    if not (isinstance(got, torch.Tensor) and got.requires_grad):
        raise ExerciseError(f"{case}: {hint}")
    (grad,) = torch.autograd.grad(got.sum(), wrt, allow_unused=True)
    return torch.zeros_like(wrt) if grad is None else grad


def _fmt(x: torch.Tensor) -> str:
    if x.numel() <= 8:
        return str([round(v, 5) for v in x.flatten().tolist()] if x.dim() else round(x.item(), 5))
    return f"tensor of shape {tuple(x.shape)}, first values {[round(v, 4) for v in x.flatten()[:4].tolist()]}"


def passed(name: str, n_cases: int) -> None:
    """Print the success line."""
    print(f"✓ {name}: all {n_cases} cases match the reference")
