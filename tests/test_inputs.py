"""Issue 12: what a learner might type wrongly gets a ValueError naming the argument.

Cross-cutting cases: the texts a reward model or the gold judge scores, devices, and the
inputs a PPO trainer checks when it is built or resumed. Module-specific cases live in the
test file of their module (tests/test_generation.py for prompts and sampling arguments).
"""

import os

import pytest
import torch

from rlhf_edu import checkpoint, corpus
from rlhf_edu._checks import require_device
from rlhf_edu.evaluation import evaluate_policy
from rlhf_edu.exercises.advantages import check_gae
from rlhf_edu.exercises.clipping import check_clipped_surrogate
from rlhf_edu.exercises.kl import check_k3
from rlhf_edu.exercises.reinforce import check_reinforce_loss
from rlhf_edu.exercises.reward_model import check_pairwise_loss
from rlhf_edu.exercises.sampling import check_sequence_logprob
from rlhf_edu.judge import GoldJudge, gold_score, gold_scores
from rlhf_edu.presets import load_preset
from rlhf_edu.reinforce import reinforce_loss
from rlhf_edu.rewards import pairwise_loss
from rlhf_edu.trainer import PPOConfig, PPOTrainer
from rlhf_edu.widgets.clip import plot_clip
from rlhf_edu.widgets.sampling import filter_logits, next_token_probs

BAD_TEXTS = [
    ([], r"^texts: expected a non-empty list of strings, got an empty list$"),
    ("a great film", r"^texts: expected a list of strings, got a single string 'a great film'$"),
    (["a great film", None], r"^texts\[1\]: expected a string, got NoneType None$"),
    ([3], r"^texts\[0\]: expected a string, got int 3$"),
    (None, r"^texts: expected a list of strings, got NoneType$"),
]


class TestTextsToScore:
    @pytest.mark.parametrize("texts, message", BAD_TEXTS)
    def test_reward_model(self, tiny, texts, message):
        with pytest.raises(ValueError, match=message):
            tiny.reward(texts)

    @pytest.mark.parametrize("texts, message", BAD_TEXTS)
    def test_reward_model_forward(self, tiny, texts, message):
        with pytest.raises(ValueError, match=message):
            tiny.reward.forward(texts)

    @pytest.mark.parametrize("texts, message", BAD_TEXTS)
    def test_gold_judge(self, texts, message):
        with pytest.raises(ValueError, match=message):
            GoldJudge()(texts)
        with pytest.raises(ValueError, match=message):
            gold_scores(texts)

    def test_gold_score_of_one_text(self):
        with pytest.raises(ValueError, match="^text: expected a string, got NoneType None$"):
            gold_score(None)

    def test_tuples_are_lists_too(self, tiny):
        texts = ("a great film", "a dull film")
        assert torch.equal(tiny.reward(texts), tiny.reward(list(texts)))
        assert torch.equal(GoldJudge()(texts), GoldJudge()(list(texts)))

    def test_empty_string_scores_as_the_bos_token(self, tiny):
        bos = tiny.reward.tokenizer.bos_token
        scores = tiny.reward(["", "a great film"])
        assert scores.shape == (2,) and torch.isfinite(scores).all()
        torch.testing.assert_close(scores[0], tiny.reward([bos])[0])
        assert tiny.reward([""]).shape == (1,)
        assert GoldJudge()([""]).tolist() == [0.0]

    def test_text_longer_than_the_context_is_truncated(self, tiny):
        assert tiny.reward.model.config.n_positions == 128
        assert tiny.reward.max_length == 128  # the preset asks for 256; the context has 128
        long = "the plot was good . " * 60
        assert len(tiny.reward.tokenizer(long)["input_ids"]) > 128
        ids = tiny.reward.encode([long])["input_ids"]
        assert ids.shape == (1, 128)
        assert torch.isfinite(tiny.reward([long])).all()

    @pytest.mark.parametrize("batch_size", [0, 2.5, None])
    def test_batch_size(self, tiny, batch_size):
        with pytest.raises(ValueError, match="^batch_size: expected an int >= 1"):
            tiny.reward(["a great film"], batch_size=batch_size)


