#!/usr/bin/env bash
# GPU check of the training and evaluation commands on CUDA, sized for a short lease of one GPU.
#
# The real SmolLM2 weights are too large for the device transfer, so this runs
#   1. a tiny random core: `netgpt train --device cuda` 4 steps straight, and 2 steps then `--resume` to 4 (the
#      metrics of steps 3-4 are compared), `netgpt sft` on cuda, and `netgpt eval` of the trained checkpoint;
#   2. a randomly initialised core with SmolLM2-135M's exact architecture (its config.json) in bfloat16: the time of
#      RL steps and of an evaluation at the real model's size (random weights never stop early: worst case);
#   3. the RL trainer on cuda with a learnable toy reward (tests/rl/test_trainer.py's odd-token share), so the
#      masked loss, backward and optimiser run on the GPU: the tiny core (the reward must rise) and the SmolLM2-size
#      core (time of an update step).
# PARTS picks the parts (default "tiny smol learn").
# Needs: the tokenizer files in .tok/ (tokenizer.json, tokenizer_config.json, chat_template.jinja, config.json) and,
# where the machine lacks our Python dependencies, their wheels in .whl/ (results/gpu_check/README.md says how to
# prepare both).
# Usage: OUT=/some/dir bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
NETGPT="python3 -m netgpt.cli"
W=/tmp/gpu_check_work
rm -rf "$W" && mkdir -p "$W"
PARTS=${PARTS:-tiny smol learn}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - "$W" <<'EOF'
import json, sys, torch, transformers
from pathlib import Path
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from netgpt.core.model import tiny_model
work = Path(sys.argv[1])
print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())
tok = AutoTokenizer.from_pretrained(".tok")
tok.pad_token = tok.eos_token
tiny = tiny_model(tok, hidden_size=64, layers=2)
tiny.save_pretrained(work / "tiny"); tok.save_pretrained(work / "tiny")
torch.manual_seed(0)
smol = LlamaForCausalLM(LlamaConfig(**json.loads(Path(".tok/config.json").read_text())))
smol.save_pretrained(work / "smol-random"); tok.save_pretrained(work / "smol-random")
print("smol-random parameters", sum(p.numel() for p in smol.parameters()))
EOF
if [[ $PARTS == *tiny* ]]; then
sed -e 's/^save_steps: .*/save_steps: 2/' -e 's/^tasks_per_step: .*/tasks_per_step: 4/' configs/rl-cpu.yaml > "$W/rl.yaml"
$NETGPT train --config "$W/rl.yaml" --model "$W/tiny" --device cuda --steps 4 --out "$W/rl-straight" 2>&1 | tail -3
$NETGPT train --config "$W/rl.yaml" --model "$W/tiny" --device cuda --steps 2 --out "$W/rl-resumed" 2>&1 | tail -2
$NETGPT train --config "$W/rl.yaml" --model "$W/tiny" --device cuda --steps 4 --out "$W/rl-resumed" --resume 2>&1 \
  | tail -2
python3 - "$W" <<'EOF'
import json, sys
from pathlib import Path
rows = {n: [json.loads(l) for l in (Path(sys.argv[1]) / n / "metrics.jsonl").read_text().splitlines()]
        for n in ("rl-straight", "rl-resumed")}
for key in ("loss", "score", "rollout_entropy", "tokens"):
    a = [r.get(key) for r in rows["rl-straight"][2:4]]
    b = [r.get(key) for r in rows["rl-resumed"][-2:]]
    print(f"resume check {key}: straight {a} resumed {b}")
EOF
cp "$W/rl-straight/metrics.jsonl" "$OUT/tiny_rl_metrics.jsonl"
sed -e "s#^model: .*#model: $W/tiny#" -e 's/^device: .*/device: cuda/' -e 's/^n_tasks: .*/n_tasks: 24/' \
  configs/sft-cpu.yaml > "$W/sft.yaml"
$NETGPT sft --config "$W/sft.yaml" --out "$W/sft" 2>&1 | tail -2
$NETGPT eval --policy "$W/rl-straight/checkpoint-000004/model" --device cuda --split test --limit 24 \
  --out "$W/eval-tiny" 2>&1 | tail -2
fi
if [[ $PARTS == *smol* ]]; then
# the real model's size, random weights, bfloat16
sed -e 's/^save_steps: .*/save_steps: 100/' -e 's/^tasks_per_step: .*/tasks_per_step: 8/' \
  -e 's/^num_generations: .*/num_generations: 8/' configs/rl-cpu.yaml > "$W/rl-smol.yaml"
$NETGPT train --config "$W/rl-smol.yaml" --model "$W/smol-random" --device cuda --dtype bfloat16 --steps 3 \
  --out "$W/rl-smol" 2>&1 | tail -2
cp "$W/rl-smol/metrics.jsonl" "$OUT/smol_random_rl_metrics.jsonl"
for bs in 32 120; do
  $NETGPT eval --policy "$W/smol-random" --device cuda --dtype bfloat16 --split test --limit 120 --batch-size $bs \
    --out "$W/eval-smol-b$bs" 2>&1 | tail -1
done
fi
if [[ $PARTS == *learn* ]]; then
python3 - "$W" "$OUT" <<'EOF'
import json, sys, torch
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
from netgpt.protocol import AgentRegistry
from netgpt.rl.trainer import RLTrainer
sys.path.insert(0, ".")
from tests.rl.test_trainer import _config, _peaked_tiny_model, odd_token_share
work, out = Path(sys.argv[1]), Path(sys.argv[2])
tok = AutoTokenizer.from_pretrained(work / "tiny")
with AgentRegistry.from_config(None) as registry:
    for name, model, kw in [
        ("tiny", _peaked_tiny_model(tok), dict(steps=6, learning_rate=2e-2)),
        ("smol-random-bf16", AutoModelForCausalLM.from_pretrained(work / "smol-random", dtype=torch.bfloat16),
         dict(steps=3, learning_rate=1e-4, tasks_per_step=8, num_generations=8, max_new_tokens=32,
              train="top_layers", top_layers=8))]:
        trainer = RLTrainer(_config(work / f"learn-{name}", device="cuda", **kw), model, tok, registry,
                            reward_fn=odd_token_share)
        rows = [metrics.row() for metrics in trainer.train()]
        trainer.close()
        episodes = [json.loads(line) for line in trainer.rollouts_path.read_text().splitlines()]
        rewards = [sum(e["reward"] for e in episodes if e["step"] == r["step"])
                   / sum(e["step"] == r["step"] for e in episodes) for r in rows]
        summary = {"model": name, "device": str(next(trainer.model.parameters()).device), "toy_reward": rewards,
                   "loss": [r["loss"] for r in rows], "grad_norm": [r["grad_norm"] for r in rows],
                   "rollout_s": [r["rollout_s"] for r in rows], "update_s": [r["update_s"] for r in rows]}
        print(json.dumps(summary))
        with open(out / "learn.jsonl", "a") as f:
            f.write(json.dumps(summary) + "\n")
EOF
fi
nvidia-smi --query-gpu=memory.used --format=csv,noheader
