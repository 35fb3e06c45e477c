"""The course's models in plain PyTorch, for benchmarks/peer/peer_models.py: diffusers' UNet2DModel
re-implemented with the same module names (so it loads diffusers checkpoints; conformance against
diffusers' own outputs is checked before timing), the from-scratch BasicUNet of the course notebook, a
safetensors reader and DPM-Solver++(2M) as diffusers 0.21 runs it by default."""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- plain-PyTorch UNet2DModel
def get_timestep_embedding(timesteps, dim, flip_sin_to_cos, shift, dtype=torch.float32):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(0, half, dtype=dtype) / (half - shift)
    emb = timesteps[:, None].to(dtype) * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def activation(name):
    return {"silu": nn.SiLU, "swish": nn.SiLU, "mish": nn.Mish, "gelu": nn.GELU, "relu": nn.ReLU}[name.lower()]()


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1, self.act, self.linear_2 = nn.Linear(cin, dim), nn.SiLU(), nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class GaussianFourierProjection(nn.Module):
    def __init__(self, size, scale=16.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size) * scale, requires_grad=False)
        self.W = self.weight

    def forward(self, x):
        x_proj = torch.log(x)[:, None] * self.weight[None, :] * 2 * np.pi
        return torch.cat([torch.sin(x_proj), torch.cos(x_proj)], dim=-1)


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps, act, scale_shift, osf, up=False, down=False):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, 2 * cout if scale_shift else cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.act, self.scale_shift, self.osf, self.up, self.down = activation(act), scale_shift, osf, up, down
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.act(self.norm1(x))
        if self.up:
            x, h = F.interpolate(x, scale_factor=2.0, mode="nearest"), F.interpolate(h, scale_factor=2.0, mode="nearest")
        elif self.down:
            x, h = F.avg_pool2d(x, 2, 2), F.avg_pool2d(h, 2, 2)
        h = self.conv1(h)
        t = self.time_emb_proj(self.act(temb))[:, :, None, None]
        if not self.scale_shift:
            h = h + t
        h = self.norm2(h)
        if self.scale_shift:
            scale, shift = torch.chunk(t, 2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.act(h))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.osf


class Attention(nn.Module):
    def __init__(self, c, head_dim, groups, eps, rescale):
        super().__init__()
        self.heads, self.dh, self.rescale = c // head_dim, head_dim, rescale
        inner = self.heads * head_dim
        self.group_norm = nn.GroupNorm(groups, c, eps=eps) if groups is not None else None
        self.to_q, self.to_k, self.to_v = nn.Linear(c, inner), nn.Linear(c, inner), nn.Linear(c, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, c), nn.Dropout(0.0)])

    def forward(self, x):
        B, C, H, W = x.shape
        h = x.view(B, C, H * W).transpose(1, 2)
        if self.group_norm is not None:
            h = self.group_norm(h.transpose(1, 2)).transpose(1, 2)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        split = lambda t: t.reshape(B, H * W, self.heads, self.dh).permute(0, 2, 1, 3).reshape(B * self.heads, H * W, self.dh)
        q, k, v = split(q), split(k), split(v)
        scores = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype), q, k.transpose(-1, -2),
                               beta=0, alpha=self.dh ** -0.5)
        probs = scores.float().softmax(dim=-1).to(q.dtype)  # diffusers' upcast_softmax
        o = torch.bmm(probs, v).reshape(B, self.heads, H * W, self.dh).permute(0, 2, 1, 3).reshape(B, H * W, -1)
        o = self.to_out[0](o).transpose(-1, -2).reshape(B, C, H, W)
        return (o + x) / self.rescale


