import matplotlib

matplotlib.use("Agg")

from rlhf_edu.evaluation import evaluate_policy
from rlhf_edu.widgets.training_lab import run_experiment, run_name, show_training_lab


def test_run_experiment_trains_a_fresh_copy(tiny):
    before = [p.clone() for p in tiny.ref_policy.parameters()]
    history = run_experiment(
        tiny,
        clip_eps=0.1,
        beta=0.1,
        steps=2,
        progress=False,
        batch_size=8,
        mini_batch_size=4,
        max_new_tokens=6,
    )
    assert [m["step"] for m in history] == [1, 2]
    assert all(m["beta"] == 0.1 for m in history)
    assert all((a == b).all() for a, b in zip(before, tiny.ref_policy.parameters()))


def test_show_training_lab_draws_the_seeded_runs(tiny, capsys):
    history = [{"step": 1, "objective/scores": 0.1, "objective/kl": 0.0}]
    runs = show_training_lab(tiny, runs={"seed": history})
    assert list(runs) == ["seed"]
    assert "VBox" in capsys.readouterr().out


def test_run_name():
    assert run_name(0.2, 0.05, 10) == "eps=0.2, beta=0.05, 10 steps"


def test_evaluate_policy_does_not_touch_the_global_rng(tiny):
    import torch

    torch.manual_seed(3)
    a = torch.rand(1)
    torch.manual_seed(3)
    ev = evaluate_policy(tiny.policy, tiny, n_prompts=4, seed=1)
    b = torch.rand(1)
    assert torch.equal(a, b)
    assert len(ev["texts"]) == 4 and ev["gold"] is not None and abs(ev["kl"]) < 1e-3
