"""``python -m netgpt.cli``: the ``netgpt`` command."""

from netgpt.cli import app

app()
