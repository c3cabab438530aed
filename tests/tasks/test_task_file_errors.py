"""Bad task files give one typed error listing every problem as ``file:line: message``: binary or non-UTF-8 bytes,
malformed JSON, every schema error, an empty file, and ids outside the safe character set (``../../x``)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netgpt.cli import app
from netgpt.tasks import TaskFileError, check_file, load_tasks
from netgpt.tasks.io import TASK_ID

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"
LINES = (BENCH / "dev.jsonl").read_text().splitlines()[:3]
runner = CliRunner()


def _problems(path: Path) -> list[str]:
    with pytest.raises(TaskFileError) as info:
        load_tasks(path)
    assert [f"{path}:{e.line}: {e.message}" for e in info.value.errors] == info.value.problems
    return info.value.problems


def _with_id(line: str, task_id: str) -> str:
    task = json.loads(line)
    task["id"] = task_id
    return json.dumps(task)


def test_binary_garbage_is_a_problem_per_line_not_a_decoding_traceback(tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" + LINES[0].encode() + b"\n")
    assert _problems(path) == [f"{path}:1: not UTF-8 text (byte 0x89 at column 1)",
                               f"{path}:2: invalid JSON (Expecting value at column 1)",
                               f"{path}:3: not UTF-8 text (byte 0xff at column 2)"]
    assert not check_file(path).ok


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_an_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    assert _problems(path) == [f"{path}:1: the file holds no tasks (it is empty)"]
    report = check_file(path)
    assert not report.ok and report.count == 0


def test_every_problem_is_listed_and_unsafe_ids_are_refused(tmp_path):
    schema = json.loads(LINES[1])
    del schema["question"], schema["template"]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([_with_id(LINES[0], "../../x"), "{not json", json.dumps(schema),
                               _with_id(LINES[2], "a/b"), _with_id(LINES[2], "x" * 97), LINES[2]]) + "\n")
    problems = _problems(path)
    assert problems[0].startswith(f"{path}:1: id '../../x' must match ")
    assert problems[1].startswith(f"{path}:2: invalid JSON")
    assert problems[2:4] == [f"{path}:3: schema: template: Field required",
                             f"{path}:3: schema: question: Field required"]
    assert problems[4].startswith(f"{path}:4: id 'a/b' must match") and problems[5].startswith(f"{path}:5: id 'xxx")
    assert len(problems) == 6  # line 6 is a good task: the file is still refused whole


def test_the_id_charset():
    assert all(TASK_ID.fullmatch(i) for i in ("dev-00000", "a", "A.b_c-9", "x" * 96))
    assert not any(TASK_ID.fullmatch(i) for i in ("../../x", "..", ".hidden", "-x", "a b", "a/b", "é", "", "x" * 97))


def test_cli_check_prints_each_problem_on_its_line_without_a_traceback(tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\xff\xfe\x00binary\n" + _with_id(LINES[0], "../../x").encode() + b"\n")
    result = runner.invoke(app, ["tasks", "check", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    said = " ".join(result.output.split())
    assert "garbage.jsonl:1: not UTF-8 text" in said and "garbage.jsonl:2: id '../../x' must match" in said
    assert "FAILED: 2 problem(s)" in said and "Traceback" not in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = runner.invoke(app, ["tasks", "check", str(empty)])
    assert result.exit_code == 1 and "holds no tasks" in result.output
