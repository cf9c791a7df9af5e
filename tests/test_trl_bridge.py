"""The TRL bridge (rlhf_edu/trl_bridge.py): reward function, config translation, status, history.

The checks against TRL's own config classes skip when trl==1.12.0 is not installed.
"""

import dataclasses
import importlib
import os
import sys

import pytest
import torch

from rlhf_edu import trl_bridge
from rlhf_edu.group_methods import GroupConfig
from rlhf_edu.trainer import PPOConfig

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


class TestRewardFn:
    def test_scores_prompt_plus_completion(self, tiny):
        fn = trl_bridge.make_reward_fn(tiny.reward)
        prompts, completions = tiny.prompts[:3], [" great.", " awful.", " fine."]
        got = fn(prompts, completions, extra_column=[1, 2, 3])
        expected = tiny.reward([p + c for p, c in zip(prompts, completions)]).tolist()
        assert got == expected and all(isinstance(x, float) for x in got)
        assert fn.__name__ == "reward_model"

    def test_bad_inputs(self, tiny):
        with pytest.raises(ValueError, match="reward"):
            trl_bridge.make_reward_fn("not callable")
        fn = trl_bridge.make_reward_fn(tiny.reward)
        with pytest.raises(ValueError, match="completions"):
            fn(["a", "b"], ["x"])


class TestKwargs:
    def test_ppo_shape(self):
        cfg = PPOConfig(steps=5, batch_size=64, mini_batch_size=16, ppo_epochs=3, beta=0.1)
        kw = trl_bridge.ppo_kwargs(cfg)
        # one optimizer step per minibatch: the whole batch per device, no accumulation
        assert kw["per_device_train_batch_size"] == 64 and kw["gradient_accumulation_steps"] == 1
        assert kw["num_mini_batches"] == 4 and kw["num_ppo_epochs"] == 3
        assert kw["total_episodes"] == 5 * 64
        assert kw["kl_coef"] == 0.1 and kw["cliprange"] == cfg.clip_eps
        assert kw["lr_scheduler_type"] == "constant"

    def test_ppo_rejects_k2(self):
        with pytest.raises(ValueError, match="kl_estimator"):
            trl_bridge.ppo_kwargs(PPOConfig(kl_kind="k2"))
        with pytest.raises(ValueError, match="config"):
            trl_bridge.ppo_kwargs(GroupConfig())

    def test_grpo_shape(self):
        cfg = GroupConfig(steps=3, prompts_per_step=8, group_size=4, epochs=2, mini_batch_size=16)
        kw = trl_bridge.grpo_kwargs(cfg)
        assert kw["num_generations"] == 4 and kw["generation_batch_size"] == 32
        assert kw["per_device_train_batch_size"] == 16 and kw["num_iterations"] == 2
        assert kw["max_steps"] == 3 * 2 * 2  # steps * minibatches per batch * epochs
        assert kw["epsilon"] == cfg.clip_eps and kw["beta"] == cfg.beta
        assert kw["disable_dropout"] is True
        with pytest.raises(ValueError, match="config"):
            trl_bridge.grpo_kwargs(PPOConfig())

    @pytest.mark.parametrize(
        ("aggregation", "loss_type"),
        [("sequence_mean", "grpo"), ("token_mean", "bnpo"), ("constant", "dr_grpo")],
    )
    def test_grpo_loss_aggregation_in_trl_names(self, aggregation, loss_type):
        kw = trl_bridge.grpo_kwargs(GroupConfig(loss_aggregation=aggregation))
        assert kw["loss_type"] == loss_type

    def test_grpo_clip_higher_and_sequence_ratio_in_trl_names(self):
        kw = trl_bridge.grpo_kwargs(GroupConfig())
        assert kw["epsilon_high"] == kw["epsilon"] and kw["importance_sampling_level"] == "token"
        kw = trl_bridge.grpo_kwargs(GroupConfig(clip_eps_high=0.28, importance_sampling="sequence"))
        assert kw["epsilon_high"] == 0.28 and kw["importance_sampling_level"] == "sequence"

    def test_grpo_weight_decay_and_filtering_carried(self):
        kw = trl_bridge.grpo_kwargs(GroupConfig(weight_decay=0.02, top_k=5, top_p=0.9))
        assert (kw["weight_decay"], kw["top_k"], kw["top_p"]) == (0.02, 5, 0.9)
        assert trl_bridge.grpo_kwargs(GroupConfig())["weight_decay"] == 0.0
        with pytest.raises(ValueError, match="missing_eos_penalty"):
            trl_bridge.grpo_kwargs(GroupConfig(missing_eos_penalty=1.0))

    def test_grpo_std_scaling_in_trl_names(self):
        assert trl_bridge.grpo_kwargs(GroupConfig())["scale_rewards"] == "group"
        assert trl_bridge.grpo_kwargs(GroupConfig(scale_rewards=False))["scale_rewards"] == "none"


