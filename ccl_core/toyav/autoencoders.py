"""Small video and audio autoencoders for ToyAV latents (docs/TOYAV-AUTOENCODERS.md).

VideoAE: 64 x 64 RGB at 16 fps -> latent [B, 8, T/2, H/8, W/8] at 8 latent fps. Each pair of
frames is folded into the channels (a temporal stride of 2) and coded by a 2-D conv encoder and
decoder; the decoder predicts the difference from the ToyAV background.

AudioAE: 16 kHz mono -> latent [B, 8, S/256] at 62.5 latents/s. The encoder reads two
log-magnitude spectrograms (a 64 ms window for pitch and timbre, a 8 ms window at a 1 ms hop for
onsets); the decoder is a DDSP-style synthesiser: a harmonic oscillator bank driven by a
per-frame fundamental and harmonic distribution, an amplitude envelope at 0.5 ms resolution
(learned transposed-conv upsampling, so onsets are placed to the millisecond), and white noise
under a per-frame gain. Its output is always a clean periodic tone, which keeps the pitch of
decoded diffusion samples exact.

Both `encode` methods return latents normalised per channel with the mean and std measured on
training clips (stored in the file's metadata); `decode` undoes the normalisation.

Files are safetensors whose metadata holds `format`, `config` (JSON) and `metrics` (JSON).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..assets import ASSETS, AUDIO_AE_FILE, VIDEO_AE_FILE
from . import clip

VIDEO_FORMAT = "ccl-toyav-video-ae"
AUDIO_FORMAT = "ccl-toyav-audio-ae"
FORMAT_VERSION = "1"


# ---------------------------------------------------------------------------------- configs
@dataclass
class VideoAEConfig:
    latent_channels: int = 8
    temporal_factor: int = 2  # frames folded into one latent frame
    widths: tuple = (16, 32, 64, 96)  # full, 1/2, 1/4, 1/8 resolution
    res_blocks: int = 2  # residual blocks at 1/8 resolution, in the encoder and in the decoder
    fps: float = float(clip.FPS)
    background: tuple = tuple(clip.BACKGROUND)
    # Per-channel statistics of the raw latent on training clips; encode returns
    # (raw - latent_mean) / latent_std.
    latent_mean: Optional[list] = None
    latent_std: Optional[list] = None

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.widths) - 1)


@dataclass
class AudioAEConfig:
    latent_channels: int = 8
    sample_rate: int = clip.SAMPLE_RATE
    hop: int = 256  # samples per latent
    width: int = 96
    fine_width: int = 64
    dilations: tuple = (1, 3, 9, 27, 1)  # residual blocks of the encoder and decoder trunks
    n_harmonics: int = 32
    envelope_upsample: tuple = (4, 4, 2)  # latent rate -> envelope rate (hop 256 / 32 = 8 samples)
    f0_ref_hz: float = 440.0
    noise_seed: int = 0  # the decoder's noise is drawn from this seed, so decode is deterministic
    latent_mean: Optional[list] = None
    latent_std: Optional[list] = None

    @property
    def envelope_hop(self) -> int:
        return self.hop // math.prod(self.envelope_upsample)


def _config_to_json(cfg) -> str:
    d = dataclasses.asdict(cfg)
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}, sort_keys=True)


def _config_from_json(cls, text: str):
    d = json.loads(text)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
    for f in dataclasses.fields(cls):
        if f.name in d and isinstance(f.default, tuple):
            d[f.name] = tuple(d[f.name])
    return cls(**d)


# ---------------------------------------------------------------------------------- blocks
class ResBlock2d(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class ResBlock1d(nn.Module):
    def __init__(self, ch: int, dilation: int = 1, kernel: int = 3):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.conv1 = nn.Conv1d(ch, ch, kernel, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(ch, ch, 1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def _from_config(name: str) -> property:
    """A read-only attribute of the model that is its config's field `name`."""
    return property(lambda self: getattr(self.config, name))