# -- the PPO trainer: prompts, context, reward functions, resumed runs -----------------------


SMALL = {"batch_size": 8, "mini_batch_size": 4, "ppo_epochs": 1, "max_new_tokens": 6}


def trainer(tiny, reward_fn=None, prompts=None, gold_fn=None, **kw):
    return PPOTrainer(
        PPOConfig(**{**SMALL, **kw}),
        tiny.fresh_policy(),
        tiny.ref_policy,
        tiny.tokenizer,
        tiny.reward if reward_fn is None else reward_fn,
        tiny.prompts if prompts is None else prompts,
        gold_fn=gold_fn,
    )


class TestTrainerInputs:
    @pytest.mark.parametrize(
        "prompts, message",
        [
            ([], r"^prompts: expected a non-empty list of strings, got an empty list$"),
            ("the plot", r"^prompts: expected a list of strings, got a single string"),
            (["the plot", 7], r"^prompts\[1\]: expected a string, got int 7$"),
        ],
    )
    def test_prompts(self, tiny, prompts, message):
        with pytest.raises(ValueError, match=message):
            trainer(tiny, prompts=prompts)

    def test_reward_fn_must_be_callable(self, tiny):
        with pytest.raises(ValueError, match="^reward_fn: expected a function texts -> scores"):
            trainer(tiny, reward_fn=[1.0])
        with pytest.raises(ValueError, match="^gold_fn: expected a function texts -> scores"):
            trainer(tiny, gold_fn="gold")

    def test_max_new_tokens_past_the_policy_context(self, tiny):
        assert tiny.policy.config.n_positions == 128
        prompts = ["the plot", "it is a film about a dog"]
        longest = len(tiny.tokenizer(prompts[1])["input_ids"])
        message = (
            r"^max_new_tokens \(with the longest prompt, prompts\[1\]\): "
            rf"{longest} prompt tokens \+ max_new_tokens=200 do not fit the model's context of "
            rf"128 positions; lower max_new_tokens to at most {128 - longest}$"
        )
        with pytest.raises(ValueError, match=message):
            trainer(tiny, prompts=prompts, max_new_tokens=200)
        trainer(tiny, prompts=prompts, max_new_tokens=128 - longest)  # just fits

    def test_an_empty_prompt_counts_its_bos_token(self, tiny):
        with pytest.raises(ValueError, match=r"prompts\[0\]\): 1 prompt tokens .* at most 127$"):
            trainer(tiny, prompts=[""], max_new_tokens=128)
        trainer(tiny, prompts=[""], max_new_tokens=127)

    def test_a_prompt_too_long_for_max_new_tokens(self, tiny):
        long = "the plot was good . " * 30
        with pytest.raises(ValueError, match=r"prompts\[2\]\): \d+ prompt tokens \+ max_new_"):
            trainer(tiny, prompts=["a", "b", long])

    @pytest.mark.parametrize(
        "returned, got",
        [
            (lambda n: ["good"] * n, r"a list of 8 items of type str, first 'good'"),
            (lambda n: torch.zeros(n, 1), r"a tensor of shape \(8, 1\)"),
            (lambda n: torch.zeros(n + 1), r"a tensor of shape \(9,\)"),
            (lambda n: 1.0, "float 1.0"),
            (lambda n: None, "NoneType None"),
        ],
    )
    def test_reward_fn_output_names_reward_fn_step_and_what_it_returned(self, tiny, returned, got):
        tr = trainer(tiny, reward_fn=lambda texts: returned(len(texts)), steps=2)
        before = [p.clone() for p in tr.policy.parameters()]
        message = (
            r"^step 1: reward_fn: expected one number per text, a \(8,\) tensor or a list of 8 "
            rf"numbers; got {got}"
        )
        with pytest.raises(ValueError, match=message):
            tr.train(progress=False)
        assert all(torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))

    def test_reward_fn_may_return_a_list_of_floats(self, tiny):
        tr = trainer(tiny, reward_fn=lambda texts: [float(len(t) % 3) for t in texts], steps=1)
        tr.train(progress=False)
        assert tr.step == 1

    def test_gold_fn_output(self, tiny):
        tr = trainer(tiny, gold_fn=lambda texts: "gold", steps=1)
        with pytest.raises(ValueError, match=r"^step 1: gold_fn: expected one number per text"):
            tr.train(progress=False)

    def test_nan_reward_names_the_step_and_the_quantity(self, tiny):
        tr = trainer(tiny, reward_fn=lambda texts: [float("nan")] * len(texts), steps=1)
        with pytest.raises(FloatingPointError, match="^step 1: reward score is nan .*reward_fn"):
            tr.train(progress=False)