class TestConfigTable:
    def test_one_row_per_field(self):
        rows = trl_bridge.config_table(PPOConfig(), GroupConfig(loss_aggregation="constant"))
        assert [r["ours"] for r in rows] == [
            *(f.name for f in dataclasses.fields(PPOConfig)),
            *trl_bridge.GROUP_ONLY_FIELDS,
        ]
        assert set(trl_bridge.GROUP_ONLY_FIELDS) <= {
            f.name for f in dataclasses.fields(GroupConfig)
        }
        by = {r["ours"]: r for r in rows}
        assert by["clip_eps"]["TRL PPOConfig"] == "cliprange"
        assert by["clip_range_value"]["TRL PPOConfig"] == "cliprange_value"
        assert by["beta"]["TRL PPOConfig"] == "kl_coef" and by["beta"]["TRL GRPOConfig"] == "beta"
        assert by["ppo_epochs"]["TRL PPOConfig"] == "num_ppo_epochs"
        assert by["max_new_tokens"]["TRL PPOConfig"] == "response_length"
        assert by["mini_batch_size"]["TRL value"] == 4
        assert by["ent_coef"]["TRL PPOConfig"] == "-"
        assert by["loss_aggregation"]["TRL GRPOConfig"] == "loss_type"
        assert by["loss_aggregation"]["GRPO value"] == "dr_grpo"

    def test_every_ppo_field_is_mapped(self):
        assert set(trl_bridge.FIELD_MAP) == {f.name for f in dataclasses.fields(PPOConfig)}


class TestStatus:
    def test_without_trl(self, monkeypatch):
        monkeypatch.setattr(
            trl_bridge.md,
            "version",
            lambda name: (_ for _ in ()).throw(trl_bridge.md.PackageNotFoundError(name)),
        )
        s = trl_bridge.trl_status()
        assert s == {"version": None, "grpo": False, "ppo": False, "message": s["message"]}
        assert 'pip install "rlhf-edu[trl]"' in s["message"]

    def test_newer_trl_without_experimental_ppo(self, monkeypatch):
        pytest.importorskip("trl")
        monkeypatch.setitem(sys.modules, "trl.experimental.ppo", None)  # import -> ImportError
        s = trl_bridge.trl_status()
        assert s["grpo"] and not s["ppo"]
        assert "trl.experimental.ppo" in s["message"] and "rlhf-edu[trl]" in s["message"]


@pytest.fixture(scope="module")
def trl_configs():
    pytest.importorskip("trl.experimental.ppo")
    trl = importlib.import_module("trl")
    ppo = importlib.import_module("trl.experimental.ppo")
    return trl.GRPOConfig, ppo.PPOConfig