# ---------------------------------------------------------------------------------- video
class _LatentStats(nn.Module):
    """Per-channel latent normalisation shared by both autoencoders (statistics live in the config)."""

    def _set_stats(self, mean, std):
        c = self.config.latent_channels
        mean = torch.zeros(c) if mean is None else torch.tensor(mean, dtype=torch.float32)
        std = torch.ones(c) if std is None else torch.tensor(std, dtype=torch.float32)
        if mean.shape != (c,) or std.shape != (c,) or not (std > 0).all():
            raise ValueError(f"latent statistics must be {c} means and {c} positive stds")
        self.register_buffer("latent_mean", mean, persistent=False)
        self.register_buffer("latent_std", std, persistent=False)
        self.config.latent_mean, self.config.latent_std = mean.tolist(), std.tolist()

    def set_latent_stats(self, mean, std) -> None:
        self._set_stats(list(map(float, mean)), list(map(float, std)))

    latent_channels = _from_config("latent_channels")


class VideoAE(_LatentStats):
    """Frames [B, T, H, W, 3] (or [B, 3, T, H, W]) in 0..1 <-> latent [B, C, T/2, H/8, W/8]."""

    def __init__(self, config: Optional[VideoAEConfig] = None):
        super().__init__()
        cfg = self.config = config or VideoAEConfig()
        k, ws = cfg.temporal_factor, list(cfg.widths)
        enc = [nn.Conv2d(3 * k, ws[0], 3, padding=1)]
        for a, b in zip(ws[:-1], ws[1:]):
            enc += [nn.SiLU(), nn.Conv2d(a, b, 4, stride=2, padding=1)]
        enc += [ResBlock2d(ws[-1]) for _ in range(cfg.res_blocks)]
        enc += [nn.SiLU(), nn.Conv2d(ws[-1], cfg.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(cfg.latent_channels, ws[-1], 3, padding=1)]
        dec += [ResBlock2d(ws[-1]) for _ in range(cfg.res_blocks)]
        for a, b in zip(ws[::-1][:-1], ws[::-1][1:]):
            dec += [nn.SiLU(), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1)]
        dec += [nn.SiLU(), nn.Conv2d(ws[0], 3 * k, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)
        self.register_buffer("background", torch.tensor(cfg.background, dtype=torch.float32), persistent=False)
        self._set_stats(cfg.latent_mean, cfg.latent_std)

    # Rates and shapes the diffusion config is built from.
    temporal_factor = _from_config("temporal_factor")
    spatial_factor = _from_config("spatial_factor")
    fps = _from_config("fps")

    @property
    def video_latent_fps(self) -> float:
        return self.config.fps / self.config.temporal_factor

    def latent_shape(self, frames: int = clip.NUM_FRAMES, height: int = clip.FRAME_SIZE,
                     width: int = clip.FRAME_SIZE) -> tuple:
        self._check_sizes(frames, height, width)
        s = self.spatial_factor
        return (self.latent_channels, frames // self.temporal_factor, height // s, width // s)

    def _check_sizes(self, t, h, w_):
        s, k = self.spatial_factor, self.temporal_factor
        if t % k or h % s or w_ % s or t == 0 or h == 0 or w_ == 0:
            raise ValueError(f"video of {t} frames of {h}x{w_} pixels: frames must be a positive multiple of "
                             f"{k} and height/width positive multiples of {s} (ToyAV clips are "
                             f"{clip.NUM_FRAMES} frames of {clip.FRAME_SIZE}x{clip.FRAME_SIZE})")

    def _to_bcthw(self, frames: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(frames):
            frames = torch.as_tensor(frames)
        if frames.ndim == 4:
            raise ValueError(f"video must be batched: [B, T, H, W, 3] or [B, 3, T, H, W], got {list(frames.shape)}; "
                             "add a batch axis (frames[None])")
        if frames.ndim != 5:
            raise ValueError(f"video must be [B, T, H, W, 3] or [B, 3, T, H, W], got {list(frames.shape)}")
        if frames.shape[-1] == 3:
            frames = frames.permute(0, 4, 1, 2, 3)
        elif frames.shape[1] != 3:
            raise ValueError(f"video must be RGB, [B, T, H, W, 3] or [B, 3, T, H, W], got {list(frames.shape)}")
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        elif not frames.is_floating_point():
            raise ValueError(f"video must be float in 0..1 or uint8, got {frames.dtype}")
        return frames.to(self.background.dtype)

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] float -> un-normalised latent [B, C, T/k, H/s, W/s]."""
        b, _, t, h, w_ = x.shape
        self._check_sizes(t, h, w_)
        k = self.temporal_factor
        x = (x - self.background.view(1, 3, 1, 1, 1)) * 2.0
        x = x.reshape(b, 3, t // k, k, h, w_).permute(0, 2, 3, 1, 4, 5).reshape(b * t // k, k * 3, h, w_)
        z = self.encoder(x)
        return z.reshape(b, t // k, *z.shape[1:]).permute(0, 2, 1, 3, 4)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Un-normalised latent -> [B, 3, T, H, W] (not clamped)."""
        b, c, tl, hl, wl = z.shape
        k = self.temporal_factor
        y = self.decoder(z.permute(0, 2, 1, 3, 4).reshape(b * tl, c, hl, wl))
        h, w_ = y.shape[-2:]
        y = y.reshape(b, tl, k, 3, h, w_).permute(0, 3, 1, 2, 4, 5).reshape(b, 3, tl * k, h, w_)
        return y + self.background.view(1, 3, 1, 1, 1)

    def encode(self, frames) -> torch.Tensor:
        """Frames [B, T, H, W, 3] or [B, 3, T, H, W] in 0..1 (or uint8) -> normalised latent
        [B, C, T/2, H/8, W/8] (roughly zero mean, unit variance per channel)."""
        x = self._to_bcthw(frames)
        z = self.encode_raw(x)
        return (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    def decode(self, latent: torch.Tensor, layout: str = "bthwc", clamp: bool = True) -> torch.Tensor:
        """Normalised latent [B, C, T', H', W'] -> frames [B, T, H, W, 3] ("bthwc", the ComfyUI IMAGE
        layout) or [B, 3, T, H, W] ("bcthw"), in 0..1 when clamp."""
        if not torch.is_tensor(latent) or latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            shape = list(latent.shape) if torch.is_tensor(latent) else type(latent).__name__
            raise ValueError(f"video latent must be [B, {self.latent_channels}, T, H, W], got {shape}")
        if layout not in ("bthwc", "bcthw"):
            raise ValueError(f"layout must be 'bthwc' or 'bcthw', got {layout!r}")
        z = latent.to(self.latent_std.dtype) * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)
        y = self.decode_raw(z)
        if clamp:
            y = y.clamp(0.0, 1.0)
        return y.permute(0, 2, 3, 4, 1) if layout == "bthwc" else y

    def forward(self, frames):
        return self.decode(self.encode(frames))


# ---------------------------------------------------------------------------------- audio
def _frames_stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Log magnitude [B, n_fft//2+1, S/hop]; frame j is centred on the middle of hop j."""
    pad = (n_fft - hop) // 2
    x = F.pad(x, (pad, n_fft - hop - pad))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft, device=x.device, dtype=x.dtype),
                      center=False, return_complex=True)
    return torch.log(spec.abs() + 1e-4)


class AudioAE(_LatentStats):
    """Waveform [B, S] (or [B, 1, S]) at 16 kHz <-> latent [B, C, S/256]."""

    COARSE_FFT = 1024
    FINE_FFT = 128
    FINE_HOP = 16

    def __init__(self, config: Optional[AudioAEConfig] = None):
        super().__init__()
        cfg = self.config = config or AudioAEConfig()
        W, fw = cfg.width, cfg.fine_width
        if cfg.hop % self.FINE_HOP or cfg.hop % math.prod(cfg.envelope_upsample):
            raise ValueError("hop must be a multiple of 16 and of the envelope upsampling")
        # Encoder: coarse spectrum (pitch, timbre) + fine spectrum (onsets) -> latent rate.
        self.coarse_in = nn.Conv1d(self.COARSE_FFT // 2 + 1, W, 1)
        fine = [nn.Conv1d(self.FINE_FFT // 2 + 1, fw, 3, padding=1)]
        for _ in range(int(math.log2(cfg.hop // self.FINE_HOP))):
            fine += [nn.SiLU(), nn.Conv1d(fw, fw, 4, stride=2, padding=1)]
        self.fine_in = nn.Sequential(*fine)
        self.enc_trunk = nn.Sequential(
            nn.Conv1d(W + fw, W, 1), *[ResBlock1d(W, d) for d in cfg.dilations], nn.SiLU(),
            nn.Conv1d(W, cfg.latent_channels, 1))
        # Decoder trunk at the latent rate.
        self.dec_trunk = nn.Sequential(
            nn.Conv1d(cfg.latent_channels, W, 3, padding=1), *[ResBlock1d(W, d) for d in cfg.dilations],
            nn.SiLU())
        self.f0_head = nn.Conv1d(W, 1, 1)
        self.harm_head = nn.Conv1d(W, cfg.n_harmonics, 1)
        self.noise_head = nn.Conv1d(W, 1, 1)
        up, ch = [], W
        for i, f in enumerate(cfg.envelope_upsample):
            out = max(32, ch // 2)
            up += [nn.ConvTranspose1d(ch, out, 2 * f, stride=f, padding=f // 2), nn.SiLU()]
            ch = out
        up += [nn.Conv1d(ch, 1, 3, padding=1)]
        self.env_up = nn.Sequential(*up)
        for head in (self.f0_head, self.noise_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self._set_stats(cfg.latent_mean, cfg.latent_std)

    sample_rate = _from_config("sample_rate")
    hop = _from_config("hop")

    @property
    def audio_latent_rate(self) -> float:
        return self.config.sample_rate / self.config.hop

    def latent_shape(self, samples: int = clip.NUM_SAMPLES) -> tuple:
        self._check_length(samples)
        return (self.latent_channels, samples // self.hop)

    def _check_length(self, s):
        if s <= 0 or s % self.hop:
            raise ValueError(f"audio of {s} samples: the length must be a positive multiple of the hop "
                             f"{self.hop} (a ToyAV clip is {clip.NUM_SAMPLES} samples at {clip.SAMPLE_RATE} Hz)")

    def _to_bs(self, wave) -> torch.Tensor:
        if not torch.is_tensor(wave):
            wave = torch.as_tensor(wave)
        if wave.ndim == 3:
            if wave.shape[1] != 1:
                raise ValueError(f"audio must be mono, [B, S] or [B, 1, S], got {list(wave.shape)} "
                                 "(average the channels first)")
            wave = wave[:, 0]
        if wave.ndim != 2:
            raise ValueError(f"audio must be [B, S] or [B, 1, S], got {list(wave.shape)}"
                             + ("; add a batch axis (wave[None])" if wave.ndim == 1 else ""))
        if not wave.is_floating_point():
            raise ValueError(f"audio must be float samples in -1..1, got {wave.dtype}")
        self._check_length(wave.shape[-1])
        return wave.to(self.latent_std.dtype)

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        coarse = self.coarse_in(_frames_stft(x, self.COARSE_FFT, self.hop) / 4.0)
        fine = self.fine_in(_frames_stft(x, self.FINE_FFT, self.FINE_HOP) / 4.0)
        return self.enc_trunk(torch.cat([coarse, fine], dim=1))

    def synth_params(self, z: torch.Tensor) -> dict:
        """Per-frame synthesiser controls from an un-normalised latent [B, C, L]."""
        h = self.dec_trunk(z)
        f0 = self.config.f0_ref_hz * torch.exp2(self.f0_head(h)[:, 0].clamp(-4.0, 4.0))  # [B, L]
        harm = self.harm_head(h)  # [B, K, L]
        k = torch.arange(1, self.config.n_harmonics + 1, device=z.device, dtype=z.dtype)
        audible = (k[None, :, None] * f0[:, None, :]) < 0.5 * self.sample_rate
        harm = torch.softmax(harm.masked_fill(~audible, -1e4), dim=1) * audible
        noise = torch.exp(self.noise_head(h)[:, 0] - 5.0)  # [B, L] noise std
        env = F.softplus(self.env_up(h)[:, 0] - 3.0)  # [B, L * 32]
        return {"f0": f0, "harmonics": harm, "noise": noise, "envelope": env}

    def synthesize(self, p: dict, samples: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        b, length = p["f0"].shape
        hop = samples // length

        def upsample(x, factor):  # frame values sit at frame centres; linear in between
            x3 = x if x.ndim == 3 else x[:, None]
            y = F.interpolate(x3, scale_factor=factor, mode="linear", align_corners=False)
            return y if x.ndim == 3 else y[:, 0]

        # The phase is not differentiated: spectral-loss gradients through an oscillator's phase
        # are large and chaotic, so the fundamental is learned from its own supervision only.
        f0 = upsample(p["f0"].detach(), hop)  # [B, S]
        phase = torch.cumsum(f0.double() / self.sample_rate, dim=-1)
        phase = (2.0 * math.pi * torch.remainder(phase, 1.0)).to(f0.dtype)
        harm = upsample(p["harmonics"], hop)  # [B, K, S]
        k = torch.arange(1, harm.shape[1] + 1, device=f0.device, dtype=f0.dtype)
        tone = (harm * torch.sin(k[None, :, None] * phase[:, None, :])).sum(dim=1)
        env = upsample(p["envelope"], samples // p["envelope"].shape[-1])
        if generator is None:
            generator = torch.Generator().manual_seed(self.config.noise_seed)
        noise = torch.randn(b, samples, generator=generator, device=generator.device).to(f0)
        return env * tone + upsample(p["noise"], hop) * noise

    def decode_raw(self, z: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.synthesize(self.synth_params(z), z.shape[-1] * self.hop, generator)

    def encode(self, wave, sample_rate: int = clip.SAMPLE_RATE) -> torch.Tensor:
        """Waveform [B, S] or [B, 1, S] at 16 kHz -> normalised latent [B, C, S/256]."""
        if int(sample_rate) != self.sample_rate:
            raise ValueError(f"audio at {sample_rate} Hz: the ToyAV audio autoencoder takes "
                             f"{self.sample_rate} Hz mono (resample first)")
        z = self.encode_raw(self._to_bs(wave))
        return (z - self.latent_mean.view(1, -1, 1)) / self.latent_std.view(1, -1, 1)

    def decode(self, latent: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Normalised latent [B, C, L] -> waveform [B, L * 256] at 16 kHz. The noise floor is drawn
        from `generator` (default: a fixed seed, so decoding is deterministic)."""
        if not torch.is_tensor(latent) or latent.ndim != 3 or latent.shape[1] != self.latent_channels:
            shape = list(latent.shape) if torch.is_tensor(latent) else type(latent).__name__
            raise ValueError(f"audio latent must be [B, {self.latent_channels}, L], got {shape}")
        z = latent.to(self.latent_std.dtype) * self.latent_std.view(1, -1, 1) + self.latent_mean.view(1, -1, 1)
        return self.decode_raw(z, generator)

    def forward(self, wave):
        return self.decode(self.encode(wave))


# ---------------------------------------------------------------------------------- files
_KINDS = {VIDEO_FORMAT: (VideoAE, VideoAEConfig), AUDIO_FORMAT: (AudioAE, AudioAEConfig)}


def save_autoencoder(model: nn.Module, path, metrics: Optional[dict] = None) -> None:
    """Weights in fp32 plus `format`, `version`, `config` (with the latent statistics) and
    `metrics` as safetensors metadata."""
    from safetensors.torch import save_file

    fmt = VIDEO_FORMAT if isinstance(model, VideoAE) else AUDIO_FORMAT if isinstance(model, AudioAE) else None
    if fmt is None:
        raise TypeError(f"not a ToyAV autoencoder: {type(model).__name__}")
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {"format": fmt, "version": FORMAT_VERSION, "config": _config_to_json(model.config),
            "metrics": json.dumps(metrics or {}, sort_keys=True)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def read_metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_autoencoder(path, expected_format: Optional[str] = None, device="cpu") -> nn.Module:
    """A VideoAE or AudioAE from a file written by save_autoencoder, in eval mode, frozen."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ToyAV autoencoder file not found: {path}")
    meta = read_metadata(path)
    fmt = meta.get("format")
    if fmt not in _KINDS:
        raise ValueError(f"{path} is not a ToyAV autoencoder (metadata format {fmt!r}, expected one of {sorted(_KINDS)})")
    if expected_format is not None and fmt != expected_format:
        raise ValueError(f"{path} holds a {fmt!r}, expected a {expected_format!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format version {meta.get('version')!r} (this code reads {FORMAT_VERSION})")
    cls, cfg_cls = _KINDS[fmt]
    model = cls(_config_from_json(cfg_cls, meta["config"]))
    model.load_state_dict(load_file(str(path)), strict=True)
    model.metrics = json.loads(meta.get("metrics", "{}"))
    return model.to(device).eval().requires_grad_(False)


def load_video_ae(path=None, device="cpu") -> VideoAE:
    """The shipped ToyAV video autoencoder (or the one at `path`)."""
    return load_autoencoder(path or ASSETS / VIDEO_AE_FILE, VIDEO_FORMAT, device)


def load_audio_ae(path=None, device="cpu") -> AudioAE:
    """The shipped ToyAV audio autoencoder (or the one at `path`)."""
    return load_autoencoder(path or ASSETS / AUDIO_AE_FILE, AUDIO_FORMAT, device)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
