# Where PyTorch's ResNet-50 training step goes on the GPU: the peer of bench/torch_resnet50_bench.py
# (same network, torch.compile, channels_last, bf16 autocast, SGD with momentum) under
# torch.profiler, its CUDA kernel time per step summed by kind (convolutions, Inductor's fused
# Triton kernels, GEMMs, the rest), beside `myelin time`'s per-layer profile, and its peak memory.
# Not yet run on a GPU (written when no GPU time was left).
#   python3 bench/torch_resnet50_profile.py [BATCH] [STEPS]
import re
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_resnet50_bench import resnet50  # noqa: E402

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 256
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.backends.cudnn.benchmark = True
m = resnet50().cuda().to(memory_format=torch.channels_last)
x = torch.randn(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
y = torch.randint(0, 1000, (batch,), device="cuda")
f = torch.compile(m)
opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
lossf = torch.nn.CrossEntropyLoss()


def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cuda", torch.bfloat16):
        loss = lossf(f(x), y)
    loss.backward()
    opt.step()


for _ in range(15):
    step()
torch.cuda.synchronize()
torch.cuda.reset_peak_memory_stats()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(steps):
        step()
    torch.cuda.synchronize()


def kind(name):
    n = name.lower()
    if re.search(r"conv|xmma|implicit|dgrad|wgrad|fprop|cudnn", n):
        return "convolution (cuDNN)"
    if n.startswith("triton") or "triton" in n:
        return "Inductor's fused kernels (Triton)"
    if re.search(r"gemm|cutlass|sm90", n):
        return "GEMM"
    return "other"


kinds = {}
for e in prof.key_averages():
    if e.device_type != torch.autograd.DeviceType.CUDA:  # kernels only: host ops would count twice
        continue
    t = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
    k = kinds.setdefault(kind(e.key), [0.0, 0])
    k[0] += t / 1000.0 / steps
    k[1] += e.count // steps
total = sum(v[0] for v in kinds.values())
print(f"torch.compile bf16 channels_last batch {batch}: CUDA kernel time per step {total:.2f} ms, "
      f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
for k, (ms, count) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
    print(f"  {k:36} {ms:8.2f} ms  {count:4d} kernels")