class Downsample2D(nn.Module):
    def __init__(self, c, padding):
        super().__init__()
        self.padding, self.conv = padding, nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    """DownBlock2D / AttnDownBlock2D / UpBlock2D / AttnUpBlock2D / UNetMidBlock2D (by arguments)."""

    def __init__(self, kind, resnet_io, attn, head_dim, groups, attn_groups, eps, act, ss, osf, resample, temb, pad, rtype):
        super().__init__()
        if attn:
            self.attentions = nn.ModuleList([Attention(o, head_dim, attn_groups, eps, osf)
                                             for (_, o) in (resnet_io[1:] if kind == "mid" else resnet_io)])
        self.resnets = nn.ModuleList([ResnetBlock2D(i, o, temb, groups, eps, act, ss, osf) for (i, o) in resnet_io])
        self.kind, self.attn, self.rtype = kind, attn, rtype
        c = resnet_io[-1][1]
        if resample and rtype == "resnet":
            r = ResnetBlock2D(c, c, temb, groups, eps, act, ss, osf, up=kind == "up", down=kind == "down")
            setattr(self, "downsamplers" if kind == "down" else "upsamplers", nn.ModuleList([r]))
        elif resample and kind == "down":
            self.downsamplers = nn.ModuleList([Downsample2D(c, pad)])
        elif resample and kind == "up":
            self.upsamplers = nn.ModuleList([Upsample2D(c)])

    def forward(self, h, temb, res):
        if self.kind == "mid":
            h = self.resnets[0](h, temb)
            for i, r in enumerate(self.resnets[1:]):
                h = r(self.attentions[i](h) if self.attn else h, temb)
            return h
        for i, r in enumerate(self.resnets):
            if self.kind == "up":
                h = torch.cat([h, res.pop()], dim=1)
            h = r(h, temb)
            if self.attn:
                h = self.attentions[i](h)
            if self.kind == "down":
                res.append(h)
        for name in ("downsamplers", "upsamplers"):
            if hasattr(self, name):
                s = getattr(self, name)[0]
                h = s(h, temb) if isinstance(s, ResnetBlock2D) else s(h)
                if name == "downsamplers":
                    res.append(h)
        return h


class PlainUNet2DModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = dict(in_channels=3, out_channels=3, time_embedding_type="positional", freq_shift=0, flip_sin_to_cos=True,
                 layers_per_block=2, mid_block_scale_factor=1, downsample_padding=1, downsample_type="conv",
                 upsample_type="conv", act_fn="silu", attention_head_dim=8, norm_num_groups=32,
                 attn_norm_num_groups=None, norm_eps=1e-5, resnet_time_scale_shift="default", add_attention=True,
                 class_embed_type=None, num_class_embeds=None, center_input_sample=False)
        c.update({k: v for k, v in cfg.items() if not k.startswith("_")})
        self.c = c
        ch = list(c["block_out_channels"])
        temb = ch[0] * 4
        groups, eps, act, ss = c["norm_num_groups"], c["norm_eps"], c["act_fn"], c["resnet_time_scale_shift"] == "scale_shift"
        hd = lambda n: c["attention_head_dim"] if c["attention_head_dim"] is not None else n
        self.conv_in = nn.Conv2d(c["in_channels"], ch[0], 3, padding=1)
        if c["time_embedding_type"] == "fourier":
            self.time_proj = GaussianFourierProjection(ch[0])
            tin = 2 * ch[0]
        else:
            tin = ch[0]
        self.time_embedding = TimestepEmbedding(tin, temb)
        if c["class_embed_type"] is None and c["num_class_embeds"] is not None:
            self.class_embedding = nn.Embedding(c["num_class_embeds"], temb)
        L = c["layers_per_block"]
        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i, t in enumerate(c["down_block_types"]):
            cin, out = out, ch[i]
            io = [(cin if j == 0 else out, out) for j in range(L)]
            attn = t == "AttnDownBlock2D"
            self.down_blocks.append(Block("down", io, attn, hd(out), groups, groups, eps, act, ss, 1.0, i < len(ch) - 1,
                                          temb, c["downsample_padding"], c["downsample_type"] if attn else "conv"))
        attn_groups = c["attn_norm_num_groups"]
        if attn_groups is None and not ss:
            attn_groups = groups
        self.mid_block = Block("mid", [(ch[-1], ch[-1])] * 2, c["add_attention"], hd(ch[-1]), groups, attn_groups, eps,
                               act, ss, c["mid_block_scale_factor"], False, temb, 1, "conv")
        self.up_blocks = nn.ModuleList()
        rev = ch[::-1]
        out = rev[0]
        for i, t in enumerate(c["up_block_types"]):
            prev, out, cin = out, rev[i], rev[min(i + 1, len(ch) - 1)]
            io = [((prev if j == 0 else out) + (cin if j == L else out), out) for j in range(L + 1)]
            attn = t == "AttnUpBlock2D"
            self.up_blocks.append(Block("up", io, attn, hd(out), groups, groups, eps, act, ss, 1.0, i < len(ch) - 1,
                                        temb, 1, c["upsample_type"] if attn else "conv"))
        self.conv_norm_out = nn.GroupNorm(groups, ch[0], eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch[0], c["out_channels"], 3, padding=1)

    def forward(self, sample, timesteps, class_labels=None):
        c = self.c
        if c["center_input_sample"]:
            sample = 2 * sample - 1.0
        timesteps = timesteps * torch.ones(sample.shape[0], dtype=timesteps.dtype)
        if c["time_embedding_type"] == "fourier":
            t_emb = self.time_proj(timesteps)
        else:
            t_emb = get_timestep_embedding(timesteps, c["block_out_channels"][0], c["flip_sin_to_cos"], c["freq_shift"],
                                           torch.float32 if sample.dtype == torch.float32 else torch.float64)
        emb = self.time_embedding(t_emb.to(sample.dtype))
        if hasattr(self, "class_embedding"):
            emb = emb + self.class_embedding(class_labels).to(sample.dtype)
        h = self.conv_in(sample)
        res = [h]
        for b in self.down_blocks:
            h = b(h, emb, res)
        h = self.mid_block(h, emb, None)
        for b in self.up_blocks:
            h = b(h, emb, res)
        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        if c["time_embedding_type"] == "fourier":
            h = h / timesteps.reshape(-1, 1, 1, 1)
        return h


