import os
import stat

import pytest

from abstain.atomic import write_json
from abstain.checkpoint import save_module
from abstain.models.classifier import CNN, ClassifierConfig


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def test_written_files_get_the_mode_a_plain_write_gives(tmp_path, umask):
    # the temporary file behind every atomic write is 0600; renaming it once left every run file,
    # JSON and report readable by its owner alone, whatever the umask
    umask(0o022)
    write_json(tmp_path / "a.json", {"x": 1})
    save_module(tmp_path / "m.safetensors", CNN(ClassifierConfig(hidden=8)), {})
    assert {_mode(tmp_path / n) for n in ("a.json", "m.safetensors", "m.json")} == {0o644}
    umask(0o077)
    write_json(tmp_path / "b.json", {"x": 1})
    assert _mode(tmp_path / "b.json") == 0o600


def test_overwriting_keeps_the_files_mode(tmp_path, umask):
    umask(0o022)
    write_json(tmp_path / "a.json", {"x": 1})
    os.chmod(tmp_path / "a.json", 0o640)
    write_json(tmp_path / "a.json", {"x": 2})
    assert _mode(tmp_path / "a.json") == 0o640 and (tmp_path / "a.json").read_text().count("2") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
