"""``netgpt eval --resume``: a killed evaluation keeps its finished episodes, a finished one grows to more tasks, and
a run with other settings is refused rather than mixed in."""

import gzip
import json
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # subprocesses or Ray workers: `make test-fast` leaves it out

EVAL = [sys.executable, "-m", "netgpt.cli", "eval", "--policy", "always", "--split", "dev"]


def _episodes(run):
    with gzip.open(run / "episodes.jsonl.gz", "rt") as lines:
        return [json.loads(line) for line in lines]


def _eval(*args):
    return subprocess.run([*EVAL, *args], capture_output=True, text=True)


def _said(done) -> str:
    """What the command printed, unwrapped from rich's line breaks and typer's error panel."""
    return " ".join((done.stdout + done.stderr).replace("│", " ").split())


def test_a_killed_eval_resumes_from_its_episode_log_and_matches_an_uninterrupted_run(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    process = subprocess.Popen([*EVAL, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "episodes.jsonl"
    deadline = time.monotonic() + 120
    # the scripted policy runs 64 episodes per batch: kill once the first batch is logged
    while not (log.is_file() and len(log.read_text().splitlines()) > 64) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "results.json").exists(), "the run finished before it could be killed"
    logged = len(log.read_text().splitlines()) - 1
    with open(log, "a") as f:
        f.write('{"task_id": "dev-')  # the line being written when it was killed
    resumed = _eval("--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"({logged} kept from the earlier run)" in _said(resumed)
    assert not log.exists()  # the finished run is in results.json
    assert _eval("--out", str(whole)).returncode == 0
    assert _episodes(killed) == _episodes(whole) and len(_episodes(whole)) == 200
    info = json.loads((killed / "run.json").read_text())
    assert info["n_tasks"] == 200 and info["kept_episodes"] == logged
    assert [part["episodes"] for part in info["parts"]] == [logged, 200 - logged]


def test_a_finished_run_is_extended_to_more_tasks(tmp_path):
    run = tmp_path / "run"
    assert _eval("--limit", "12", "--out", str(run)).returncode == 0
    first = _episodes(run)
    extended = _eval("--limit", "30", "--out", str(run), "--resume")
    assert extended.returncode == 0 and "18 tasks in" in _said(extended)
    assert _episodes(run)[:12] == first and len(_episodes(run)) == 30
    assert _eval("--limit", "30", "--out", str(tmp_path / "direct")).returncode == 0
    assert _episodes(run) == _episodes(tmp_path / "direct")


@pytest.mark.parametrize(("changed", "named"), [(("--seed", "3"), "seed: 0 there, 3 here"),
                                               (("--max-turns", "2"), "settings (episode)")])
def test_resume_refuses_a_run_with_other_settings(tmp_path, changed, named):
    run = tmp_path / "run"
    assert _eval("--limit", "12", "--out", str(run)).returncode == 0
    before = (run / "results.json").read_text()
    refused = _eval("--limit", "24", "--out", str(run), "--resume", *changed)
    message = _said(refused)
    assert refused.returncode != 0 and "comes from a run with other settings" in message and named in message
    assert (run / "results.json").read_text() == before and not (run / "episodes.jsonl").exists()


def test_resume_refuses_a_run_on_another_task_generator(tmp_path):
    """A run on the tasks of an earlier generator (other reference plans and agent API) is not continued."""
    run = tmp_path / "run"
    assert _eval("--limit", "12", "--out", str(run)).returncode == 0
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "generator_version": "1.0.0"}))
    refused = _eval("--limit", "24", "--out", str(run), "--resume")
    assert refused.returncode != 0 and "generator_version: '1.0.0' there, '1.1.0' here" in _said(refused)


def test_resume_refuses_a_checkpoint_retrained_in_place(tokenizer, tmp_path):
    """The weights' SHA-256 is a setting: another model saved to the same directory does not extend the run. A run
    recorded before the fingerprint existed is compared on the rest."""
    from netgpt.core.model import model_sha256, save_model, tiny_model

    ckpt, run = tmp_path / "ckpt", tmp_path / "run"
    save_model(tiny_model(tokenizer, seed=4), tokenizer, ckpt)
    llm = ["--policy", str(ckpt), "--max-new-tokens", "8", "--max-turns", "1", "--out", str(run)]
    first = _eval("--limit", "2", *llm)
    assert first.returncode == 0, first.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["model_sha256"] == model_sha256(str(ckpt))
    save_model(tiny_model(tokenizer, seed=5), tokenizer, ckpt)
    refused = _eval("--limit", "4", "--resume", *llm)
    assert refused.returncode != 0 and "other settings (model_sha256: " in _said(refused)
    (run / "run.json").write_text(json.dumps({k: v for k, v in info.items() if k != "model_sha256"}))
    older = _eval("--limit", "4", "--resume", *llm)
    assert older.returncode == 0 and "(2 kept from the earlier run)" in _said(older), older.stderr
