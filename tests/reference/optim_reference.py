# Reference numbers for tests/test_training.cpp, from torch 1.13 (float64).
# Re-run with: /usr/bin/python3 tests/reference/optim_reference.py
import math
import torch

torch.set_default_dtype(torch.float64)


def loss_fn(p):
    c = torch.tensor([0.3, 0.1, -0.2])
    w = torch.tensor([1.0, 2.0, 3.0])
    return ((p - c) ** 2 * w).sum() + 0.1 * (p ** 3).sum()


def trajectory(make, steps=5):
    p = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    opt = make([p])
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(p).backward()
        opt.step()
    return p.detach().tolist()


print("AdamW lr=0.1 (default wd 0.01):", trajectory(lambda ps: torch.optim.AdamW(ps, lr=0.1)))
print("AdamW lr=0.05 betas=(0.8,0.99) eps=1e-6 wd=0.1:",
      trajectory(lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)))


# Two parameter groups (different lr and weight decay) under LambdaLR with diffusers' cosine
# schedule (warmup 2, 8 training steps, num_cycles 0.5), 6 steps.
def cosine(step, warmup=2, total=8, cycles=0.5):
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))


p = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
q = torch.tensor([0.7, -0.3], requires_grad=True)
opt = torch.optim.AdamW([{"params": [p], "weight_decay": 0.1}, {"params": [q], "lr": 0.2, "weight_decay": 0.0}],
                        lr=0.1, weight_decay=0.01)
sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
for _ in range(6):
    opt.zero_grad()
    (loss_fn(p) + (q ** 2 * 0.5).sum() + q.sum()).backward()
    opt.step()
    sched.step()
print("groups p:", p.detach().tolist())
print("groups q:", q.detach().tolist())
print("groups lrs after 6 steps:", [g["lr"] for g in opt.param_groups])

# clip_grad_norm_
for norm_type, max_norm in [(2.0, 2.0), (float("inf"), 2.0), (1.0, 2.0), (2.0, 100.0)]:
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(2, 2, requires_grad=True)
    a.grad = torch.tensor([3.0, -4.0])
    b.grad = torch.tensor([[1.0, -2.0], [0.5, 2.5]])
    total = torch.nn.utils.clip_grad_norm_([a, b], max_norm, norm_type=norm_type)
    print("clip", norm_type, max_norm, "total:", total.item(), "a:", a.grad.tolist(), "b:", b.grad.flatten().tolist())