class BasicUNet(nn.Module):
    """The course notebook's from-scratch model, unchanged."""

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


# ---------------------------------------------------------------- DPM-Solver++(2M)
def dpmpp_2m_sample(model, noise, steps, num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02):
    """diffusers' DPMSolverMultistepScheduler defaults (linear betas, solver_order 2, dpmsolver++, midpoint,
    lower_order_final, linspace spacing) driving an epsilon-predicting model."""
    betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    acp = torch.cumprod(1.0 - betas, dim=0)
    alpha, sigma = acp.sqrt(), (1 - acp).sqrt()
    lam = alpha.log() - sigma.log()
    ts = np.linspace(0, num_train_timesteps - 1, steps + 1).round()[::-1][:-1].astype(np.int64).tolist()
    x, prev_x0, prev_t = noise, None, None
    for i, t in enumerate(ts):
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.int64))
        x0 = (x - sigma[t] * eps) / alpha[t]
        s = 0 if i == len(ts) - 1 else ts[i + 1]
        h = lam[s] - lam[t]
        first_order = prev_x0 is None or (i == len(ts) - 1 and len(ts) < 15)
        x = (sigma[s] / sigma[t]) * x - alpha[s] * torch.expm1(-h) * x0
        if not first_order:
            r0 = (lam[t] - lam[prev_t]) / h
            x = x - 0.5 * alpha[s] * torch.expm1(-h) * (x0 - prev_x0) / r0
        prev_x0, prev_t = x0, t
    return x


# ---------------------------------------------------------------- fixtures (for --check)
def load_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        dt = {"F32": np.float32, "F64": np.float64}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(data[8 + n + s:8 + n + e], dtype=dt).reshape(v["shape"]).copy())
    return out


def load_checked(fixtures, case, make_model):
    """The fixture UNet `case` with diffusers' weights, built by make_model(config), and the largest
    relative difference between its float32 output and the one diffusers computed: (model, difference)."""
    import os
    cfg = json.load(open(os.path.join(fixtures, "unet_" + case, "config.json")))
    ref = load_safetensors(os.path.join(fixtures, "unet_" + case + ".safetensors"))
    weights = load_safetensors(os.path.join(fixtures, "unet_" + case, "diffusion_pytorch_model.safetensors"))
    model = make_model(cfg)
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    labels = ref["class_labels"].long() if "class_labels" in ref else None
    with torch.no_grad():
        out = model(ref["input"].float(), ref["timesteps"].long(), labels)
    out = getattr(out, "sample", out)
    expected = ref["output.f32"].double()
    rel = ((out.double() - expected).abs().max() / expected.abs().max()).item()
    return model, rel
