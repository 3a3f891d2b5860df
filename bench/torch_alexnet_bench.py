# Copied from ../shared/bench/torch_alexnet_bench.py (the shared peer benchmark), because ../shared
# does not travel to the GPU machine. One addition: an optional third argument, a comma list of
# batch sizes (default 64,128,256 as in the original), so one mode can run at one batch size.
# Anchor: PyTorch AlexNet ("Supervision", the seed's benchmark model) training throughput.
import time, sys, torch, torch.nn as nn
torch.backends.cudnn.benchmark = True
def alexnet(nc=1000):
    return nn.Sequential(
        nn.Conv2d(3,96,11,4), nn.ReLU(True), nn.LocalResponseNorm(5,1e-4,0.75,1.0), nn.MaxPool2d(3,2),
        nn.Conv2d(96,256,5,1,2,groups=2), nn.ReLU(True), nn.LocalResponseNorm(5,1e-4,0.75,1.0), nn.MaxPool2d(3,2),
        nn.Conv2d(256,384,3,1,1), nn.ReLU(True),
        nn.Conv2d(384,384,3,1,1,groups=2), nn.ReLU(True),
        nn.Conv2d(384,256,3,1,1,groups=2), nn.ReLU(True), nn.MaxPool2d(3,2),
        nn.Flatten(), nn.Linear(256*6*6,4096), nn.ReLU(True), nn.Dropout(),
        nn.Linear(4096,4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096,nc))
def run(dev, bs, mode, iters=20, warm=5):
    m = alexnet().to(dev)
    x = torch.randn(bs,3,227,227,device=dev); y = torch.randint(0,1000,(bs,),device=dev)
    if mode.endswith('cl'): m = m.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)
    fwd = torch.compile(m) if 'compile' in mode else m
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    lossf = nn.CrossEntropyLoss()
    torch.backends.cuda.matmul.allow_tf32 = 'tf32' in mode
    torch.backends.cudnn.allow_tf32 = 'tf32' in mode
    amp = 'bf16' in mode
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=amp):
            loss = lossf(fwd(x), y)
        loss.backward(); opt.step()
    for _ in range(warm + (10 if 'compile' in mode else 0)): step()
    if dev=='cuda': torch.cuda.synchronize()
    t=time.perf_counter()
    for _ in range(iters): step()
    if dev=='cuda': torch.cuda.synchronize()
    dt=time.perf_counter()-t
    print(f"{dev} bs={bs} mode={mode} {iters} iters: {dt:.3f}s  {bs*iters/dt:.0f} img/s", flush=True)
dev = sys.argv[1] if len(sys.argv)>1 else 'cuda'
modes = sys.argv[2].split(',') if len(sys.argv)>2 else ['fp32','tf32','bf16','bf16cl']
batches = [int(b) for b in sys.argv[3].split(',')] if len(sys.argv)>3 else [64,128,256]
for bs in batches:
    for mode in modes:
        run(dev, bs, mode, iters=20 if dev=='cuda' else 2, warm=5 if dev=='cuda' else 1)
