# PyTorch reads a Myelin lstm-fmnist run's weights into nn.LSTM + nn.Linear by name (no renaming,
# no reshaping: the safetensors names, layouts and gate order are PyTorch's) and scores the
# Fashion-MNIST test set; the accuracy should be the one `myelin train` reported.
#
#   /usr/bin/python3 bench/torch_lstm_fmnist_weights.py RUN_DIR [FMNIST_DIR]
import gzip, json, os, struct, sys
import numpy as np
import torch
import torch.nn as nn

run = sys.argv[1]
data = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"


def safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(t["shape"]).copy())
    return out


def idx(name):
    raw = gzip.open(os.path.join(data, name)).read()
    dims = raw[3]
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    return np.frombuffer(raw[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


w = safetensors(os.path.join(run, "weights.safetensors"))
lstm, fc = nn.LSTM(28, 128, batch_first=True), nn.Linear(128, 10)
lstm.load_state_dict({k[len("lstm."):]: v for k, v in w.items() if k.startswith("lstm.")})
fc.load_state_dict({k[len("fc."):]: v for k, v in w.items() if k.startswith("fc.")})
x = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255)
y = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
with torch.no_grad():
    _, (h, _) = lstm(x)
    accuracy = (fc(h[-1]).argmax(1) == y).float().mean().item()
print(f"PyTorch nn.LSTM with Myelin's weights: test accuracy {100 * accuracy:.2f}%")
