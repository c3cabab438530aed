"""``netgpt agents list`` and the argument handling of the agents commands (serve and mcp run in other tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from protocol_testkit import PROBE_CONFIG, free_port, world
from typer.testing import CliRunner

from netgpt.protocol.cli import _load_state, agents_app

runner = CliRunner()


def test_list_shows_the_cards() -> None:
    result = runner.invoke(agents_app, ["list", "--config", str(PROBE_CONFIG), "--json"])
    assert result.exit_code == 0, result.output
    cards = json.loads(result.stdout)
    assert [c["name"] for c in cards] == ["probe"] and cards[0]["endpoint"] is None
    table = runner.invoke(agents_app, ["list", "--config", str(PROBE_CONFIG)])
    assert table.exit_code == 0 and "probe" in table.stdout and "cell_count*" in table.stdout


def test_list_reports_unreachable_servers_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "agents.yaml"
    config.write_text(f"agents:\n  - {{kind: http, url: 'http://127.0.0.1:{free_port()}'}}\n")
    result = runner.invoke(agents_app, ["list", "--config", str(config)])
    assert result.exit_code == 1 and "cannot load agents" in result.output and "Traceback" not in result.output
    config.write_text("agents:\n  - {kind: carrier-pigeon}\n")
    assert runner.invoke(agents_app, ["list", "--config", str(config)]).exit_code == 1
    assert runner.invoke(agents_app, ["list", "--config", str(tmp_path / "missing.yaml")]).exit_code == 2


def test_state_files_hold_a_world_or_a_task(tmp_path: Path) -> None:
    state = world()
    plain, task, junk = tmp_path / "world.json", tmp_path / "task.json", tmp_path / "junk.json"
    plain.write_text(state.model_dump_json())
    task.write_text(json.dumps({"id": "t", "state": state.model_dump(mode="json")}))
    junk.write_text('{"cells": 3}')
    assert _load_state(plain) == state == _load_state(task)
    with pytest.raises(Exception, match="neither a World nor a task"):
        _load_state(junk)
