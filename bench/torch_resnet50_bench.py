# Copied from ../shared/bench/torch_resnet50_bench.py (the shared peer benchmark), because ../shared
# does not travel to the GPU machine; the model, the step and the timing unchanged, the peak memory
# of the steps printed after the speed.
# Anchor: PyTorch ResNet-50 (ImageNet shape 3x224x224, 1000 classes) training throughput.
# usage: python3 torch_resnet50_bench.py MODES BATCHES   e.g. bf16cl,bf16clcompile,tf32 64,256
import sys, time, torch, torch.nn as nn
torch.backends.cudnn.benchmark = True
class Bottleneck(nn.Module):
    def __init__(s, cin, mid, stride):
        super().__init__(); cout = mid * 4
        s.c1 = nn.Conv2d(cin, mid, 1, bias=False); s.b1 = nn.BatchNorm2d(mid)
        s.c2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False); s.b2 = nn.BatchNorm2d(mid)
        s.c3 = nn.Conv2d(mid, cout, 1, bias=False); s.b3 = nn.BatchNorm2d(cout)
        s.down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        s.r = nn.ReLU(inplace=True)
    def forward(s, x):
        y = s.r(s.b1(s.c1(x))); y = s.r(s.b2(s.c2(y))); y = s.b3(s.c3(y))
        return s.r(y + (x if s.down is None else s.down(x)))
def resnet50():
    L = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(True), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for mid, n, st in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(n): L.append(Bottleneck(cin, mid, st if i == 0 else 1)); cin = mid * 4
    L += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*L)
def run(bs, mode, iters=20, warm=5):
    m = resnet50().cuda(); x = torch.randn(bs, 3, 224, 224, device='cuda'); y = torch.randint(0, 1000, (bs,), device='cuda')
    if 'cl' in mode: m = m.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)
    f = torch.compile(m) if 'compile' in mode else m
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = 'tf32' in mode
    amp = 'bf16' in mode; lossf = nn.CrossEntropyLoss()
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cuda', torch.bfloat16, enabled=amp): loss = lossf(f(x), y)
        loss.backward(); opt.step()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(warm + (10 if 'compile' in mode else 0)): step()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(iters): step()
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(f"resnet50 bs={bs} mode={mode}: {bs*iters/dt:.0f} img/s", flush=True)
    # Peak memory of the steps: tensors allocated, and what the caching allocator reserved.
    print(f"resnet50 bs={bs} mode={mode} memory: allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB,"
          f" reserved {torch.cuda.max_memory_reserved() / 2**20:.0f} MiB", flush=True)
modes = sys.argv[1].split(','); batches = [int(b) for b in sys.argv[2].split(',')]
for b in batches:
    for md in modes: run(b, md)
