"""The LLM core as a policy: batched generation over many episodes, keeping the generated token ids.

Each episode is one growing token sequence in ChatML: the prompt (system + first user turn), then alternating
core turns (generated, ``env_mask`` 1, with their log-probs and entropies) and environment turns (the agent's
reply wrapped in a user turn, tokenised on its own and appended, ``env_mask`` 0). Generated text is never
re-tokenised.

Generation is a compact decode loop over the model's own modules instead of ``model.generate``: on a CPU,
``generate`` spent most of its time copying caches (every episode's copy of the shared system turn, padding holes,
``DynamicCache`` concatenation each step) and decoding rows that had already finished. Here:

* the system turn, identical for every episode, is encoded once and attended to as one shared block (its keys and
  values are read once per step for the whole batch, not once per episode);
* every episode owns a row of preallocated key/value buffers holding only its own tokens, contiguous, so positions
  equal a plain unpadded sequence's and each step writes one column in place;
* the buffers are kept between turns: a turn only encodes the new environment tokens;
* a row that finishes (eos, stop string, token limit) is swapped to the back and leaves the batch at once;
* log-prob and entropy are computed per step from that step's logits; stop strings are matched on cached
  per-token text, not by decoding the sequence.

Supported: Llama-architecture models (SmolLM2, the tests' tiny model, anything ``netgpt sft`` saves).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from netgpt.core.actions import MAX_NEW_TOKENS
from netgpt.core.episode import Policy, Trajectory, session_seed
from netgpt.core.prompt import environment_turn
from netgpt.tasks.schema import Task

STOP_STRINGS = ("</call>", "</answer>")
STOP_TAIL = max(len(s) for s in STOP_STRINGS) - 1  # characters of earlier text a stop string can start in

PREFILL_CHUNK = 256  # prefill columns per forward pass: bounds the score tensors of long task messages

NO_TOOLS_SYSTEM = ("You are NetGPT, the reasoning core of a 5G network. Answer the operator's question from the "
                   "observation and your own knowledge; no agents are available. "
                   "Reply with <answer>value with unit</answer>.")


class _KV:
    """Per-layer key/value buffers ``(rows, kv_heads, capacity, head_dim)``. Row ``r`` holds episode
    ``episode[r]``'s tokens after the shared prefix in columns ``[0, length[r])``; rows ``[0, B)`` are the batch."""

    def __init__(self, layers: int, episodes: int, kv_heads: int, head_dim: int, dtype, device):
        shape = (episodes, kv_heads, 0, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.length = [0] * episodes
        self.episode = list(range(episodes))

    def reserve(self, capacity: int) -> None:
        old = self.keys[0].shape[2]
        if capacity <= old:
            return
        capacity = -(-capacity // 256) * 256  # grow in steps so that later turns rarely reallocate
        for buffers in (self.keys, self.values):
            for i, buffer in enumerate(buffers):
                grown = buffer.new_zeros(*buffer.shape[:2], capacity, buffer.shape[3])
                grown[:, :, :old] = buffer
                buffers[i] = grown

    def swap(self, a: int, b: int) -> None:
        if a == b:
            return
        n = max(self.length[a], self.length[b])
        for buffer in (*self.keys, *self.values):
            row = buffer[a, :, :n].clone()
            buffer[a, :, :n] = buffer[b, :, :n]
            buffer[b, :, :n] = row
        for field in (self.length, self.episode):
            field[a], field[b] = field[b], field[a]

    def front(self, episodes: Sequence[int]) -> None:
        """Swap rows so that ``episodes`` occupy rows ``[0, len(episodes))`` (in any order)."""
        wanted, n = set(episodes), len(episodes)
        free = [r for r in range(n) if self.episode[r] not in wanted]
        outside = [r for r in range(n, len(self.episode)) if self.episode[r] in wanted]
        for a, b in zip(free, outside):
            self.swap(a, b)


class _Decoder:
    """Forward pass of a Llama-architecture causal LM against a shared prefix block plus per-row ``_KV`` rows."""

    def __init__(self, model):
        # A peft model (LoRA training) runs its adapters inside the base model's modules: decode through those.
        model = model.get_base_model() if hasattr(model, "get_base_model") else model
        if model.config.model_type != "llama":
            raise ValueError(f"LLMPolicy decodes Llama-architecture models; got {model.config.model_type!r}")
        config = model.config
        self.model = model
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scale = self.head_dim ** -0.5

    def new_kv(self, episodes: int) -> _KV:
        p = next(self.model.parameters())
        return _KV(len(self.model.model.layers), episodes, self.kv_heads, self.head_dim, p.dtype, p.device)

    def forward(self, ids: torch.Tensor, count: torch.Tensor, start: torch.Tensor, kv: _KV,
                prefix: list[tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
        """Hidden states ``(N, hidden)`` of the real tokens of ``ids`` (B, T): the first ``count[b]`` of row ``b``,
        which go to columns ``start[b] + t`` of row ``b`` of ``kv`` (their keys and values are written there).

        The linear layers, most of the work, see only the N real tokens, packed; attention lays queries out padded
        (B, T) with a mask: a query at column ``c`` sees the prefix and its row's columns ``<= c``."""
        inner = self.model.model
        batch, width = ids.shape
        steps = torch.arange(width, device=ids.device)
        real = steps < count[:, None]
        column = start[:, None] + steps
        rows = torch.arange(batch, device=ids.device)[:, None].expand(batch, width)[real]
        x = inner.embed_tokens(ids[real])
        prefix_len = prefix[0][0].shape[1] if prefix else 0
        cos, sin = inner.rotary_emb(x, column[real] + prefix_len)
        seen = int((start + count).max())
        visible = torch.arange(seen, device=ids.device) <= column[..., None]  # (B, T, seen)
        if width > 1:  # a boolean mask over [prefix, row] for the fused kernel
            mask = torch.cat([visible.new_ones(batch, width, prefix_len), visible], dim=-1)[:, None]
        else:  # an additive float32 bias over the row, broadcast over kv heads and the query heads of a group
            mask = torch.zeros(batch, seen, device=ids.device).masked_fill_(~visible[:, 0], float("-inf"))
            mask = mask[:, None, None]
        for i, layer in enumerate(inner.layers):
            h = self._attention(layer.self_attn, layer.input_layernorm(x), cos, sin, kv.keys[i], kv.values[i],
                                rows, column[real], real, seen, mask, prefix[i] if prefix else None)
            x = x + h
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return x

    def _attention(self, attn, h, cos, sin, keys, values, rows, column, real, seen, mask, prefix):
        batch, width = real.shape
        q = attn.q_proj(h).view(-1, self.heads, self.head_dim)
        k = attn.k_proj(h).view(-1, self.kv_heads, self.head_dim)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        keys[rows, :, column] = k
        values[rows, :, column] = attn.v_proj(h).view(-1, self.kv_heads, self.head_dim)
        padded = q.new_zeros(batch, width, self.heads, self.head_dim)
        padded[real] = q
        row_keys, row_values = keys[:batch, :, :seen], values[:batch, :, :seen]
        if width > 1:
            out = self._prefill_attention(padded.transpose(1, 2), row_keys, row_values, mask, prefix)
        else:
            out = self._decode_attention(padded.transpose(1, 2), row_keys, row_values, mask, prefix)
        out = out.transpose(1, 2)[real]
        return attn.o_proj(out.reshape(-1, self.heads * self.head_dim))

    def _prefill_attention(self, q, keys, values, mask, prefix):
        """Many queries per row: the fused kernel, with each row's copy of the prefix (copied once per turn)."""
        if prefix is not None:
            batch = q.shape[0]
            keys = torch.cat([prefix[0].expand(batch, -1, -1, -1), keys], dim=2)
            values = torch.cat([prefix[1].expand(batch, -1, -1, -1), values], dim=2)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scale, enable_gqa=True)

    def _decode_attention(self, q, keys, values, bias, prefix):
        """One query per row: the prefix is read once for the whole batch instead of once per row. The row part and
        the prefix part are scored separately and joined by one softmax (shared maximum and denominator), so
        neither is copied next to the other."""
        batch, groups = q.shape[0], self.heads // self.kv_heads
        # The query heads sharing a kv head are adjacent, so grouping them needs no repeated keys (GQA).
        q = q.reshape(batch, self.kv_heads, groups, self.head_dim)
        scores = torch.matmul(q, keys.transpose(-1, -2)).float().mul_(self.scale).add_(bias)  # (B, kv, g, seen)
        top = scores.amax(-1)
        if prefix is not None:
            prefix_keys, prefix_values = prefix
            shared = q.transpose(0, 1).reshape(self.kv_heads, batch * groups, self.head_dim)
            prefix_scores = torch.matmul(shared, prefix_keys.transpose(-1, -2)).float().mul_(self.scale)
            by_row = prefix_scores.view(self.kv_heads, batch, groups, -1)  # (kv, B, g, prefix)
            top = torch.maximum(top, by_row.amax(-1).transpose(0, 1))
            by_row.sub_(top.transpose(0, 1)[..., None]).exp_()
        scores.sub_(top[..., None]).exp_()
        total = scores.sum(-1)
        out = torch.matmul(scores.to(q.dtype), values)
        if prefix is not None:
            total += by_row.sum(-1).transpose(0, 1)
            shared_out = torch.matmul(prefix_scores.to(q.dtype), prefix_values)
            out += shared_out.view(self.kv_heads, batch, groups, -1).transpose(0, 1)
        out = out / total[..., None].to(out.dtype)
        return out.reshape(batch, self.heads, 1, self.head_dim)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(self.model.model.norm(hidden)).float()


class LLMPolicy(Policy):
    """``tools=False`` is the ``never`` baseline: no agents in the prompt and every turn is forced to start with
    ``<answer>`` (an injected, masked prefix), so the core cannot call.

    Sampling (``temperature > 0``) draws from ``softmax(logits / temperature)``; log-probs and entropies are of that
    distribution (of ``softmax(logits)`` when greedy). With a ``seed``, each episode draws from a generator of its own,
    seeded by ``seed`` and the episode's session name, so its tokens do not depend on which episodes share its
    batch, its process or its Ray worker (RL rollouts on several workers equal the local ones). Without one, torch's
    global generator is used (``torch.manual_seed`` makes it reproducible)."""

    def __init__(self, model, tokenizer, name: str = "prompt", max_new_tokens: int = MAX_NEW_TOKENS,
                 temperature: float = 0.0, batch_size: int = 16, tools: bool = True, seed: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.batch_size = batch_size
        self.tools = tools
        self.seed = seed
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self._forced = tokenizer("<answer>", add_special_tokens=False).input_ids if not tools else []
        self._decoder = _Decoder(model)
        self._prefix_key: tuple | None = None
        self._pieces: dict[int, str] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ episode bookkeeping
    def begin(self, system: str, tasks: Sequence[Task], first_messages: Sequence[str],
              resume: Sequence[Trajectory | None] | None = None, sessions: Sequence[str] | None = None) -> None:
        """``resume[i]``, when given, is a trajectory of episode ``i``'s prompt: its completion (ids, mask,
        log-probs, entropies) is taken as already written and the next ``act`` continues after it."""
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
        resume = list(resume) if resume is not None else [None] * n
        if len(resume) != n:
            raise ValueError(f"resume has {len(resume)} entries for {n} episodes")
        self.completion: list[list[int]] = [[] for _ in range(n)]
        self.mask: list[list[int]] = [[] for _ in range(n)]
        self.logprobs: list[list[float]] = [[] for _ in range(n)]
        self.entropies: list[list[float]] = [[] for _ in range(n)]
        self.pending: list[list[int]] = [self.prompt_ids[i][len(self.prefix_ids):] for i in range(n)]
        for i, trajectory in enumerate(resume):
            if trajectory is None:
                continue
            if trajectory.prompt_ids != self.prompt_ids[i]:
                raise ValueError(f"resume[{i}] was not generated from this episode's prompt")
            k = len(trajectory.completion_ids)
            if not len(trajectory.env_mask) == len(trajectory.logprobs) == len(trajectory.entropies) == k:
                raise ValueError(f"resume[{i}]: completion_ids, env_mask, logprobs and entropies differ in length")
            self.completion[i] = list(trajectory.completion_ids)
            self.mask[i] = list(trajectory.env_mask)
            self.logprobs[i] = list(trajectory.logprobs)
            self.entropies[i] = list(trajectory.entropies)
            self.pending[i] += trajectory.completion_ids
        self.kv = self._decoder.new_kv(n)
        self._generators = None
        if self.seed is not None and self.temperature > 0:
            if sessions is None or len(sessions) != n:
                raise ValueError("a seeded sampling policy needs one session name per episode")
            self._generators = [torch.Generator(self.device).manual_seed(session_seed(self.seed, s)) for s in sessions]

    def _append(self, index: int, ids: list[int], generated: bool, logprobs: list[float] | None = None,
                entropies: list[float] | None = None) -> None:
        self.completion[index] += ids
        self.mask[index] += [1 if generated else 0] * len(ids)
        self.logprobs[index] += logprobs if logprobs is not None else [0.0] * len(ids)
        self.entropies[index] += entropies if entropies is not None else [0.0] * len(ids)
        if not generated:
            self.pending[index] += ids

    def observe(self, index: int, reply_text: str) -> None:
        closed = bool(self.completion[index]) and self.completion[index][-1] == self.eos_id
        text = environment_turn(reply_text, closed)
        self._append(index, self.tokenizer(text, add_special_tokens=False).input_ids, generated=False)

    def trajectory(self, index: int) -> Trajectory:
        return Trajectory(prompt_ids=self.prompt_ids[index], completion_ids=self.completion[index],
                          env_mask=self.mask[index], logprobs=self.logprobs[index],
                          entropies=self.entropies[index])

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def _prepare_prefix(self, system: str) -> None:
        """Keys and values of the system turn, computed once and shared by every episode; recomputed when the
        weights changed in place (an optimizer step between RL rollouts bumps the parameters' versions)."""
        key = (system, tuple(p._version for p in self.model.parameters()))
        if self._prefix_key == key:
            return
        self.prefix_ids = self.tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=True,
                                                             return_dict=False)
        kv = self._decoder.new_kv(1)
        kv.reserve(len(self.prefix_ids))
        ids = torch.tensor([self.prefix_ids], device=self.device)
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        self._decoder.forward(ids, zero + len(self.prefix_ids), zero, kv, None)
        p = len(self.prefix_ids)
        self._prefix = [(k[0, :, :p].clone(), v[0, :, :p].clone()) for k, v in zip(kv.keys, kv.values)]
        self._prefix_key = key

    def _prefill(self, batch: int) -> torch.Tensor:
        """Encode the pending tokens of rows ``[0, batch)``; logits after each row's last pending token."""
        kv, device = self.kv, self.device
        tokens = [self.pending[kv.episode[r]] for r in range(batch)]
        width = max(len(t) for t in tokens)
        block = torch.full((batch, width), self.pad_id, dtype=torch.long, device=device)
        for r, t in enumerate(tokens):
            block[r, :len(t)] = torch.tensor(t, device=device)
            self.pending[kv.episode[r]] = []
        start = torch.tensor(kv.length[:batch], device=device)
        count = torch.tensor([len(t) for t in tokens], device=device)
        hidden = torch.empty(batch, self.model.config.hidden_size, dtype=self.model.dtype, device=device)
        for c in range(0, width, PREFILL_CHUNK):
            here = (count - c).clamp(0, PREFILL_CHUNK)
            h = self._decoder.forward(block[:, c:c + PREFILL_CHUNK], here, start + c, kv, self._prefix)
            ends = (count > c) & (count <= c + PREFILL_CHUNK)  # rows whose last pending token is in this chunk
            hidden[ends] = h[here.cumsum(0)[ends] - 1]
        for r, t in enumerate(tokens):
            kv.length[r] += len(t)
        return self._decoder.logits(hidden)

    def _step(self, batch: int, tokens: list[int]) -> torch.Tensor:
        kv = self.kv
        ids = torch.tensor(tokens, device=self.device)[:, None]
        start = torch.tensor(kv.length[:batch], device=self.device)
        hidden = self._decoder.forward(ids, torch.ones_like(start), start, kv, self._prefix)
        for r in range(batch):
            kv.length[r] += 1
        return self._decoder.logits(hidden)

    def _stops(self, tail: str, token: int) -> tuple[bool, str]:
        """Whether ``token`` completes a stop string after the text ``tail``, and the new tail."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.tokenizer.decode([token])
        text = tail + piece
        return any(stop in text for stop in STOP_STRINGS), text[-STOP_TAIL:]

    def _sample(self, probs: torch.Tensor, batch: int) -> torch.Tensor:
        if self._generators is None:
            return torch.multinomial(probs, 1)[:, 0]
        return torch.cat([torch.multinomial(probs[r], 1, generator=self._generators[self.kv.episode[r]])
                          for r in range(batch)])

    @torch.inference_mode()
    def act(self, indices: Sequence[int]) -> list[tuple[str, int | None, bool]]:
        for i in indices:
            if self._forced:
                self._append(i, self._forced, generated=False)
        kv, batch = self.kv, len(indices)
        kv.front(indices)
        longest = max(kv.length[r] for r in range(batch)) + max(len(self.pending[i]) for i in indices)
        kv.reserve(longest + self.max_new_tokens)
        logits = self._prefill(batch)
        ids: dict[int, list[int]] = {i: [] for i in indices}
        logprobs: dict[int, list[float]] = {i: [] for i in indices}
        entropies: dict[int, list[float]] = {i: [] for i in indices}
        tails = dict.fromkeys(indices, "")
        truncated: dict[int, bool] = {}
        while True:
            logp = (logits / self.temperature if self.temperature > 0 else logits).log_softmax(-1)
            probs = logp.exp()
            token = self._sample(probs, batch) if self.temperature > 0 else logp.argmax(-1)
            chosen = logp.gather(-1, token[:, None])[:, 0].tolist()
            entropy = (-(probs * logp).sum(-1)).tolist()
            done = []
            for r, t in enumerate(token.tolist()):
                i = kv.episode[r]
                ids[i].append(t)
                logprobs[i].append(chosen[r])
                entropies[i].append(entropy[r])
                stop, tails[i] = self._stops(tails[i], t)
                if t == self.eos_id or stop or len(ids[i]) == self.max_new_tokens:
                    truncated[i] = not (t == self.eos_id or stop)
                    done.append(r)
            for r in reversed(done):  # descending, so the last row is never a finished one still to move
                batch -= 1
                kv.swap(r, batch)
            if batch == 0:
                break
            logits = self._step(batch, [ids[kv.episode[r]][-1] for r in range(batch)])
        turns = []
        prefix = "<answer>" if self._forced else ""
        for i in indices:
            self._append(i, ids[i], generated=True, logprobs=logprobs[i], entropies=entropies[i])
            self.pending[i] = ids[i][-1:]  # sampled but not yet encoded: it opens the next prefill
            turns.append((prefix + self.tokenizer.decode(ids[i], skip_special_tokens=True), len(ids[i]),
                          truncated[i]))
        return turns
