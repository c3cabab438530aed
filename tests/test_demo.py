"""`make demo` (`netgpt demo`): the tour of every family, then a live episode of the core and the oracle."""

from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.core.model import save_model, tiny_model
from netgpt.tasks.families import FAMILIES


def test_the_demo_shows_every_family_and_runs_the_core_and_the_oracle_live(tokenizer, tmp_path):
    save_model(tiny_model(tokenizer, seed=3), tokenizer, tmp_path / "tiny")
    result = CliRunner().invoke(app, ["demo", "--episodes", "1", "--model", str(tmp_path / "tiny")],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    for family in FAMILIES:
        assert f"{family} · " in result.output
    assert "live: " in result.output and "core (prompt-only)  score" in result.output
    assert "oracle  score 0.9" in result.output  # the oracle solves the live task
