"""The huge-page switch the minillm command gives its processes (minillm_distill/host_memory.py)."""

from __future__ import annotations

import subprocess
import sys

from minillm_distill.host_memory import OPT_OUT_ENV, TORCH_ENV, use_huge_pages


def test_switch_is_set_when_unset(monkeypatch):
    monkeypatch.delenv(TORCH_ENV, raising=False)
    monkeypatch.delenv(OPT_OUT_ENV, raising=False)
    assert use_huge_pages() is True
    assert __import__("os").environ[TORCH_ENV] == "1"


def test_a_users_own_setting_is_kept(monkeypatch):
    monkeypatch.setenv(TORCH_ENV, "0")
    monkeypatch.delenv(OPT_OUT_ENV, raising=False)
    assert use_huge_pages() is False
    assert __import__("os").environ[TORCH_ENV] == "0"


def test_opt_out_sets_nothing(monkeypatch):
    monkeypatch.delenv(TORCH_ENV, raising=False)
    monkeypatch.setenv(OPT_OUT_ENV, "system")
    assert use_huge_pages() is False
    assert TORCH_ENV not in __import__("os").environ


def test_the_minillm_command_sets_it_before_torch_exists(tmp_path, monkeypatch):
    # the command's own process: main() sets the switch, and torch is not imported yet when it does
    code = (
        "import os, sys\n"
        "import minillm_distill.host_memory as hm\n"
        "seen = {}\n"
        "real = hm.use_huge_pages\n"
        "def spy():\n"
        "    seen['torch'] = 'torch' in sys.modules\n"
        "    return real()\n"
        "hm.use_huge_pages = spy\n"
        "from minillm_distill.cli.main import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(seen, os.environ.get('THP_MEM_ALLOC_ENABLE'))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in (TORCH_ENV, OPT_OUT_ENV)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "{'torch': False} 1" in out.stdout, out.stdout + out.stderr