class TestResume:
    def written(self, tiny, root, **kw):
        tr = trainer(tiny, steps=2, checkpoint_every=1, checkpoint_dir=str(root), **kw)
        tr.train(progress=False)
        return tr

    def test_another_config_is_refused_naming_old_and_new_values(self, tiny, tmp_path):
        self.written(tiny, tmp_path)
        tr = trainer(
            tiny,
            steps=4,
            checkpoint_every=1,
            checkpoint_dir=str(tmp_path),
            batch_size=4,
            lr=1e-4,
            beta=0.2,
        )
        message = (
            rf"^resume: {tmp_path / 'step-000002'} was written with another config "
            r"\(batch_size: 8 -> 4; lr: 0.0003 -> 0.0001; beta: 0.05 -> 0.2\)\. "
            r"Resume with the checkpoint's values, or give a new checkpoint_dir to start "
            r"afresh; only steps, checkpoint_every, checkpoint_dir may change on resume$"
        )
        before = [p.clone() for p in tr.policy.parameters()]
        with pytest.raises(ValueError, match=message):
            tr.train(resume=True, progress=False)
        assert tr.step == 0
        assert all(torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))

    def test_more_steps_may_be_asked_for(self, tiny, tmp_path):
        self.written(tiny, tmp_path)
        tr = trainer(tiny, steps=3, checkpoint_every=2, checkpoint_dir=str(tmp_path))
        tr.train(resume=True, progress=False)
        assert tr.step == 3 and len(tr.history) == 3

    @pytest.mark.parametrize(
        "file, damage",
        [
            ("policy.safetensors", "truncate"),
            ("value_head.safetensors", "garbage"),
            ("trainer_state.pt", "truncate"),
            ("trainer_state.pt", "empty"),
        ],
    )
    def test_damaged_newest_falls_back_to_the_previous_with_a_warning(
        self, tiny, tmp_path, file, damage
    ):
        self.written(tiny, tmp_path)
        newest, previous = tmp_path / "step-000002", tmp_path / "step-000001"
        target = newest / file
        data = target.read_bytes()
        target.write_bytes(
            {"truncate": data[: len(data) // 2], "garbage": b"x" * 64, "empty": b""}[damage]
        )
        tr = trainer(tiny, steps=2, checkpoint_every=1, checkpoint_dir=str(tmp_path))
        with pytest.warns(UserWarning) as caught:
            assert checkpoint.load_checkpoint(tr, tmp_path)
        text = str(caught[0].message)
        assert text.startswith(f"resume: {target} is damaged (")
        assert text.endswith(f"; resuming from the previous checkpoint {previous}")
        assert tr.step == 1 and len(tr.history) == 1

    def test_nothing_readable_stops_naming_the_damaged_files(self, tiny, tmp_path):
        self.written(tiny, tmp_path)
        for step in ("step-000001", "step-000002"):
            (tmp_path / step / "policy.safetensors").write_bytes(b"")
        tr = trainer(tiny, steps=2, checkpoint_every=1, checkpoint_dir=str(tmp_path))
        message = (
            rf"^checkpoint_dir: no checkpoint in {tmp_path} can be read: "
            rf"{tmp_path / 'step-000002' / 'policy.safetensors'} is damaged \(.*\); "
            rf"{tmp_path / 'step-000001' / 'policy.safetensors'} is damaged \(.*\)\. Delete the "
            r"damaged checkpoints, or give a new checkpoint_dir, to start afresh$"
        )
        with pytest.raises(ValueError, match=message):
            tr.train(resume=True, progress=False)

    def test_files_and_directories_are_fsynced_before_the_rename(self, tiny, tmp_path, monkeypatch):
        tr = trainer(tiny, steps=1, checkpoint_every=1, checkpoint_dir=str(tmp_path))
        events = []
        real_fsync, real_replace, real_open, real_close = os.fsync, os.replace, os.open, os.close
        names = {}  # fd -> the base name of what it opened

        def record_open(path, flags, *args, **kwargs):
            fd = real_open(path, flags, *args, **kwargs)
            names[fd] = os.path.basename(os.fspath(path))
            return fd

        def record_close(fd):
            names.pop(fd, None)
            return real_close(fd)

        def record_fsync(fd):
            events.append(("fsync", names.get(fd, "latest-file")))
            return real_fsync(fd)

        def record_replace(src, dst):
            events.append(("replace", os.path.basename(os.fspath(dst))))
            return real_replace(src, dst)

        monkeypatch.setattr(checkpoint.os, "open", record_open)
        monkeypatch.setattr(checkpoint.os, "close", record_close)
        monkeypatch.setattr(checkpoint.os, "fsync", record_fsync)
        monkeypatch.setattr(checkpoint.os, "replace", record_replace)
        checkpoint.save_checkpoint(tr, tmp_path)
        monkeypatch.undo()
        tmp_dir = f".tmp-step-000000-{os.getpid()}"
        assert events == [
            ("fsync", "policy.safetensors"),
            ("fsync", "value_head.safetensors"),
            ("fsync", "trainer_state.pt"),
            ("fsync", tmp_dir),
            ("replace", "step-000000"),
            ("fsync", "latest-file"),
            ("replace", "latest"),
            ("fsync", tmp_path.name),
        ]


# -- devices --------------------------------------------------------------------------------


DEVICE_CHOICES = r"expected one of \['cpu', 'cuda', 'mps'\] \(or 'cuda:N'\), a torch.device or None"


class TestDevices:
    @pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", "", "tpu"])
    def test_unknown_device_string(self, device):
        with pytest.raises(ValueError, match=rf"^device: {DEVICE_CHOICES}, got '{device}'$"):
            load_preset("tiny", device=device)

    @pytest.mark.parametrize("device, got", [(0, "int"), (["cpu"], "list")])
    def test_device_of_another_type(self, device, got):
        with pytest.raises(ValueError, match=rf"^device: {DEVICE_CHOICES}, got {got}$"):
            load_preset("tiny", device=device)

    def test_setup_names_device(self):
        from rlhf_edu.notebook import setup

        with pytest.raises(ValueError, match=rf"^device: {DEVICE_CHOICES}, got 'gpu'$"):
            setup("tiny", device="gpu")

    @pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "mps", torch.device("cpu")])
    def test_known_spellings_pass(self, device):
        assert require_device(device) == torch.device(device)
        assert require_device(None) is None


