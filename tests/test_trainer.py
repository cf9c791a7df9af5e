import math

import pytest
import torch

from rlhf_edu import checkpoint
from rlhf_edu.trainer import PPOConfig, PPOTrainer

TRL_KEYS = [
    "objective/kl",
    "objective/entropy",
    "objective/non_score_reward",
    "objective/rlhf_reward",
    "objective/scores",
    "policy/approxkl_avg",
    "policy/clipfrac_avg",
    "loss/policy_avg",
    "loss/value_avg",
    "val/clipfrac_avg",
    "policy/entropy_avg",
    "val/ratio",
    "val/num_eos_tokens",
    "episode",
    "lr",
]

SMALL = {"batch_size": 16, "mini_batch_size": 8, "ppo_epochs": 2, "max_new_tokens": 8, "lr": 3e-4}


def make(tiny, reward_fn=None, **kw):
    cfg = PPOConfig(**{**SMALL, **kw})
    return PPOTrainer(
        cfg,
        tiny.fresh_policy(),
        tiny.ref_policy,
        tiny.tokenizer,
        reward_fn or tiny.reward,
        tiny.prompts,
        gold_fn=tiny.gold,
    )


def without_times(history):
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]


class TestConfig:
    @pytest.mark.parametrize(
        "kw, name",
        [
            ({"clip_eps": 1.5}, "clip_eps"),
            ({"beta": -0.1}, "beta"),
            ({"gamma": 1.1}, "gamma"),
            ({"lam": -0.1}, "lam"),
            ({"mini_batch_size": 5}, "mini_batch_size"),
            ({"steps": 0}, "steps"),
            ({"kl_kind": "k4"}, "kl_kind"),
            ({"lr": 0}, "lr"),
            ({"checkpoint_every": 2}, "checkpoint_dir"),
            ({"kl_target": -1.0}, "kl_target"),
            ({"beta": float("nan")}, "beta"),
            ({"lr": float("inf")}, "lr"),
            ({"lr": "3e-4"}, "lr"),
            ({"top_p": 0.0}, "top_p"),
            ({"top_k": -1}, "top_k"),
            ({"batch_size": 64.0}, "batch_size"),
            ({"min_new_tokens": 30, "max_new_tokens": 24}, "min_new_tokens"),
            ({"missing_eos_penalty": float("nan")}, "missing_eos_penalty"),
            ({"min_new_tokens": 0}, "min_new_tokens"),
            ({"weight_decay": -0.01}, "weight_decay"),
        ],
    )
    def test_bad_values_name_the_field(self, kw, name):
        with pytest.raises(ValueError, match=name):
            PPOConfig(**kw)

    def test_every_field_has_a_docstring(self):
        import inspect

        src = inspect.getsource(PPOConfig)
        for field in PPOConfig.__dataclass_fields__:
            after = src.split(f"    {field}:", 1)[1].splitlines()[1].strip()
            assert after.startswith('"""'), field


