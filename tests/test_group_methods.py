"""GRPO and RLOO trainers (rlhf_edu/group_methods.py) on the tiny preset, with small batches."""

import math

import pytest
import torch

from rlhf_edu.beyond import group_advantages
from rlhf_edu.group_methods import GroupConfig, GroupTrainer, train_group_method

SMALL = {"steps": 1, "prompts_per_step": 4, "group_size": 4, "epochs": 1, "mini_batch_size": 16}
SMALL_LEN = {"max_new_tokens": 8}


def make(tiny, kind="grpo", reward_fn=None, **kw):
    cfg = GroupConfig(**{**SMALL, **SMALL_LEN, **kw})
    return GroupTrainer(
        kind,
        cfg,
        tiny.fresh_policy(),
        tiny.ref_policy,
        tiny.tokenizer,
        reward_fn or tiny.reward,
        tiny.prompts,
        gold_fn=tiny.gold,
    )


class TestGroupConfig:
    def test_defaults_are_valid(self):
        cfg = GroupConfig()
        assert cfg.batch_size == cfg.prompts_per_step * cfg.group_size

    @pytest.mark.parametrize(
        "kw, name",
        [
            ({"group_size": 1}, "group_size"),
            ({"prompts_per_step": 3, "group_size": 2, "mini_batch_size": 4}, "mini_batch_size"),
            ({"clip_eps": 1.5}, "clip_eps"),
            ({"beta": -0.1}, "beta"),
            ({"lr": 0}, "lr"),
            ({"steps": 0}, "steps"),
            ({"epochs": True}, "epochs"),
            ({"loss_aggregation": "mean"}, "loss_aggregation"),
            ({"scale_rewards": "no"}, "scale_rewards"),
            ({"min_new_tokens": 0}, "min_new_tokens"),
            ({"weight_decay": -0.01}, "weight_decay"),
            ({"top_k": -1}, "top_k"),
            ({"top_p": 0}, "top_p"),
            ({"missing_eos_penalty": float("nan")}, "missing_eos_penalty"),
        ],
    )
    def test_bad_values_name_the_field(self, kw, name):
        with pytest.raises(ValueError, match=name):
            GroupConfig(**{**SMALL, **kw})


class TestGroupTrainer:
    def test_bad_kind(self, tiny):
        with pytest.raises(ValueError, match="kind"):
            make(tiny, kind="ppo")

    def test_bad_prompts(self, tiny):
        with pytest.raises(ValueError, match="prompts"):
            GroupTrainer(
                "grpo", GroupConfig(**SMALL), tiny.fresh_policy(), tiny.ref_policy,
                tiny.tokenizer, tiny.reward, "a single string",
            )  # fmt: skip

    @pytest.mark.parametrize("kind", ["grpo", "rloo"])
    def test_one_step_metrics_and_groups(self, tiny, kind):
        tr = make(tiny, kind)
        m = tr.group_step()
        for key in ("objective/scores", "objective/gold", "objective/kl", "policy/clipfrac_avg",
                    "loss/policy_avg", "episode", "step", "time/step"):  # fmt: skip
            assert key in m
        assert m["step"] == 1 and m["episode"] == 16 and tr.step == 1
        prompts = tr.last_rollout.prompts
        assert len(prompts) == 16
        for g in range(4):  # consecutive groups of G share their prompt
            assert len(set(prompts[4 * g : 4 * g + 4])) == 1
        # One epoch, one minibatch: the update starts at the sampling policy (ratio exactly 1).
        assert m["val/ratio"] == pytest.approx(1.0, abs=1e-5)
        assert m["policy/clipfrac_avg"] == 0.0
        assert abs(m["objective/kl"]) < 1e-3  # the policy is the reference before the update

    def test_constant_reward_gives_zero_advantages(self, tiny):
        tr = make(tiny, "grpo", reward_fn=lambda texts: torch.ones(len(texts)), beta=0.0)
        m = tr.group_step()
        assert m["objective/frac_zero_std"] == 1.0
        assert m["loss/policy_avg"] == 0.0

    def test_grpo_kl_loss_term(self, tiny):
        tr = make(tiny, "grpo", epochs=2, mini_batch_size=8, lr=1e-3, beta=0.1)
        m = tr.group_step()
        assert m["loss/kl_avg"] > 0  # k3 >= 0, and > 0 once the policy has moved
        m_rloo = make(tiny, "rloo").group_step()
        assert m_rloo["loss/kl_avg"] == 0.0  # RLOO has its KL in the reward, not the loss

    def test_rloo_reward_includes_the_kl(self, tiny):
        tr = make(tiny, "rloo", beta=0.5, steps=2, lr=3e-3, epochs=2, mini_batch_size=8)
        tr.train(progress=False)
        m = tr.history[-1]
        assert m["objective/kl"] != 0.0
        expected = m["objective/scores"] - 0.5 * m["objective/kl"]
        assert m["objective/rlhf_reward"] == pytest.approx(expected, abs=1e-5)

    def test_nan_reward_names_the_step(self, tiny):
        tr = make(tiny, reward_fn=lambda texts: torch.full((len(texts),), math.nan))
        with pytest.raises(FloatingPointError, match="step 1: reward score"):
            tr.group_step()

    def test_length_limit(self, tiny):
        full = make(tiny, reward_fn=lambda texts: torch.zeros(len(texts)))
        full.group_step()
        assert full.last_rollout.mask.shape[1] <= 8
        # a drawn limit, as PPOConfig.min_new_tokens: min = max = 3 forces 3 tokens at most
        short = make(tiny, min_new_tokens=3, max_new_tokens=3)
        short.group_step()
        assert short.last_rollout.mask.shape[1] <= 3
        with pytest.raises(ValueError, match="min_new_tokens"):
            GroupConfig(**{**SMALL, "min_new_tokens": 30})

    def test_same_seed_same_run(self, tiny):
        a = make(tiny, seed=3).group_step()
        b = make(tiny, seed=3).group_step()
        assert a["objective/scores"] == b["objective/scores"]
        assert a["loss/policy_avg"] == b["loss/policy_avg"]


