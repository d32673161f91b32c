"""``minillm plugins new`` refuses what it cannot write well: a name Python cannot import, a folder in use."""

from __future__ import annotations


def test_a_bad_name_or_a_folder_in_use_is_a_usage_error(cli, tmp_path):
    res = cli("plugins", "new", "my plugin!", tmp_path / "a")
    assert res.code == 2 and "is not a distribution name" in res.stderr and not (tmp_path / "a").exists()
    res = cli("plugins", "new", "class", tmp_path / "b")
    assert res.code == 2 and "which Python cannot import" in " ".join(res.stderr.split())
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    res = cli("plugins", "new", "minillm-x", used)
    assert res.code == 2 and "is not empty" in " ".join(res.stderr.replace("│", " ").split())
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]
    res = cli("plugins", "new", "minillm-x", used, "--force")
    assert res.code == 0, res.output
    assert (used / "src" / "minillm_x" / "__init__.py").exists() and (used / "notes.txt").read_text() == "mine"
