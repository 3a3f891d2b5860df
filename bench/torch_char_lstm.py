# PyTorch peer of models/char-lstm.yaml on a Myelin text dataset (`myelin dataset create --text`):
# the same model (embedding 512, 2x512 nn.LSTM, a linear score per step), recipe (Adam, lr 0.002
# with cosine decay to 0 over the run, global gradient-norm clipping at 5, batch 32 rows of 128
# steps) and batches (the training stream cut into 32 contiguous rows, state carried from batch
# to batch and detached, zeroed at each epoch), trained for ITERATIONS steps; then the held-out
# loss in bits per character over the validation stream read the same way (EVAL_BATCH rows).
#
#   python3 bench/torch_char_lstm.py DATASET_DIR ITERATIONS [DEVICE=cuda] [EVAL_BATCH=100] [SEED=1]
#
# Prints one JSON line: iterations, seconds, tokens_per_second, bits_per_char, and a sample.
import json, math, os, sys, time
import numpy as np
import torch
import torch.nn as nn

data, iterations = sys.argv[1], int(sys.argv[2])
dev = sys.argv[3] if len(sys.argv) > 3 else "cuda"
eval_batch = int(sys.argv[4]) if len(sys.argv) > 4 else 100
torch.manual_seed(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
meta = json.load(open(os.path.join(data, "text.json")))
vocab = meta["vocabulary"]
V, H, E, T, B = len(vocab), 512, 512, 128, 32


def tokens(split):
    return torch.from_numpy(np.fromfile(os.path.join(data, meta[split].get("file", split + ".tokens")),
                                        dtype="<i4").astype(np.int64))


def rows(stream, batch):  # [batch, L] contiguous rows, as Myelin's TextLoader cuts them
    L = (len(stream) - 1) // batch
    x = stream[: batch * L].view(batch, L)
    y = stream[1: batch * L + 1].view(batch, L)
    return x.to(dev), y.to(dev), L // T


class CharLSTM(nn.Module):
    def __init__(s):
        super().__init__()
        s.embed, s.lstm, s.out = nn.Embedding(V, E), nn.LSTM(E, H, 2, batch_first=True), nn.Linear(H, V)

    def forward(s, x, state):
        y, state = s.lstm(s.embed(x), state)
        return s.out(y), state


model = CharLSTM().to(dev)
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iterations)
x, y, per_epoch = rows(tokens("train"), B)
state, k = None, 0
start = time.perf_counter()
for it in range(iterations):
    if k == per_epoch:
        state, k = None, 0
    xb, yb = x[:, k * T:(k + 1) * T], y[:, k * T:(k + 1) * T]
    k += 1
    logits, state = model(xb, state)
    state = tuple(s.detach() for s in state)
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), yb.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    sched.step()
if dev == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start

model.eval()
vx, vy, batches = rows(tokens("validation"), eval_batch)
total, count, state = 0.0, 0, None
with torch.no_grad():
    for k in range(batches):
        logits, state = model(vx[:, k * T:(k + 1) * T], state)
        total += nn.functional.cross_entropy(logits.reshape(-1, V), vy[:, k * T:(k + 1) * T].reshape(-1),
                                             reduction="sum").item()
        count += vy[:, k * T:(k + 1) * T].numel()
    # A sample after a newline, temperature 0.8.
    state, tok, text = None, torch.tensor([[vocab.index("\n") if "\n" in vocab else 0]], device=dev), ""
    for _ in range(200):
        logits, state = model(tok, state)
        tok = torch.multinomial(torch.softmax(logits[0, -1] / 0.8, 0), 1).view(1, 1)
        text += vocab[tok.item()]
print(json.dumps({"who": "torch", "iterations": iterations, "seconds": seconds,
                  "tokens_per_second": iterations * B * T / seconds,
                  "bits_per_char": total / count / math.log(2), "tokens": count, "sample": text}))
