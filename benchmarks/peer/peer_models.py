#!/usr/bin/env python3
"""PyTorch peer of bench_models: the same cases measured the same way, one JSON line per case.

  /usr/bin/python3 benchmarks/peer/peer_models.py [--case NAME]... [--min_time S] [--threads 2]

train = forward + MSE + backward + AdamW step, forward = one no-grad forward, peak_rss_mb = the peak
resident memory of a process of its own during the training steps (each case runs in a fresh
process), sample_dpmpp20 = 256 images from unet_course28 in 20 DPM-Solver++ steps (one run).
The UNet2DModel is diffusers' when diffusers is importable and the plain-PyTorch copy in
torch_models.py otherwise; before timing, it loads diffusers' course_fmnist28 fixture weights and
must reproduce diffusers' output for them (the first line says how closely)."""
import argparse
import json
import multiprocessing
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "diffusers")

COURSE28 = dict(sample_size=28, in_channels=1, out_channels=1, layers_per_block=2, block_out_channels=[32, 64, 64],
                down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
                up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"])
COURSE32 = dict(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                block_out_channels=[64, 128, 128, 256],
                down_block_types=["DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
                up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"])
MAIN = dict(sample_size=28, in_channels=1, out_channels=1, layers_per_block=2, block_out_channels=[32, 64, 64],
            down_block_types=["DownBlock2D"] * 3, up_block_types=["UpBlock2D"] * 3, add_attention=False)


def unet_impl():
    """(constructor from a config dict returning a callable model(x, t) -> tensor, name)."""
    try:
        from diffusers import UNet2DModel

        class Wrapped(torch.nn.Module):
            def __init__(self, cfg):
                super().__init__()
                self.unet = UNet2DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})

            def forward(self, x, t, labels=None):
                return self.unet(x, t, labels).sample

            def load_state_dict(self, sd, strict=True):
                return self.unet.load_state_dict(sd, strict=strict)

        return Wrapped, "diffusers"
    except ImportError:
        return tm.PlainUNet2DModel, "plain-torch"


def status_mb(key):
    """A memory line of /proc/self/status (VmHWM: peak resident, VmRSS: resident now), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1]) / 1024.0
    return 0.0


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def seconds_per_call(fn, min_time):
    fn()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if calls >= 3 and elapsed >= min_time:
            return elapsed / calls


def time_denoiser(model, batch, channels, size, min_time, base):
    torch.manual_seed(0)
    x, target = torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size)
    t = torch.randint(0, 1000, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step():
        loss = F.mse_loss(model(x, t), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            model(x, t)

    reset_peak_rss()
    train = batch / seconds_per_call(train_step, min_time)
    peak = status_mb("VmHWM")
    fwd = batch / seconds_per_call(forward, min_time)
    return dict(batch=batch, train_img_per_s=round(train, 2), forward_img_per_s=round(fwd, 2), peak_rss_mb=round(peak, 1),
                base_rss_mb=round(base, 1))


class BasicUNetCase(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = tm.BasicUNet(1, 1)

    def forward(self, x, t):
        return self.net(x)


def run_case(name, min_time):
    base = status_mb("VmRSS")
    make, impl = unet_impl()
    torch.manual_seed(0)
    if name == "basic_unet":
        r = time_denoiser(BasicUNetCase(), 128, 1, 28, min_time, base)
    elif name == "unet_course28":
        model, _ = tm.load_checked(FIXTURES, "course_fmnist28", make)
        r = time_denoiser(model, 128, 1, 28, min_time, base)
    elif name == "unet_course32":
        r = time_denoiser(make(COURSE32), 16, 3, 32, min_time, base)
    elif name == "unet_main":
        r = time_denoiser(make(MAIN), 64, 1, 28, min_time, base)
    elif name == "sample_dpmpp20":
        model, _ = tm.load_checked(FIXTURES, "course_fmnist28", make)
        noise = torch.randn(256, 1, 28, 28)
        reset_peak_rss()
        t0 = time.perf_counter()
        with torch.no_grad():
            tm.dpmpp_2m_sample(model, noise, 20)
        s = time.perf_counter() - t0
        r = dict(batch=256, train_img_per_s=None, forward_img_per_s=round(256 / s, 2), peak_rss_mb=round(status_mb("VmHWM"), 1),
                 base_rss_mb=round(base, 1), sample_s=round(s, 3))
    else:
        raise SystemExit(f"peer_models: unknown case {name!r}")
    return dict(case=name, impl="torch-" + impl, threads=torch.get_num_threads(), **r)


def child(name, min_time, threads, queue):
    torch.set_num_threads(threads)
    queue.put(run_case(name, min_time))


CASES = ["basic_unet", "sample_dpmpp20", "unet_course28", "unet_course32", "unet_main"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", choices=CASES, help="run only this case (repeatable)")
    ap.add_argument("--min_time", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    make, impl = unet_impl()
    _, rel = tm.load_checked(FIXTURES, "course_fmnist28", make)
    if rel > 1e-4:
        raise SystemExit(f"peer_models: {impl} UNet2DModel does not reproduce diffusers' course_fmnist28 output "
                         f"(relative difference {rel:.2e})")
    print(json.dumps(dict(check="course_fmnist28", impl="torch-" + impl, torch=torch.__version__,
                          max_rel_diff_vs_diffusers=float(f"{rel:.3g}"))), flush=True)
    ctx = multiprocessing.get_context("spawn")  # a fresh process per case: its own peak memory
    for name in a.case or CASES:
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(name, a.min_time, a.threads, q))
        p.start()
        result = q.get()
        p.join()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