class TestStep:
    def test_metrics_named_as_trl_and_finite(self, tiny):
        tr = make(tiny, steps=1)
        m = tr.ppo_step()
        for key in TRL_KEYS + ["objective/gold", "time/generate", "time/optimize"]:
            assert key in m and math.isfinite(m[key]), key
        assert tr.step == 1 and tr.history == [m]

    def test_first_ratio_is_one(self, tiny):
        """One epoch, one minibatch: the update starts exactly at the sampling policy."""
        tr = make(tiny, steps=1, ppo_epochs=1, mini_batch_size=16)
        m = tr.ppo_step()
        assert m["val/ratio"] == pytest.approx(1.0, abs=1e-4)
        assert m["policy/clipfrac_avg"] == 0.0

    def test_training_raises_the_reward(self, tiny):
        tr = make(tiny, steps=12, batch_size=32, mini_batch_size=16, beta=0.02, lr=5e-4)
        h = tr.train(progress=False)
        first = sum(m["objective/scores"] for m in h[:3]) / 3
        last = sum(m["objective/scores"] for m in h[-3:]) / 3
        assert last > first + 0.3

    def test_policy_changes_reference_does_not(self, tiny):
        tr = make(tiny, steps=1)
        ref_before = [p.clone() for p in tiny.ref_policy.parameters()]
        tr.train(progress=False)
        assert all(torch.equal(a, b) for a, b in zip(ref_before, tiny.ref_policy.parameters()))
        changed = any(
            not torch.equal(a, b)
            for a, b in zip(tr.policy.parameters(), tiny.ref_policy.parameters())
        )
        assert changed

    def test_values_read_off_sampling_equal_a_forward_pass(self, tiny):
        """Step 5's values come from the hidden states sampling kept (no extra pass)."""
        tr = make(tiny, steps=1)
        roll = tr.sample_batch()
        assert roll.hidden is not None
        torch.nn.init.normal_(tr.value_head.linear.weight, std=0.1)  # a head that reads h
        kept = tr.values(roll)
        roll.hidden = None  # a rollout from elsewhere: the values need a forward pass
        m = roll.mask.bool()
        torch.testing.assert_close(kept[m], tr.values(roll)[m], atol=1e-5, rtol=1e-5)
        assert kept[m].std() > 0.01

    def test_a_rollout_from_elsewhere_gets_values_from_a_pass(self, tiny, monkeypatch):
        """Hidden states a caller's rollout carries may be another model's: not read."""
        tr = make(tiny, steps=1)
        roll = tr.sample_batch()
        roll.hidden = torch.full_like(roll.hidden, float("nan"))
        seen = []
        values = tr.values
        monkeypatch.setattr(tr, "values", lambda r: seen.append(r.hidden) or values(r))
        m = tr.ppo_step(roll)
        assert seen == [None] and math.isfinite(m["loss/value_avg"])
        assert tr.last_rollout.hidden is None, "no stale hidden states kept after the update"

    def test_updates_with_fused_kernels_and_gives_the_policy_back_as_it_was(self, tiny):
        from transformers.activations import NewGELUActivation

        tr = make(tiny, steps=1)
        seen = []
        loss = tr.minibatch_loss

        def spy(*args):
            seen.append(sum(isinstance(m, NewGELUActivation) for m in tr.policy.modules()))
            return loss(*args)

        tr.minibatch_loss = spy
        tr.ppo_step()
        assert seen == [0] * 4, "every minibatch of the update runs the fused GELU"
        n_layer = tiny.policy.config.n_layer
        assert sum(isinstance(m, NewGELUActivation) for m in tr.policy.modules()) == n_layer
        assert tr.optimizer.param_groups[0]["fused"] is True


class TestLengthsKlAndDecay:
    def lengths_sampled(self, tiny, monkeypatch, steps, **kw):
        """The length limit the trainer passes to sample() at each step."""
        import rlhf_edu.trainer as trainer_module

        limits, original = [], trainer_module.sample

        def spy(*args, **kwargs):
            limits.append(kwargs["max_new_tokens"])
            return original(*args, **kwargs)

        monkeypatch.setattr(trainer_module, "sample", spy)
        make(tiny, steps=steps, ppo_epochs=1, **kw).train(progress=False)
        return limits

    def test_default_samples_every_response_to_full_length(self, tiny, monkeypatch):
        assert PPOConfig().min_new_tokens is None
        assert self.lengths_sampled(tiny, monkeypatch, 4) == [SMALL["max_new_tokens"]] * 4

    def test_random_cap_only_when_asked(self, tiny, monkeypatch):
        limits = self.lengths_sampled(tiny, monkeypatch, 6, min_new_tokens=2)
        assert all(2 <= n <= SMALL["max_new_tokens"] for n in limits)
        assert len(set(limits)) > 1

    @pytest.mark.parametrize("kind", ["k1", "k3"])
    def test_objective_kl_is_the_penalised_estimator(self, tiny, kind):
        from rlhf_edu.generation import response_logprobs
        from rlhf_edu.kl import kl_estimate

        tr = make(tiny, steps=2, kl_kind=kind, beta=0.1)
        tr.ppo_step()  # move the policy away from the reference
        m = tr.ppo_step()
        roll = tr.last_rollout
        with torch.no_grad():
            ref_logprobs = response_logprobs(tiny.ref_policy, roll)
        mask = roll.mask.float()
        penalised = (kl_estimate(roll.logprobs, ref_logprobs, kind) * mask).sum(1).mean().item()
        log_ratio = ((roll.logprobs - ref_logprobs) * mask).sum(1).mean().item()
        assert m["objective/kl"] == pytest.approx(penalised, rel=1e-4, abs=1e-6)
        assert m["objective/kl_k1"] == pytest.approx(log_ratio, rel=1e-4, abs=1e-6)
        assert m["objective/non_score_reward"] == pytest.approx(-0.1 * m["objective/kl"], rel=1e-5)
        if kind == "k3":  # k3 and k1 differ once the policy has moved
            assert abs(m["objective/kl"] - m["objective/kl_k1"]) > 1e-4

    def test_weight_decay_is_a_field_passed_to_adamw(self, tiny):
        assert PPOConfig().weight_decay == 0.0  # TRL's default, not AdamW's 0.01
        assert make(tiny).optimizer.param_groups[0]["weight_decay"] == 0.0
        assert make(tiny, weight_decay=0.05).optimizer.param_groups[0]["weight_decay"] == 0.05


