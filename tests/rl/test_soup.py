"""Model soups: the weighted mean of each parameter, refused for models that do not line up, and `netgpt soup`
writing a model that `load_model` reads back with exactly that mean."""

import json

import pytest
import torch
from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.core.model import load_model, save_model, tiny_model
from netgpt.rl.soup import SOUP_FILE, SoupError, average_state_dicts

runner = CliRunner()


def test_average_is_the_weighted_mean_in_each_tensors_dtype():
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([0.0], dtype=torch.bfloat16), "n": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([1.0], dtype=torch.bfloat16), "n": torch.tensor([3])}
    uniform = average_state_dicts([a, b])
    assert torch.equal(uniform["w"], torch.tensor([2.0, 4.0]))
    assert uniform["h"].dtype == torch.bfloat16 and uniform["h"].item() == 0.5
    assert torch.equal(uniform["n"], torch.tensor([3]))
    weighted = average_state_dicts([a, b], weights=[3, 1])  # normalised to 0.75 / 0.25
    assert torch.allclose(weighted["w"], torch.tensor([1.5, 3.0]))


@pytest.mark.parametrize("other, message", [
    ({"w": torch.zeros(2)}, "other parameters"),
    ({"w": torch.zeros(3), "n": torch.tensor([3])}, "shape"),
    ({"w": torch.zeros(2), "n": torch.tensor([4])}, "not floating point and differs"),
])
def test_models_that_do_not_line_up_are_refused(other, message):
    with pytest.raises(SoupError, match=message):
        average_state_dicts([{"w": torch.zeros(2), "n": torch.tensor([3])}, other])


def test_bad_weights_are_refused():
    sd = {"w": torch.zeros(2)}
    with pytest.raises(SoupError, match="2 weights for more models"):
        average_state_dicts([sd, sd, sd], weights=[1, 1])
    with pytest.raises(SoupError, match="3 weights for 2 models"):
        average_state_dicts([sd, sd], weights=[1, 1, 1])
    with pytest.raises(SoupError, match="no models"):
        average_state_dicts([])
    with pytest.raises(SoupError, match="non-negative"):
        average_state_dicts([sd, sd], weights=[1, -1])


@pytest.mark.slow
def test_cli_writes_the_mean_model_and_its_provenance(tokenizer, tmp_path):
    paths = []
    for seed in (0, 1, 2):
        paths.append(tmp_path / f"run-{seed}")
        save_model(tiny_model(tokenizer, seed=seed), tokenizer, paths[-1])
    result = runner.invoke(app, ["soup", *map(str, paths), "--out", str(tmp_path / "soup")])
    assert result.exit_code == 0, result.output
    soup, _ = load_model(str(tmp_path / "soup"))
    sources = [load_model(str(p))[0].state_dict() for p in paths]
    for name, tensor in soup.state_dict().items():
        assert torch.allclose(tensor, sum(sd[name] for sd in sources) / 3, atol=1e-7), name
    record = json.loads((tmp_path / "soup" / SOUP_FILE).read_text())
    assert record["models"] == [str(p) for p in paths] and record["weights"] == pytest.approx([1 / 3] * 3)
    assert "torch" in record["environment"]


@pytest.mark.slow
def test_cli_refuses_another_architecture_and_non_models(tokenizer, tmp_path):
    save_model(tiny_model(tokenizer, layers=2), tokenizer, tmp_path / "two")
    save_model(tiny_model(tokenizer, layers=3), tokenizer, tmp_path / "three")
    mixed = runner.invoke(app, ["soup", str(tmp_path / "two"), str(tmp_path / "three"), "--out", str(tmp_path / "s")])
    assert mixed.exit_code == 2 and "another architecture" in mixed.output
    assert not (tmp_path / "s").exists()
    missing = runner.invoke(app, ["soup", str(tmp_path / "two"), str(tmp_path), "--out", str(tmp_path / "s")])
    assert missing.exit_code == 2 and "not a model directory" in missing.output
    single = runner.invoke(app, ["soup", str(tmp_path / "two"), "--out", str(tmp_path / "s")])
    assert single.exit_code == 2 and "at least two" in single.output
