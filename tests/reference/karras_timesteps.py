# Reference timesteps for the Karras test in tests/test_schedulers.cpp: diffusers 0.21's
# HeunDiscreteScheduler / EulerDiscreteScheduler set_timesteps with use_karras_sigmas=True,
# written out step by step (its float32 sigmas and log-sigmas, NumPy 1.x casting).
# Re-run with: /usr/bin/python3 tests/reference/karras_timesteps.py
import numpy as np
import torch


def karras_timesteps(beta_start, beta_end, n, n_train=1000):
    betas = torch.linspace(beta_start, beta_end, n_train, dtype=torch.float32)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    sigmas = np.array(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)
    log_sigmas = np.log(sigmas)
    timesteps = np.linspace(0, n_train - 1, n, dtype=float)[::-1].copy()
    sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
    sigma_min, sigma_max, rho = sigmas[-1].item(), sigmas[0].item(), 7.0
    ramp = np.linspace(0, 1, n)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    out = []
    for sigma in sigmas:  # _sigma_to_t
        log_sigma = np.log(sigma)
        dists = log_sigma - log_sigmas[:, np.newaxis]
        low_idx = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
        low, high = log_sigmas[low_idx], log_sigmas[low_idx + 1]
        w = np.clip((low - log_sigma) / (low - high), 0, 1)
        out.append(((1 - w) * low_idx + w * (low_idx + 1)).item())
    return out


for args in [(0.00085, 0.012, 10), (0.0001, 0.02, 10)]:
    print(args, "{" + ", ".join("%.12f" % t for t in karras_timesteps(*args)) + "}")
