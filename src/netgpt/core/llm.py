"""The LLM core as a policy: batched generation over many episodes, keeping the generated token ids.

Each episode is one growing token sequence in ChatML: the prompt (system + first user turn), then alternating
core turns (generated, ``env_mask`` 1, with their log-probs) and environment turns (the agent's reply wrapped in a
user turn, tokenised on its own and appended, ``env_mask`` 0). Generated text is never re-tokenised.

Speed on a CPU is dominated by prefill, so nothing is encoded twice:

* the system turn, identical for every episode, is encoded once and its KV cache is shared by the whole batch;
* the batch's KV cache is kept between turns: a turn only encodes the new environment tokens.

Rows of the batch differ in length, so the token matrix has holes (padding inside a row, attention mask 0).
Position ids follow the attention mask, so the holes change no logit (checked in the tests).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from netgpt.core.episode import Policy, Trajectory
from netgpt.core.prompt import environment_turn
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
        self._prefix_system: str | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ episode bookkeeping
    def begin(self, system: str, tasks: Sequence[Task], first_messages: Sequence[str]) -> None:
        system = system if self.tools else NO_TOOLS_SYSTEM
        self._prepare_prefix(system)
        self.prompt_ids = [
            self.tokenizer.apply_chat_template([{"role": "system", "content": system},
                                                {"role": "user", "content": message}],
                                               add_generation_prompt=True, tokenize=True, return_dict=False)
            for message in first_messages]
        if not all(p[:len(self.prefix_ids)] == self.prefix_ids for p in self.prompt_ids):
            raise ValueError("the chat template does not put the system turn first: cannot share its cache")
        n = len(first_messages)
        self.completion: list[list[int]] = [[] for _ in range(n)]
        self.mask: list[list[int]] = [[] for _ in range(n)]
        self.logprobs: list[list[float]] = [[] for _ in range(n)]
        self.pending: list[list[int]] = [self.prompt_ids[i][len(self.prefix_ids):] for i in range(n)]
        self.rows: list[int] = []       # episode index of each row of the batch state
        self.ids = self.att = self.cache = None

    def _append(self, index: int, ids: list[int], generated: bool, logprobs: list[float] | None = None) -> None:
        self.completion[index] += ids
        self.mask[index] += [1 if generated else 0] * len(ids)
        self.logprobs[index] += logprobs if logprobs is not None else [0.0] * len(ids)
        if not generated:
            self.pending[index] += ids

    def observe(self, index: int, reply_text: str) -> None:
        closed = bool(self.completion[index]) and self.completion[index][-1] == self.eos_id
        text = environment_turn(reply_text, closed)
        self._append(index, self.tokenizer(text, add_special_tokens=False).input_ids, generated=False)

    def trajectory(self, index: int) -> Trajectory:
        return Trajectory(prompt_ids=self.prompt_ids[index], completion_ids=self.completion[index],
                          env_mask=self.mask[index], logprobs=self.logprobs[index])

    # ------------------------------------------------------------------ batch state
    @torch.no_grad()
    def _prepare_prefix(self, system: str) -> None:
        """KV cache of the system turn, computed once and shared by every episode."""
        if self._prefix_system == system:
            return
        self.prefix_ids = self.tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=True,
                                                             return_dict=False)
        ids = torch.tensor([self.prefix_ids], device=self.device)
        self._prefix_cache = self.model(ids, use_cache=True).past_key_values
        self._prefix_system = system

    def _extend(self, indices: Sequence[int]) -> None:
        """Bring the batch state to the rows ``indices`` and append their pending tokens, right-aligned."""
        if self.cache is None:
            self.cache = copy.deepcopy(self._prefix_cache)
            self.cache.batch_repeat_interleave(len(indices))
            p = len(self.prefix_ids)
            self.ids = torch.tensor([self.prefix_ids] * len(indices), device=self.device)
            self.att = torch.ones((len(indices), p), dtype=torch.long, device=self.device)
        else:
            keep = torch.tensor([self.rows.index(i) for i in indices], device=self.device)
            self.cache.batch_select_indices(keep)
            self.ids, self.att = self.ids[keep], self.att[keep]
        width = max(len(self.pending[i]) for i in indices)
        block = torch.full((len(indices), width), self.pad_id, dtype=torch.long, device=self.device)
        block_att = torch.zeros_like(block)
        for row, i in enumerate(indices):
            tokens = self.pending[i]
            if tokens:
                block[row, width - len(tokens):] = torch.tensor(tokens, device=self.device)
                block_att[row, width - len(tokens):] = 1
            self.pending[i] = []
        self.ids = torch.cat([self.ids, block], dim=1)
        self.att = torch.cat([self.att, block_att], dim=1)
        self.rows = list(indices)

    @torch.no_grad()
    def act(self, indices: Sequence[int]) -> list[tuple[str, int | None, bool]]:
        for i in indices:
            if self._forced:
                self._append(i, self._forced, generated=False)
        self._extend(indices)
        width = self.ids.shape[1]
        sampling = self.temperature > 0
        out = self.model.generate(
            input_ids=self.ids, attention_mask=self.att, cache=self.cache, max_new_tokens=self.max_new_tokens,
            do_sample=sampling, temperature=self.temperature if sampling else None, top_p=None, top_k=None,
            stop_strings=list(STOP_STRINGS), tokenizer=self.tokenizer, pad_token_id=self.pad_id,
            eos_token_id=self.eos_id, return_dict_in_generate=True, output_logits=True)
        generated = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1).float()
        if sampling:
            logits = logits / self.temperature
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, generated.unsqueeze(-1)).squeeze(-1).cpu()
        gen_att = torch.zeros_like(generated)
        turns = []
        for row, i in enumerate(indices):
            ids, cut, truncated = self._cut(generated[row].tolist())
            gen_att[row, :cut] = 1  # tokens after the cut are padding of rows that finished early
            self._append(i, ids, generated=True, logprobs=token_logprobs[row, :cut].tolist())
            prefix = "<answer>" if self._forced else ""
            turns.append((prefix + self.tokenizer.decode(ids, skip_special_tokens=True), len(ids), truncated))
        self.ids = out.sequences
        self.att = torch.cat([self.att, gen_att], dim=1)
        self.cache = out.past_key_values
        return turns

    def _cut(self, ids: list[int]) -> tuple[list[int], int, bool]:
        """The tokens this turn really generated: up to the first eos or the token completing a stop string."""
        text = ""
        for k, token in enumerate(ids):
            if token == self.eos_id:
                return ids[:k + 1], k + 1, False
            text += self.tokenizer.decode([token])
            if any(stop in text for stop in STOP_STRINGS):
                return ids[:k + 1], k + 1, False
        return ids, len(ids), True