# -- evaluation, widgets and exercise checkers -----------------------------------------------


class TestEvaluation:
    @pytest.mark.parametrize("n_prompts", [True, 0, 2.0, "4", 10**6])
    def test_n_prompts(self, tiny, n_prompts):
        with pytest.raises(ValueError, match="^n_prompts: expected an int"):
            evaluate_policy(tiny.policy, tiny, n_prompts=n_prompts)

    def test_max_new_tokens_zero_is_refused_not_replaced(self, tiny):
        with pytest.raises(ValueError, match="^max_new_tokens: expected an int >= 1, got 0$"):
            evaluate_policy(tiny.policy, tiny, n_prompts=2, max_new_tokens=0)

    def test_seed(self, tiny):
        with pytest.raises(ValueError, match="^seed: expected an int >= 0, got 'a'$"):
            evaluate_policy(tiny.policy, tiny, n_prompts=2, seed="a")


def test_next_token_widget_refuses_a_prompt_past_the_context(tiny):
    long = "the plot was good . " * 40
    n = len(tiny.tokenizer(long)["input_ids"])
    message = (
        rf"^prompt: {n} prompt tokens \+ max_new_tokens=1 do not fit the model's context of "
        r"128 positions; shorten the prompt to at most 127 tokens$"
    )
    with pytest.raises(ValueError, match=message):
        next_token_probs(tiny.policy, tiny.tokenizer, long)


