"""Files: the sign cache (atomic, verified, optional) and the zoo's manifest and checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from tutorial_utils import data, models, zoo

SHIPPED = zoo.data_dir()
# ------------------------------------------------------------------------------ the sign cache


def test_concurrent_processes_fill_an_empty_cache(tmp_path):
    """Four processes load the same set into an empty cache at once: none crashes, all see the
    same bytes, one verified file remains and no temporary file is left behind."""
    code = textwrap.dedent("""
        import hashlib
        from tutorial_utils import data
        d = data.load_signs(seed=8, n_train=3, n_test=2)
        print(hashlib.sha256(d.x_train.numpy().tobytes() + d.x_test.numpy().tobytes())
              .hexdigest())
    """)
    for attempt in range(1):
        cache = tmp_path / f"cache{attempt}"
        env = dict(os.environ, TUTORIAL_UTILS_CACHE=str(cache), TQDM_DISABLE="1")
        procs = [subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err[-500:] for _, err in outs]
        assert len({out.strip() for out, _ in outs}) == 1
        files = sorted(p.name for p in cache.iterdir())
        assert files == ["signs_v1_seed8_3_2.pt"], files


def test_concurrent_writers_never_collide(tmp_path):
    """Eight threads write the same cache entry at once (each through its own temporary file,
    then an atomic rename): no error, one readable and verified file, nothing left over."""
    from concurrent.futures import ThreadPoolExecutor

    blob = {"x_train": torch.zeros(4, 3, 2, 2, dtype=torch.uint8), "y_train": torch.arange(4),
            "x_test": torch.ones(2, 3, 2, 2, dtype=torch.uint8), "y_test": torch.arange(2)}
    path = tmp_path / "entry.pt"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: data._write_cache(path, blob), range(32)))
    assert [p.name for p in tmp_path.iterdir()] == ["entry.pt"]
    assert data._read_cache(path, 4, 2) is not None


def test_a_changed_cache_entry_is_regenerated_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORIAL_UTILS_CACHE", str(tmp_path))
    fresh = data.load_signs(seed=5, n_train=2, n_test=1)
    (path,) = tmp_path.glob("*.pt")
    blob = torch.load(path, weights_only=True)
    assert len(blob["sha256"]) == 64
    blob["x_train"][0] = 0  # same shapes, other content, stale checksum
    torch.save(blob, path)
    again = data.load_signs(seed=5, n_train=2, n_test=1)
    assert torch.equal(again.x_train, fresh.x_train)
    path.write_bytes(b"truncated")  # unreadable: regenerated too
    assert torch.equal(data.load_signs(seed=5, n_train=2, n_test=1).x_test, fresh.x_test)
    assert torch.load(path, weights_only=True)["sha256"] == blob["sha256"]


def test_an_unusable_cache_folder_falls_back_to_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TUTORIAL_UTILS_CACHE", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="not usable"):
        ds = data.load_signs(seed=6, n_train=2, n_test=1)
    assert torch.equal(ds.x_train, data.load_signs(seed=6, n_train=2, n_test=1,
                                                   cache=False).x_train)


# ------------------------------------------------------------------- manifest, checkpoints


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    """A copy of the manifest and the digits checkpoint; ``zoo.data_dir`` points at it."""
    shutil.copy(SHIPPED / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(SHIPPED / "digits.pt", tmp_path / "digits.pt")
    monkeypatch.setattr(zoo, "data_dir", lambda: tmp_path)
    return tmp_path


def _edit_manifest(folder, edit):
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _snapshot(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_invalid_manifest_json_is_a_clear_error(zoo_copy):
    (zoo_copy / "manifest.json").write_text("{ not json")
    with pytest.raises(zoo.CheckpointError, match="not valid JSON.*python -m tutorial_utils"):
        models.load("digits")


def test_manifest_entry_without_sha256_is_a_clear_error(zoo_copy):
    _edit_manifest(zoo_copy, lambda m: m["digits"].pop("sha256"))
    with pytest.raises(zoo.CheckpointError, match="no valid sha256.*models digits"):
        models.load("digits")


def test_checkpoint_of_another_architecture_is_a_clear_error(zoo_copy):
    shutil.copy(SHIPPED / "digits05.pt", zoo_copy / "digits.pt")  # 6 classes, not 10
    digest = hashlib.sha256((zoo_copy / "digits.pt").read_bytes()).hexdigest()
    _edit_manifest(zoo_copy, lambda m: m["digits"].update(sha256=digest))
    with pytest.raises(zoo.CheckpointError, match="does not fit the architecture of 'digits'"):
        models.load("digits")


def test_missing_member_without_training_names_the_rebuild_command_and_writes_nothing(
        zoo_copy):
    (zoo_copy / "digits.pt").unlink()
    before = _snapshot(zoo_copy)
    with pytest.raises(FileNotFoundError, match="python -m tutorial_utils.models digits"):
        models.load("digits", train_if_missing=False)
    assert _snapshot(zoo_copy) == before, "load rewrote files without being asked"


@pytest.mark.parametrize("train_if_missing", [True, False])
def test_a_checkpoint_without_manifest_entry_is_never_retrained_over(zoo_copy, monkeypatch,
                                                                    train_if_missing):
    _edit_manifest(zoo_copy, lambda m: m.pop("digits"))
    monkeypatch.setattr(models, "train_zoo_model", lambda *a, **k: pytest.fail("retrained"))
    before, data = _snapshot(zoo_copy), (zoo_copy / "digits.pt").read_bytes()
    with pytest.raises(zoo.CheckpointError, match="no entry for 'digits'.*manifest.*"
                                                  "python -m tutorial_utils.models digits"):
        models.load("digits", train_if_missing=train_if_missing)
    assert _snapshot(zoo_copy) == before and (zoo_copy / "digits.pt").read_bytes() == data


@pytest.mark.parametrize("name", zoo.MEMBERS)
def test_every_shipped_member_loads_and_verifies(name):
    model = models.load(name)
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
