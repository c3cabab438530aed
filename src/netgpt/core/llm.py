"""The LLM core as a policy: batched generation over many episodes, keeping the generated token ids.

Each episode is one growing token sequence in ChatML: the prompt (system + first user turn), then alternating
core turns (generated, ``env_mask`` 1, with their log-probs) and environment turns (the agent's reply wrapped in a
user turn, tokenised on its own and appended, ``env_mask`` 0). Generated text is never re-tokenised.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from netgpt.core.episode import Policy, Trajectory
from netgpt.tasks.schema import Task

STOP_STRINGS = ("</call>", "</answer>")

NO_TOOLS_SYSTEM = ("You are NetGPT, the reasoning core of a 5G network. Answer the operator's question from the "
                   "observation and your own knowledge; no agents are available. "
                   "Reply with <answer>value with unit</answer>.")


class LLMPolicy(Policy):
    """``tools=False`` is the ``never`` baseline: no agents in the prompt and every turn is forced to start with
    ``<answer>`` (an injected, masked prefix), so the core cannot call."""

    def __init__(self, model, tokenizer, name: str = "prompt", max_new_tokens: int = 96, temperature: float = 0.0,
                 batch_size: int = 16, tools: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.batch_size = batch_size
        self.tools = tools
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self._forced = tokenizer("<answer>", add_special_tokens=False).input_ids if not tools else []

    def _encode_env(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def begin(self, system: str, tasks: Sequence[Task], first_messages: Sequence[str]) -> None:
        system = system if self.tools else NO_TOOLS_SYSTEM
        self._prepare_prefix(system)
        self.prompt_ids = [
            self.tokenizer.apply_chat_template([{"role": "system", "content": system},
                                                {"role": "user", "content": message}],
                                               add_generation_prompt=True, tokenize=True, return_dict=False)
            for message in first_messages]
        n = len(first_messages)
        self.completion: list[list[int]] = [[] for _ in range(n)]
        self.mask: list[list[int]] = [[] for _ in range(n)]
        self.logprobs: list[list[float]] = [[] for _ in range(n)]

    @torch.no_grad()
    def _prepare_prefix(self, system: str) -> None:
        """KV cache of the system turn, computed once and shared by every episode (all prompts start with it)."""
        if getattr(self, "_prefix_system", None) == system:
            return
        self.prefix_ids = self.tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=True,
                                                             return_dict=False)
        device = next(self.model.parameters()).device
        self._prefix_cache = self.model(torch.tensor([self.prefix_ids], device=device), use_cache=True).past_key_values
        self._prefix_system = system

    def _batch(self, sequences: list[list[int]]):
        """[shared prefix | left-padded suffixes] with the matching attention mask and the expanded prefix cache.
        Position ids follow the mask, so the padding hole between prefix and suffix changes nothing."""
        p = len(self.prefix_ids)
        if not all(seq[:p] == self.prefix_ids for seq in sequences):
            raise ValueError("every prompt must start with the shared system prefix")
        suffixes = [seq[p:] for seq in sequences]
        width = max(len(s) for s in suffixes)
        input_ids = torch.full((len(sequences), p + width), self.pad_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        input_ids[:, :p] = torch.tensor(self.prefix_ids)
        attention[:, :p] = 1
        for row, suffix in enumerate(suffixes):
            input_ids[row, p + width - len(suffix):] = torch.tensor(suffix)
            attention[row, p + width - len(suffix):] = 1
        cache = copy.deepcopy(self._prefix_cache)
        cache.batch_repeat_interleave(len(sequences))
        return input_ids, attention, cache

    def _append(self, index: int, ids: list[int], generated: bool, logprobs: list[float] | None = None) -> None:
        self.completion[index] += ids
        self.mask[index] += [1 if generated else 0] * len(ids)
        self.logprobs[index] += logprobs if logprobs is not None else [0.0] * len(ids)

    @torch.no_grad()
    def act(self, indices: Sequence[int]) -> list[tuple[str, int | None, bool]]:
        for i in indices:
            if self._forced:
                self._append(i, self._forced, generated=False)
        input_ids, attention, cache = self._batch([self.prompt_ids[i] + self.completion[i] for i in indices])
        width = input_ids.shape[1]
        device = next(self.model.parameters()).device
        sampling = self.temperature > 0
        out = self.model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device), cache=cache,
            max_new_tokens=self.max_new_tokens,
            do_sample=sampling, temperature=self.temperature if sampling else None, top_p=None, top_k=None,
            stop_strings=list(STOP_STRINGS), tokenizer=self.tokenizer, pad_token_id=self.pad_id,
            eos_token_id=self.eos_id, return_dict_in_generate=True, output_logits=True)
        generated = out.sequences[:, width:].cpu()
        logits = torch.stack(out.logits, dim=1).float().cpu()  # (batch, steps, vocab)
        if sampling:
            logits = logits / self.temperature
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, generated.unsqueeze(-1)).squeeze(-1)
        turns = []
        for row, i in enumerate(indices):
            ids, cut, truncated = self._cut(generated[row].tolist())
            self._append(i, ids, generated=True, logprobs=token_logprobs[row, :cut].tolist())
            prefix = "<answer>" if self._forced else ""
            turns.append((prefix + self.tokenizer.decode(ids, skip_special_tokens=True), len(ids), truncated))
        return turns

    def _cut(self, ids: list[int]) -> tuple[list[int], int, bool]:
        """The tokens this turn really generated: up to the first eos or the token completing a stop string.
        Later positions are padding of rows that finished before the rest of the batch."""
        text = ""
        for k, token in enumerate(ids):
            if token == self.eos_id:
                return ids[:k + 1], k + 1, False
            text += self.tokenizer.decode([token])
            if any(stop in text for stop in STOP_STRINGS):
                return ids[:k + 1], k + 1, False
        return ids, len(ids), True

    def observe(self, index: int, reply_text: str) -> None:
        closed = bool(self.completion[index]) and self.completion[index][-1] == self.eos_id
        text = ("" if closed else "<|im_end|>") + f"\n<|im_start|>user\n{reply_text}<|im_end|>\n<|im_start|>assistant\n"
        self._append(index, self._encode_env(text), generated=False)

    def trajectory(self, index: int) -> Trajectory:
        return Trajectory(prompt_ids=self.prompt_ids[index], completion_ids=self.completion[index],
                          env_mask=self.mask[index], logprobs=self.logprobs[index])
