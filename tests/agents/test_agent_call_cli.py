"""``netgpt agent call`` from the shell: the reply as JSON, exit status from its ok flag."""

import json
from pathlib import Path

from typer.testing import CliRunner

from netgpt.cli import app

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"
runner = CliRunner()
TBS = '{"qm":6,"code_rate_x1024":772,"layers":1,"n_prb":76,"n_symb":14,"n_dmrs_per_prb":18,"n_oh_per_prb":12}'


def _reply(result):
    return json.loads(result.stdout[: result.stdout.rindex("}") + 1])


def test_stateless_call_answers():
    result = runner.invoke(app, ["agent", "call", "phy", "tbs", "--args", TBS])
    assert result.exit_code == 0, result.output
    reply = _reply(result)
    assert reply["ok"] and reply["result"] == {"tbs_bits": 47112} and reply["bytes_sent"] > 0


def test_stateful_call_reads_the_task_state():
    task = json.loads((BENCH / "dev.jsonl").read_text().splitlines()[2])
    ue = task["params"]["ue_id"]
    result = runner.invoke(app, ["agent", "call", "channel", "sinr", "--args", json.dumps({"ue_id": ue}),
                                 "--task-file", str(BENCH / "dev.jsonl"), "--task-id", task["id"]])
    assert result.exit_code == 0, result.output
    assert abs(_reply(result)["result"]["sinr_db"] - task["answer"]["value"]) < 1e-9


def test_errors_exit_non_zero_with_the_code():
    no_session = runner.invoke(app, ["agent", "call", "channel", "sinr", "--args", '{"ue_id": "ue-1"}'])
    assert no_session.exit_code == 1 and _reply(no_session)["error"]["code"] == "invalid_args"
    unknown = runner.invoke(app, ["agent", "call", "oracle", "x"])
    assert unknown.exit_code == 1 and _reply(unknown)["error"]["code"] == "unknown_agent"
    bad_json = runner.invoke(app, ["agent", "call", "phy", "tbs", "--args", "{nope"])
    assert bad_json.exit_code == 2 and "not JSON" in bad_json.output
    missing = runner.invoke(app, ["agent", "call", "phy", "tbs", "--task-file", str(BENCH / "dev.jsonl")])
    assert missing.exit_code == 2