class TestLossAgainstHandComputation:
    """One GRPO step's first minibatch loss equals the formula computed by hand."""

    @pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean", "constant"])
    @pytest.mark.parametrize("scale", [True, False])
    def test_first_loss(self, tiny, aggregation, scale):
        from rlhf_edu.generation import response_logprobs

        tr = make(tiny, "grpo", beta=0.2, loss_aggregation=aggregation, scale_rewards=scale)
        m = tr.group_step()  # one epoch, one minibatch: one update
        roll = tr.last_rollout
        # Before the update the policy was the reference: ratio 1, k3 = 0, so the loss is
        # minus the aggregate of the broadcast advantages, computed here by a plain loop.
        adv = group_advantages(tiny.reward(roll.texts), 4, "grpo", scale_rewards=scale)
        lengths = roll.mask.sum(1).tolist()
        if aggregation == "token_mean":
            expected = -sum(a * n for a, n in zip(adv.tolist(), lengths)) / sum(lengths)
        elif aggregation == "sequence_mean":
            expected = -sum(adv.tolist()) / len(lengths)
        else:
            expected = -sum(a * n for a, n in zip(adv.tolist(), lengths)) / (len(lengths) * 8)
        assert m["loss/policy_avg"] == pytest.approx(expected, abs=1e-4)
        assert m["loss/kl_avg"] == pytest.approx(0.0, abs=1e-6)
        ref = response_logprobs(tiny.ref_policy, roll)
        torch.testing.assert_close(ref, roll.logprobs, atol=1e-5, rtol=0)


def test_train_group_method_runs_callbacks(tiny):
    seen = []
    history = train_group_method(
        "rloo",
        GroupConfig(**{**SMALL, **SMALL_LEN, "steps": 2}),
        tiny.fresh_policy(),
        tiny.ref_policy,
        tiny.tokenizer,
        tiny.reward,
        tiny.prompts,
        gold_fn=tiny.gold,
        callbacks=[lambda trainer, metrics: seen.append((trainer.step, metrics["step"]))],
        progress=False,
    )
    assert [m["step"] for m in history] == [1, 2]
    assert seen == [(1, 1), (2, 2)]


class TestReadAsPPOMinusTheseLines:
    """GroupTrainer is a PPOTrainer that replaces only what differs (issue: one trainer)."""

    REPLACED = frozenset({"make_value_head", "trainable_parameters", "make_kl_controller", "epochs",
                "kl_kind", "next_prompts", "advantages", "minibatch_loss", "extra_metrics",
                "resume_from_checkpoint", "checkpoint_due"})  # fmt: skip

    def test_a_subclass_that_keeps_ppos_step_and_loop(self):
        from rlhf_edu.trainer import PPOTrainer

        assert issubclass(GroupTrainer, PPOTrainer)
        for name in ("ppo_step", "train", "forward", "autocast"):
            assert name not in vars(GroupTrainer), f"{name} is PPO's own, not a copy"
        assert GroupTrainer.group_step is PPOTrainer.ppo_step
        overridden = {n for n in vars(GroupTrainer) if not n.startswith("__")} - {"group_step"}
        assert overridden == self.REPLACED

    def test_no_value_head_and_only_the_policy_is_optimised(self, tiny):
        tr = make(tiny)
        assert tr.value_head is None
        ids = {id(q) for group in tr.optimizer.param_groups for q in group["params"]}
        assert ids == {id(q) for q in tr.policy.parameters()}

    def test_weight_decay_reaches_adamw(self, tiny):
        assert make(tiny).optimizer.param_groups[0]["weight_decay"] == 0.0
        assert make(tiny, weight_decay=0.02).optimizer.param_groups[0]["weight_decay"] == 0.02

    def test_resume_is_refused_by_name(self, tiny):
        with pytest.raises(ValueError, match="resume"):
            make(tiny).train(resume=True, progress=False)

    def test_missing_eos_penalty_lowers_the_score(self, tiny):
        a = make(tiny, seed=4).group_step()
        b = make(tiny, seed=4, missing_eos_penalty=1.0).group_step()
        no_eos = 16 - a["val/num_eos_tokens"]  # responses that hit the 8-token limit
        assert no_eos > 0, "the case needs responses without EOS"
        assert b["objective/scores"] == pytest.approx(a["objective/scores"] - no_eos / 16, abs=1e-5)
