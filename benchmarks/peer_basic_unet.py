#!/usr/bin/env python3
"""PyTorch peer of bench_basic_unet: the course's BasicUNet, batch 128, 28x28, Adam.

Run: python3 benchmarks/peer_basic_unet.py [--threads 2] [--iters 10]
(needs Debian's python3-torch; torch's default here is one thread, so set it explicitly.)"""
import argparse
import time

import torch
from torch import nn


class BasicUNet(nn.Module):
    """The notebook's model, unchanged."""

    def __init__(self, in_channels=1, out_channels=1):
        super().__init__()
        self.down_layers = nn.ModuleList([nn.Conv2d(in_channels, 32, 5, padding=2),
                                          nn.Conv2d(32, 64, 5, padding=2),
                                          nn.Conv2d(64, 64, 5, padding=2)])
        self.up_layers = nn.ModuleList([nn.Conv2d(64, 64, 5, padding=2),
                                        nn.Conv2d(64, 32, 5, padding=2),
                                        nn.Conv2d(32, out_channels, 5, padding=2)])
        self.act = nn.SiLU()
        self.downscale = nn.MaxPool2d(2)
        self.upscale = nn.Upsample(scale_factor=2)

    def forward(self, x):
        h = []
        for i, l in enumerate(self.down_layers):
            x = self.act(l(x))
            if i < 2:
                h.append(x)
                x = self.downscale(x)
        for i, l in enumerate(self.up_layers):
            if i > 0:
                x = self.upscale(x)
                x += h.pop()
            x = self.act(l(x))
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = BasicUNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(a.batch, 1, 28, 28)
    target = torch.rand(a.batch, 1, 28, 28)

    def train_step():
        loss = nn.functional.mse_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            net(x)

    def rate(fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            fn()
        return a.batch * a.iters / (time.perf_counter() - t0)

    print(f"PyTorch {torch.__version__} BasicUNet 28x28, batch {a.batch}, {torch.get_num_threads()} threads")
    print(f"forward:       {rate(forward):8.1f} images/s")
    print(f"training step: {rate(train_step):8.1f} images/s")


if __name__ == "__main__":
    main()
