"""NetGPT: an LLM core that reasons alone or delegates to specialised xG network agents."""

__version__ = "0.1.0"