class TestAgainstTRLConfigs:
    """The names we map to exist in TRL's config classes, and TRL accepts our kwargs."""

    def test_field_names_exist(self, trl_configs):
        grpo_cls, ppo_cls = trl_configs
        ppo_fields = {f.name for f in dataclasses.fields(ppo_cls)}
        grpo_fields = {f.name for f in dataclasses.fields(grpo_cls)}
        for ppo_name, _, grpo_name, _ in trl_bridge.FIELD_MAP.values():
            assert ppo_name is None or ppo_name in ppo_fields, ppo_name
            assert grpo_name is None or grpo_name in grpo_fields, grpo_name
        for grpo_name, _ in trl_bridge.GROUP_ONLY_FIELDS.values():
            assert grpo_name is None or grpo_name in grpo_fields, grpo_name

    def test_loss_types_are_trls(self, trl_configs):
        """Each loss_type we map to is one TRL's GRPO trainer branches on, with our normaliser."""
        import inspect

        from trl.trainer import grpo_trainer

        source = inspect.getsource(grpo_trainer.GRPOTrainer)
        lines = {  # the line of TRL's loss that divides as our aggregation does
            "grpo": "((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()",
            "bnpo": "(per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)",
            "dr_grpo": "(per_token_loss * mask).sum() / (per_token_loss.size(0) * self.max_completion_length)",
        }
        assert set(lines) == set(trl_bridge.LOSS_TYPES.values())
        for loss_type, line in lines.items():
            assert f'self.loss_type == "{loss_type}"' in source or f'"{loss_type}"' in source
            assert line in source, f"TRL's {loss_type} normaliser changed: {line}"

    def test_configs_construct(self, trl_configs, tmp_path):
        grpo_cls, ppo_cls = trl_configs
        g = grpo_cls(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                     **trl_bridge.grpo_kwargs(GroupConfig()))  # fmt: skip
        assert g.steps_per_generation == 4 and g.num_generations == 4
        cfg = PPOConfig(batch_size=64, mini_batch_size=16)
        args = ppo_cls(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                       **trl_bridge.ppo_kwargs(cfg))  # fmt: skip
        assert args.num_mini_batches == 4 and args.per_device_train_batch_size == 64


def test_grpo_history_groups_optimizer_steps():
    cfg = GroupConfig(steps=2, prompts_per_step=4, group_size=2, epochs=1, mini_batch_size=4)
    log = [  # two optimizer steps per batch; rewards are logged once per batch
        {"step": 1, "reward": 1.0, "kl": 0.1, "loss": 0.5},
        {"step": 2, "loss": 0.3},
        {"step": 3, "reward": 2.0, "kl": 0.3, "loss": 0.1},
        {"step": 4, "loss": 0.1},
        {"step": 4, "train_runtime": 1.0},
    ]
    hist = trl_bridge.grpo_history(log, cfg)
    assert [h["step"] for h in hist] == [1, 2] and [h["episode"] for h in hist] == [8, 16]
    assert hist[0]["objective/scores"] == 1.0 and hist[1]["kl/token_mean"] == 0.3
    assert hist[0]["loss"] == pytest.approx(0.5)


def test_trl_grpo_runs_two_steps_with_our_reward(tiny, tmp_path):
    """A smoke run of TRL's GRPOTrainer on the tiny policy with our reward function."""
    pytest.importorskip("trl")
    import copy

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    cfg = GroupConfig(steps=2, prompts_per_step=2, group_size=4, epochs=1, mini_batch_size=8,
                      max_new_tokens=6)  # fmt: skip
    args = GRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, logging_steps=1,
                      save_strategy="no", disable_tqdm=True, **trl_bridge.grpo_kwargs(cfg))  # fmt: skip
    trainer = GRPOTrainer(
        model=tiny.fresh_policy(),
        reward_funcs=trl_bridge.make_reward_fn(tiny.reward),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": tiny.prompts[:16]}),
        processing_class=copy.deepcopy(tiny.tokenizer),
    )
    trainer.train()
    hist = trl_bridge.grpo_history(trainer.state.log_history, cfg)
    assert [h["step"] for h in hist] == [1, 2]
    assert all(torch.isfinite(torch.tensor(h["objective/scores"])) for h in hist)
