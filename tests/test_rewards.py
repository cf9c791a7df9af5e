"""Tests for rlhf_edu.rewards: the Bradley-Terry pairwise loss and pair accuracy (lesson 02)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.rewards import pair_accuracy, pairwise_loss

SETTINGS = settings(max_examples=200, deadline=None)


class TestPairwiseLoss:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), scale=st.floats(0.1, 100.0))
    def test_matches_reference(self, seed, scale):
        gen = torch.Generator().manual_seed(seed)
        chosen, rejected = scale * torch.randn(2, 8, generator=gen, dtype=torch.float64)
        expected = -torch.log(torch.sigmoid(chosen - rejected)).mean()
        torch.testing.assert_close(pairwise_loss(chosen, rejected), expected)

    def test_known_values_and_stability(self):
        zeros = torch.zeros(4)
        assert pairwise_loss(zeros, zeros).item() == pytest.approx(math.log(2))
        # a huge wrong margin: the loss is the margin itself, not inf
        assert pairwise_loss(torch.tensor([0.0]), torch.tensor([1000.0])).item() == pytest.approx(
            1000.0
        )
        assert pairwise_loss(torch.tensor([1000.0]), torch.tensor([0.0])).item() == 0.0

    def test_gradient_pushes_chosen_up_and_rejected_down(self):
        chosen = torch.tensor([0.5, -1.0], requires_grad=True)
        rejected = torch.tensor([0.0, 0.0], requires_grad=True)
        pairwise_loss(chosen, rejected).backward()
        assert torch.all(chosen.grad < 0) and torch.all(rejected.grad > 0)
        # d/dc -log sigmoid(c - r) = -(1 - sigmoid(c - r)), averaged over the 2 pairs
        torch.testing.assert_close(chosen.grad, -(1 - torch.sigmoid(chosen.detach())) / 2)

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="rejected"):
            pairwise_loss(torch.zeros(3), torch.zeros(4))
        with pytest.raises(ValueError, match="chosen"):
            pairwise_loss([1.0], torch.zeros(1))
        with pytest.raises(ValueError, match="rejected"):
            pairwise_loss(torch.zeros(2), torch.zeros(2, dtype=torch.long))


class TestPairAccuracy:
    def test_counts_strict_wins(self):
        chosen = torch.tensor([1.0, 2.0, 0.0, -1.0])
        rejected = torch.tensor([0.0, 3.0, 0.0, -2.0])
        accuracy = pair_accuracy(chosen, rejected)
        assert type(accuracy) is float and accuracy == 0.5

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="rejected"):
            pair_accuracy(torch.zeros(3), torch.zeros(2))
        with pytest.raises(ValueError, match="chosen"):
            pair_accuracy(torch.zeros(0), torch.zeros(0))
