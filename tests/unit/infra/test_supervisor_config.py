"""supervisord.conf is written so that supervisor reads back exactly our commands."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from infra.local.components import Component
from infra.local.supervisor import Supervisor


def _noop() -> None:
    return None


def test_supervisor_parses_back_commands_and_environments(tmp_path: Path) -> None:
    tricky = Component(
        name="tricky",
        command=["/bin/echo", "50%", 'say "hi"', "two words"],
        url="http://127.0.0.1:1",
        check=_noop,
        env={"PERCENT": "100%", "QUOTE": 'a"b', "EMPTY": ""},
    )
    service = Component(name="later", command=["/bin/true"], url="-", check=_noop, service=True)
    supervisor = Supervisor(tmp_path)
    supervisor.write_config([tricky, service])

    options = ServerOptions()
    options.configfile = str(supervisor.config)
    options.process_config(do_usage=False)
    programs = {group.name: group.process_configs[0] for group in options.process_group_configs}

    assert shlex.split(programs["tricky"].command) == tricky.command
    assert programs["tricky"].environment == {"PERCENT": "100%", "QUOTE": 'a"b', "EMPTY": ""}
    assert programs["tricky"].autostart is True
    assert programs["tricky"].stopasgroup is True
    assert programs["later"].autostart is False
    assert programs["tricky"].stdout_logfile == str(tmp_path.resolve() / "logs" / "tricky.log")


def test_environment_values_supervisor_cannot_carry_are_refused(tmp_path: Path) -> None:
    odd = Component(
        name="odd", command=["/bin/true"], url="-", check=_noop, env={"X": 'it\'s "both"'}
    )
    with pytest.raises(ValueError, match="cannot carry"):
        Supervisor(tmp_path).write_config([odd])
