# Copied unchanged from ../shared/bench/torch_fmnist_gpu.py (the shared peer benchmark), because
# ../shared does not travel to the GPU machine; scripts/gpu-check.sh runs it beside `myelin train`.
# Anchor: PyTorch eager time-to-accuracy on Fashion-MNIST on one GPU (ResNet-9-style, bf16, data on GPU).
# usage: python3 torch_fmnist_gpu.py DATA_DIR [epochs] [compile]
import gzip, sys, time, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
D = sys.argv[1]; epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 12; comp = len(sys.argv) > 3
def idx(name):
    with gzip.open(D + '/' + name) as f: b = f.read()
    nd = b[3]; dims = [int.from_bytes(b[4+4*i:8+4*i], 'big') for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4+4*nd).reshape(dims)
t0 = time.perf_counter()
dev = 'cuda'
xtr = torch.tensor(idx('train-images-idx3-ubyte.gz'), device=dev).float().div_(255).unsqueeze(1)
ytr = torch.tensor(idx('train-labels-idx1-ubyte.gz'), dtype=torch.int64, device=dev)
xte = torch.tensor(idx('t10k-images-idx3-ubyte.gz'), device=dev).float().div_(255).unsqueeze(1)
yte = torch.tensor(idx('t10k-labels-idx1-ubyte.gz'), dtype=torch.int64, device=dev)
mean, std = xtr.mean(), xtr.std(); xtr = (xtr-mean)/std; xte = (xte-mean)/std
def cbr(i,o): return nn.Sequential(nn.Conv2d(i,o,3,padding=1,bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
class Res(nn.Module):
    def __init__(s,c): super().__init__(); s.a=cbr(c,c); s.b=cbr(c,c)
    def forward(s,x): return x + s.b(s.a(x))
net = nn.Sequential(cbr(1,64), cbr(64,128), nn.MaxPool2d(2), Res(128), cbr(128,256), nn.MaxPool2d(2),
                    cbr(256,512), nn.MaxPool2d(2), Res(512), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512,10)).to(dev)
net = net.to(memory_format=torch.channels_last)
fwd = torch.compile(net) if comp else net
bs = 512; steps = epochs * (len(xtr)//bs)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
import os
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(os.environ.get('MAXLR', '0.2')), total_steps=steps, pct_start=0.25)
torch.manual_seed(0); hit = {}
def evaluate():
    fwd.eval(); c = 0
    with torch.no_grad(), torch.autocast('cuda', torch.bfloat16):
        for i in range(0, len(xte), 2000):
            xb = xte[i:i+2000]; o = fwd(xb) + fwd(xb.flip(3)); c += (o.argmax(1) == yte[i:i+2000]).sum().item()
    fwd.train(); return c / len(xte)
torch.cuda.synchronize(); t1 = time.perf_counter()
for ep in range(epochs):
    perm = torch.randperm(len(xtr), device=dev)
    for i in range(0, len(xtr) - bs + 1, bs):
        j = perm[i:i+bs]; xb = xtr[j]; yb = ytr[j]
        flip = torch.rand(bs, device=dev) < 0.5; xb = torch.where(flip[:,None,None,None], xb.flip(3), xb)
        xb = F.pad(xb, (2,2,2,2)); dx, dy = np.random.randint(0,5,2); xb = xb[:,:,dy:dy+28,dx:dx+28]
        with torch.autocast('cuda', torch.bfloat16):
            loss = F.cross_entropy(fwd(xb.contiguous(memory_format=torch.channels_last)), yb, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
    acc = evaluate(); t = time.perf_counter() - t1
    for thr in (0.92, 0.93, 0.94, 0.95):
        if acc >= thr and thr not in hit: hit[thr] = t
    print(f"epoch {ep+1}: {t:.2f}s test acc {acc*100:.2f}%", flush=True)
print("time-to-accuracy (s, training+eval, excl. load):", {k: round(v,2) for k,v in hit.items()}, "load", round(t1-t0,2))
