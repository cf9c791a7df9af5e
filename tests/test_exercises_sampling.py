"""The lesson 01 checker passes the reference and names the right case for typical slips."""

import pytest
import torch

from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.sampling import check_sequence_logprob, reference_sequence_logprob


def _gather(x, tokens):
    return x.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def test_reference_passes(capsys):
    check_sequence_logprob(reference_sequence_logprob)
    assert "all 5 cases match" in capsys.readouterr().out


def test_reference_matches_a_plain_loop():
    torch.manual_seed(0)
    logits, tokens = torch.randn(2, 4, 6), torch.randint(0, 6, (2, 4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    expected = []
    for b in range(2):
        total = 0.0
        for t in range(4):
            if mask[b, t]:
                total += torch.log_softmax(logits[b, t], -1)[tokens[b, t]].item()
        expected.append(total)
    assert torch.allclose(reference_sequence_logprob(logits, tokens, mask), torch.tensor(expected))


WRONG = {
    "raw logits instead of log-probs": (
        lambda lg, tk, m: (_gather(lg, tk) * m).sum(-1),
        "one token of one sequence",
    ),
    "probabilities instead of log-probs": (
        lambda lg, tk, m: (_gather(lg.softmax(-1), tk) * m).sum(-1),
        "one token of one sequence",
    ),
    "mean instead of sum": (
        lambda lg, tk, m: (_gather(lg.log_softmax(-1), tk) * m).sum(-1) / m.sum(-1),
        "sum over the tokens",
    ),
    "sum over the whole batch": (
        lambda lg, tk, m: (_gather(lg.log_softmax(-1), tk) * m).sum(),
        r"one token of one sequence: expected shape \(1,\)",
    ),
    "forgetting the mask": (
        lambda lg, tk, m: _gather(lg.log_softmax(-1), tk).sum(-1),
        "padding after the end",
    ),
    "log of softmax": (
        lambda lg, tk, m: (_gather(lg.softmax(-1).log(), tk) * m).sum(-1),
        "very confident logits",
    ),
    "off by one position": (
        lambda lg, tk, m: (_gather(lg.log_softmax(-1).roll(1, dims=1), tk) * m).sum(-1),
        "sum over the tokens",
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answers_fail_on_the_right_case(name):
    fn, case = WRONG[name]
    with pytest.raises(ExerciseError, match=case):
        check_sequence_logprob(fn)


def test_not_implemented_propagates():
    def fn(logits, tokens, mask):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_sequence_logprob(fn)
