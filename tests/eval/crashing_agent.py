"""A traffic agent that takes its whole process down on its first call, as a segfaulting native library or the OOM
killer would: the process backend must turn that into a clear error, not a hang."""

import os

from netgpt.agents import AGENT_CLASSES


class CrashingTraffic(AGENT_CLASSES["traffic"]):
    def handle(self, skill, args, state):
        os._exit(3)
