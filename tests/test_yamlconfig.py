"""Config files: ``extends:`` lays an ablation over the recipe it varies; every shipped config loads."""

from pathlib import Path

import pytest

from netgpt.rl.config import RLConfig
from netgpt.sft import SFTConfig
from netgpt.yamlconfig import load_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_extends_lays_changes_over_the_base_and_merges_nested_mappings(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 20\nseed: 0\nbranching: {enabled: true, threshold: 0.5}\n")
    (tmp_path / "ablations").mkdir()
    (tmp_path / "ablations" / "mid.yaml").write_text("extends: ../base.yaml\nseed: 3\n")
    (tmp_path / "ablations" / "leaf.yaml").write_text("extends: mid.yaml\nbranching: {threshold: 0.8}\n")
    assert load_yaml(tmp_path / "ablations" / "leaf.yaml") == {
        "steps": 20, "seed": 3, "branching": {"enabled": True, "threshold": 0.8}}


def test_a_value_that_is_not_a_mapping_replaces_the_base_value(tmp_path):
    (tmp_path / "base.yaml").write_text("reward_weights: {quality: 0.7, coordination: 0.3}\n")
    (tmp_path / "leaf.yaml").write_text("extends: base.yaml\nreward_weights: null\n")
    assert load_yaml(tmp_path / "leaf.yaml") == {"reward_weights": None}


def test_a_cycle_of_extends_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nseed: 1\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nseed: 2\n")
    with pytest.raises(ValueError, match="extends itself"):
        load_yaml(tmp_path / "a.yaml")


@pytest.mark.parametrize(("text", "message"), [("extends: missing.yaml\n", "names no file"),
                                               ("extends: [a.yaml, b.yaml]\n", "names one file"),
                                               ("- steps: 20\n", "not list")])
def test_bad_config_files_get_a_clear_error(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_yaml(tmp_path / "bad.yaml")


def test_an_unknown_setting_in_an_ablation_is_still_refused(tmp_path):
    (tmp_path / "typo.yaml").write_text(f"extends: {CONFIGS / 'rl-cpu.yaml'}\nnum_generation: 8\n")
    with pytest.raises(ValueError, match="num_generation"):
        RLConfig.load(tmp_path / "typo.yaml")


def test_the_stated_steps_rl_ablation_differs_from_the_recipe_it_ablated_in_its_listed_settings_only():
    recipe = RLConfig.load(CONFIGS / "ablations" / "rl-unstated.yaml").model_dump()
    ablation = RLConfig.load(CONFIGS / "ablations" / "rl-stated-steps.yaml").model_dump()
    changed = {k for k in recipe if recipe[k] != ablation[k]}
    assert changed == {"model", "out", "max_new_tokens", "sft_state_steps"}
    assert ablation["max_new_tokens"] == 128 and ablation["sft_state_steps"] is True


def test_the_recipe_is_the_v4_ablation_it_was_chosen_from():
    """configs/rl-cpu.yaml is the stated recipe measured as rl-stated-v4-anchor-0.1: make bench reuses that run."""
    recipe = RLConfig.load(CONFIGS / "rl-cpu.yaml").model_dump()
    ablation = RLConfig.load(CONFIGS / "ablations" / "rl-stated-v4-anchor-0.1.yaml").model_dump()
    assert {k for k in recipe if recipe[k] != ablation[k]} == {"model", "out"}
    sft = SFTConfig.load(CONFIGS / "sft-cpu.yaml").model_dump()
    stated = SFTConfig.load(CONFIGS / "ablations" / "sft-stated-steps.yaml").model_dump()
    assert {k for k in sft if sft[k] != stated[k]} == {"out"} and sft["state_steps"]


RUN_CONFIGS = sorted([*CONFIGS.rglob("sft-*.yaml"), *CONFIGS.rglob("rl-*.yaml")])


def test_the_run_configs_are_found():
    assert {p.name for p in RUN_CONFIGS} >= {"sft-cpu.yaml", "rl-cpu.yaml", "rl-stated-steps.yaml"}


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_run_config_loads(path):
    loader = SFTConfig if path.name.startswith("sft-") else RLConfig
    assert loader.load(path).out != Path()


@pytest.mark.parametrize(("command", "text", "message"), [
    (["train"], "steps: 0\n", "steps: Input should be greater than or equal to 1"),
    (["train"], "sft_teacher: teacher\n", "sft_teacher: Input should be 'oracle' or 'always'"),
    (["train", "--sft-teacher", "teacher"], "steps: 2\n", "'teacher' is not one of 'always', 'oracle'"),
    (["train", "--backend", "cluster"], "steps: 2\n", "'cluster' is not one of 'local', 'processes', 'ray'"),
    (["sft"], "n_task: 800\n", "n_task: Extra inputs are not permitted"),
    (["bench"], "extends: missing.yaml\n", "names no file"),
    (["train"], "steps: [1\n", "while parsing a flow sequence"),
    (["eval", "--policy", "oracle", "--split", "dev", "--faults"], "seed: -1\n", "seed: Input should be greater"),
    (["eval", "--policy", "oracle", "--split", "dev", "--faults"], None, "does not exist")])
def test_the_cli_says_what_is_wrong_in_a_config_instead_of_a_traceback(tmp_path, command, text, message):
    from typer.testing import CliRunner

    from netgpt.cli import app

    if text is not None:
        (tmp_path / "bad.yaml").write_text(text)
    option = [] if command[-1] == "--faults" else ["--config"]
    result = CliRunner().invoke(app, [*command, *option, str(tmp_path / "bad.yaml")], env={"COLUMNS": "400"})
    said = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and message in said, said
    assert "Traceback" not in said