class TestNonFinite:
    def test_nan_reward_stops_with_step_and_quantity(self, tiny):
        def reward(texts):
            return torch.full((len(texts),), float("nan"))

        tr = make(tiny, reward_fn=reward, steps=2)
        before = [p.clone() for p in tr.policy.parameters()]
        with pytest.raises(FloatingPointError, match="step 1: reward score is nan"):
            tr.train(progress=False)
        assert all(torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))

    def test_inf_loss_stops_before_the_update(self, tiny):
        tr = make(tiny, steps=2)
        with torch.no_grad():
            tr.value_head.linear.bias.fill_(float("inf"))
        with pytest.raises(FloatingPointError, match="step 1: loss"):
            tr.train(progress=False)


class Interrupt(Exception):
    pass


class TestCheckpoints:
    def test_interrupted_run_resumes_to_the_same_result(self, tiny, tmp_path):
        kw = {"steps": 4, "checkpoint_every": 1}
        full = make(tiny, checkpoint_dir=str(tmp_path / "a"), **kw)
        full.train(progress=False)

        cut = make(tiny, checkpoint_dir=str(tmp_path / "b"), **kw)

        def stop_after_two(trainer, metrics):
            if trainer.step == 2:
                raise Interrupt

        cut.callbacks.append(stop_after_two)
        with pytest.raises(Interrupt):
            cut.train(progress=False)
        assert checkpoint.latest_checkpoint(tmp_path / "b").name == "step-000002"

        resumed = make(tiny, checkpoint_dir=str(tmp_path / "b"), **kw)
        resumed.train(resume=True, progress=False)
        assert resumed.step == 4 and len(resumed.history) == 4
        assert without_times(resumed.history) == without_times(full.history)
        for a, b in zip(resumed.policy.parameters(), full.policy.parameters()):
            torch.testing.assert_close(a, b)
        assert resumed.kl_ctl.beta == full.kl_ctl.beta

    def test_crash_while_writing_keeps_the_previous_checkpoint(self, tiny, tmp_path, monkeypatch):
        tr = make(tiny, steps=2, checkpoint_every=1, checkpoint_dir=str(tmp_path))
        tr.ppo_step()
        checkpoint.save_checkpoint(tr, tmp_path)
        tr.ppo_step()

        def broken_save(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(checkpoint.torch, "save", broken_save)
        with pytest.raises(OSError):
            checkpoint.save_checkpoint(tr, tmp_path)
        monkeypatch.undo()
        assert checkpoint.latest_checkpoint(tmp_path).name == "step-000001"
        fresh = make(tiny, steps=2, checkpoint_every=1, checkpoint_dir=str(tmp_path))
        assert checkpoint.load_checkpoint(fresh, tmp_path) and fresh.step == 1

    def test_resume_keeps_adamw_fused(self, tiny, tmp_path):
        kw = {"steps": 1, "checkpoint_every": 1, "checkpoint_dir": str(tmp_path)}
        make(tiny, **kw).train(progress=False)
        state = torch.load(tmp_path / "step-000001" / "trainer_state.pt", weights_only=False)
        for group in state["optimizer"]["param_groups"]:
            group["fused"] = None  # as an AdamW built before it was fused wrote it
        torch.save(state, tmp_path / "step-000001" / "trainer_state.pt")
        tr = make(tiny, **{**kw, "steps": 2})
        tr.train(resume=True, progress=False)
        assert tr.step == 2 and tr.optimizer.param_groups[0]["fused"] is True

    def test_resume_without_checkpoint_starts_from_zero(self, tiny, tmp_path):
        tr = make(tiny, steps=1, checkpoint_every=1, checkpoint_dir=str(tmp_path))
        tr.train(resume=True, progress=False)
        assert tr.step == 1
