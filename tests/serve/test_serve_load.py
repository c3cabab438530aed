"""`netgpt serve` as a separate process under a bounded concurrent load: 50 requests, 8 in flight, zero errors,
every answer right, and concurrent requests batched together."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from loopback import wait_until_healthy
from serve_testkit import TBS_ANSWER, TBS_QUESTION, TOKEN, dev_tasks, free_port

from netgpt.tasks import score_answer

pytestmark = pytest.mark.slow  # subprocesses or Ray workers: `make test-fast` leaves it out

FAMILIES = ("tbs", "pathloss", "peak_rate", "spec_fact", "path_latency", "slice_allocation", "kpi_anomaly",
            "observation_lookup", "agent_recovery", "sla_check")  # exact answers (no noisy estimator, no forecast)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "NETGPT_SERVE_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "netgpt.cli", "serve", "--policy", "oracle", "--port", str(port),
                             "--batch-size", "8", "--max-wait-ms", "5", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, 120, "netgpt serve")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def test_fifty_requests_eight_at_a_time(server: str) -> None:
    client = openai.OpenAI(api_key=TOKEN, base_url=f"{server}/v1", max_retries=0, timeout=120)
    [model] = [m.id for m in client.models.list()]
    assert model == "netgpt-oracle"
    tasks = [t for t in dev_tasks() if t.family in FAMILIES][:40]

    def one(i: int):
        if i >= len(tasks):  # ten free-text questions among the bench tasks
            reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": TBS_QUESTION}])
            return reply.choices[0].message.content == TBS_ANSWER, reply.netgpt["batch_size"]
        task = tasks[i]
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": task.question}],
                                               extra_body={"netgpt": {"task": task.model_dump(mode="json")}})
        return score_answer(task.answer, reply.choices[0].message.content) == 1.0, reply.netgpt["batch_size"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(50)))  # any HTTP error would raise here
    assert [ok for ok, _ in outcomes] == [True] * 50
    assert max(batch for _, batch in outcomes) > 1  # concurrent requests shared episode batches
