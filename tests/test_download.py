"""``python -m rlhf_edu.download DIR``: the mirror's layout, manifest and checksums.

No hub here: ``download.artifact_dir`` (where each pinned artifact's files are fetched to) is
pointed at the stand-in mirror (tests/standin.py), so the reading, re-saving, manifest and
checksums run for real.
"""

import hashlib
import json

import pytest

from rlhf_edu import download
from rlhf_edu.presets import HUB, IMDB_TRAIN, ClassifierGold, load_preset


@pytest.fixture
def from_standin(standin_mirror, monkeypatch):
    fetched = []

    def artifact_dir(role, source=None):
        fetched.append(role)
        return standin_mirror / HUB[role][0]

    monkeypatch.setattr(download, "artifact_dir", artifact_dir)
    return fetched


@pytest.fixture(scope="module")
def mirror(standin_mirror, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            download, "artifact_dir", lambda role, source=None: standin_mirror / HUB[role][0]
        )
        root = tmp_path_factory.mktemp("download") / "mirror"
        manifest = download.download(root)
    return root, manifest


def test_a_folder_per_hub_id_models_as_safetensors(mirror):
    root, _ = mirror
    for role in ("policy", "reward", "gold"):
        names = {p.name for p in (root / HUB[role][0]).iterdir()}
        assert "model.safetensors" in names and "config.json" in names, (role, names)
        assert "pytorch_model.bin" not in names
    assert (root / HUB["dataset"][0] / IMDB_TRAIN).is_file()


def test_manifest_has_revisions_and_true_checksums(mirror):
    root, manifest = mirror
    assert json.loads((root / "manifest.json").read_text()) == manifest
    assert set(manifest["artifacts"]) == set(HUB)
    for role, entry in manifest["artifacts"].items():
        assert (entry["repo_id"], entry["revision"]) == HUB[role]
        on_disk = sorted(
            p.relative_to(root / entry["repo_id"]).as_posix()
            for p in (root / entry["repo_id"]).rglob("*")
            if p.is_file()
        )
        assert sorted(entry["files"]) == on_disk
        for rel, digest in entry["files"].items():
            data = (root / entry["repo_id"] / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest


def test_the_reviews_keep_the_imdb_schema(mirror, standin_mirror):
    from datasets import Dataset

    root, _ = mirror
    saved = Dataset.from_parquet(str(root / HUB["dataset"][0] / IMDB_TRAIN))
    original = Dataset.from_parquet(str(standin_mirror / HUB["dataset"][0] / IMDB_TRAIN))
    assert saved.column_names == ["text", "label"]
    assert saved["text"] == original["text"] and saved["label"] == original["label"]


def test_the_mirror_loads_offline_with_the_same_weights(mirror, standin_mirror, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root, _ = mirror
    a = load_preset("gpt2-imdb", device="cpu", n_prompts=16, source=root)
    b = load_preset("gpt2-imdb", device="cpu", n_prompts=16, source=standin_mirror)
    assert a.prompts == b.prompts and isinstance(a.gold, ClassifierGold)
    for p, q in zip(a.policy.state_dict().values(), b.policy.state_dict().values()):
        assert torch.equal(p, q)
    texts = ["a great film.", "an awful film."]
    assert torch.allclose(a.reward(texts), b.reward(texts))


def test_skip_gold(from_standin, tmp_path, capsys):
    root = tmp_path / "m"
    manifest = download.download(root, skip_gold=True)
    assert "gold" not in manifest["artifacts"] and "gold" not in from_standin
    assert not (root / HUB["gold"][0]).exists()
    p = load_preset("gpt2-imdb", device="cpu", n_prompts=8, source=root)
    assert p.gold is None


def test_cli_without_hub_says_so_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download.main([str(tmp_path / "m")]) == 1
    assert "cannot be reached" in capsys.readouterr().out
    assert not (tmp_path / "m").exists()


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="root"):
        download.download(tmp_path / "f")