CHECKERS = [
    check_gae,
    check_clipped_surrogate,
    check_k3,
    check_reinforce_loss,
    check_pairwise_loss,
    check_sequence_logprob,
]


@pytest.mark.parametrize("checker", CHECKERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("value, got", [(None, "NoneType None"), (3, "int 3")])
def test_exercise_checkers_want_the_function_itself(checker, value, got):
    message = rf"^fn: expected your function itself \(pass it without calling it\), got {got}$"
    with pytest.raises(ValueError, match=message):
        checker(value)


class TestNoSilentNaN:
    def test_pairwise_loss(self):
        with pytest.raises(ValueError, match="^chosen: expected finite numbers, got nan"):
            pairwise_loss(torch.tensor([float("nan"), 1.0]), torch.zeros(2))
        with pytest.raises(ValueError, match="^rejected: expected finite numbers, got inf"):
            pairwise_loss(torch.zeros(2), torch.tensor([0.0, float("inf")]))

    def test_reinforce_loss(self):
        rewards = torch.tensor([1.0, float("nan")])
        with pytest.raises(ValueError, match="^rewards: expected finite numbers, got nan"):
            reinforce_loss(torch.zeros(2, 3), rewards, torch.ones(2, 3))

    def test_filter_logits(self):
        with pytest.raises(ValueError, match=r"^logits: expected no NaN"):
            filter_logits(torch.tensor([float("nan"), 0.0]))
        out = filter_logits(torch.tensor([float("-inf"), 0.0]))  # -inf is a removed token
        assert out.softmax(-1).tolist() == [0.0, 1.0]

    @pytest.mark.parametrize("fraction", [1.5, -0.1, float("nan")])
    def test_clip_plot_fraction(self, fraction):
        with pytest.raises(
            ValueError, match=r"^batch_clipfrac: expected a finite number in \[0, 1\]"
        ):
            plot_clip(0.2, 1.0, batch_clipfrac=fraction)


class TestCorpusPrompts:
    def test_a_single_review_is_not_a_list_of_characters(self):
        with pytest.raises(ValueError, match="^reviews: expected a list of strings, got a single"):
            corpus.make_prompts("the plot was good")

    @pytest.mark.parametrize("n_words", [(4, 2), (0, 2), (2,), 3, (2.0, 4)])
    def test_n_words(self, n_words):
        with pytest.raises(ValueError, match=r"^n_words: expected a pair \(lo, hi\) of ints"):
            corpus.make_prompts(["the plot was good"], n_words=n_words)


class TestLeftoversOfIssue12:
    """The same checks reach the group trainer, the newer exercise checkers and load_preset."""

    def test_group_trainer_names_a_bad_reward_fn(self, tiny):
        from rlhf_edu.group_methods import GroupConfig, GroupTrainer

        cfg = GroupConfig(steps=1, prompts_per_step=2, group_size=2, mini_batch_size=4,
                          max_new_tokens=4)  # fmt: skip
        trainer = GroupTrainer("grpo", cfg, tiny.fresh_policy(), tiny.ref_policy, tiny.tokenizer,
                               lambda texts: ["good"] * len(texts), tiny.prompts[:8])  # fmt: skip
        with pytest.raises(ValueError, match=r"step 1: reward_fn: expected one number per text"):
            trainer.train(progress=False)

    @pytest.mark.parametrize(
        "module, checker",
        [("after_ppo", "check_dr_grpo_loss"), ("group_advantages", "check_group_advantages"),
         ("ppo_loss", "check_ppo_loss")],
    )  # fmt: skip
    def test_new_checkers_name_a_non_function(self, module, checker):
        import importlib

        check = getattr(importlib.import_module(f"rlhf_edu.exercises.{module}"), checker)
        with pytest.raises(ValueError, match="fn: expected your function itself"):
            check(None)

    def test_load_preset_refuses_a_bool_for_n_prompts(self):
        from rlhf_edu.presets import load_preset

        with pytest.raises(ValueError, match="n_prompts"):
            load_preset("tiny", n_prompts=True)
