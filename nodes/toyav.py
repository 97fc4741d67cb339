"""The embedded ToyAV model in ComfyUI: its text encoder, its two autoencoders and the loader entry.

ToyAV (ccl_core/toyav, docs/TOYAV.md) is a small world of coloured shapes that bounce, slide or
blink, with sounds whose pitch follows the colour and whose timbre follows the shape: 64x64 video at
16 fps, 16 kHz mono sound, 2 s clips. The pack ships its model (ccl_core/assets/toyav_ccl.safetensors,
listed by CCL Model Loader as "(embedded) toyav_ccl"), its text encoder and its autoencoders.

How the parts plug into the generic CCL nodes:
- text: CCL ToyAV Text Encode gives an ordinary CONDITIONING [[emb [1, 5, 64], {...}]], read by the model
  adapter like CLIPTextEncode output. Its dict also carries the encoder's null text (the encoding of the
  empty prompt ""), which the guider and the task nodes use when no negative is connected; the model's
  checkpoint carries the same null text in its metadata (ccl_core.latent_spec) for CCL Null Text. So the empty
  prompt, CCL Null Text and the guider's default negative are one and the same tensor, the null text
  the model was trained with (text dropout) and UCG reads.
- autoencoders: CCL ToyAV Autoencoder Loader returns two VAE objects with the decode / encode contract
  CCL Decode and the task nodes use (nodes/decode.py, nodes/tasks.py): video [B, C, T, h, w] <->
  frames [B, F, H, W, 3]; audio [B, S, C] at `audio_sample_rate` <-> [B, C, L]. The task nodes resample
  audio to 16 kHz and down-mix it (`audio_channels` 1), and resample frames to 16 fps and 64x64.
Weights stay on the CPU: the three parts are small (a few MB).
"""

from __future__ import annotations

import math
import os

import torch

import folder_paths

from ..ccl_core.assets import ASSETS, AUDIO_AE_FILE, MODEL_FILE, TEXT_FILE, VIDEO_AE_FILE
from ..ccl_core.media import fit_length
from .api import io
from .conditioning import NULL_TEXT_KEY
from .runtime import CATEGORY

FAMILY = f"{CATEGORY}/ToyAV"
TEXT_ENCODER_TYPE = "CCL_TEXT_ENCODER"
TextEncoder = io.Custom(TEXT_ENCODER_TYPE)  # the socket type between the text encoder loader and Text Encode

EMBEDDED_MODEL = "(embedded) toyav_ccl"
EMBEDDED_TEXT = "(embedded) toyav_text"
EMBEDDED_VIDEO_AE = "(embedded) toyav_video_ae"
EMBEDDED_AUDIO_AE = "(embedded) toyav_audio_ae"
# entry -> file in ccl_core/assets (ccl_core.assets names them)
EMBEDDED_MODELS = {EMBEDDED_MODEL: MODEL_FILE}
EMBEDDED_FILES = {EMBEDDED_TEXT: TEXT_FILE, EMBEDDED_VIDEO_AE: VIDEO_AE_FILE, EMBEDDED_AUDIO_AE: AUDIO_AE_FILE,
                  **EMBEDDED_MODELS}
DEFAULT_PROMPT = "a red circle bouncing"


def embedded_path(name: str) -> str:
    """Path of an embedded entry's file in ccl_core/assets; a clear error while it is not installed."""
    path = os.path.join(ASSETS, EMBEDDED_FILES[name])
    if not os.path.isfile(path):
        rel = os.path.join("ccl_core", "assets", EMBEDDED_FILES[name])
        how = ("it is trained with `python -m ccl_lab.train_embedded`" if name in EMBEDDED_MODELS else
               "it is trained with `python -m ccl_lab.train_autoencoders`" if "_ae" in name else
               "it is part of the pack")
        raise FileNotFoundError(
            f"the embedded ToyAV file for {name!r} is not installed: {rel} is missing from the pack ({how}); "
            "update the pack (git pull) or pick a file of your own")
    return path


def _user_files(folder: str):
    """ToyAV files of the user in a model folder (names containing 'toyav'), for the loaders' lists."""
    try:
        names = folder_paths.get_filename_list(folder)
    except KeyError:
        return []
    return sorted(n for n in names if "toyav" in os.path.basename(n).lower())


def _resolve(name: str, folder: str) -> str:
    if name in EMBEDDED_FILES:
        return embedded_path(name)
    try:
        path = folder_paths.get_full_path(folder, name)
    except KeyError:
        path = None
    if not path:
        raise FileNotFoundError(f"ToyAV file {name!r} not found in models/{folder}")
    return path


class CCLToyAVTextEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLToyAVTextEncoderLoader",
            display_name="CCL ToyAV Text Encoder Loader",
            category=FAMILY,
            description=("Loads the ToyAV text encoder (the embedded one shipped with the pack, or a ToyAV text "
                         "encoder file of yours from models/text_encoders) for CCL ToyAV Text Encode. Prompts read "
                         "'a {colour} {shape} {motion}', e.g. 'a red circle bouncing'."),
            inputs=[io.Combo.Input(
                "encoder_name", options=[EMBEDDED_TEXT] + _user_files("text_encoders"), default=EMBEDDED_TEXT,
                tooltip=("'(embedded) toyav_text' is the encoder the embedded model was trained with; files of your "
                         "own (models/text_encoders, names containing 'toyav') must be ToyAV text encoder files"))],
            outputs=[TextEncoder.Output(display_name="text_encoder", tooltip=(
                "The ToyAV text encoder (fixed 64-dim token and position embeddings, 5 tokens)."))],
        )

    @classmethod
    def execute(cls, encoder_name=EMBEDDED_TEXT):
        from ..ccl_core.toyav.text import load_text_encoder
        return io.NodeOutput(load_text_encoder(_resolve(encoder_name, "text_encoders")))


class CCLToyAVTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLToyAVTextEncode",
            display_name="CCL ToyAV Text Encode",
            category=FAMILY,
            description=("Encodes a ToyAV prompt ('a {colour} {shape} {motion}': colours red green blue yellow, "
                         "shapes circle square triangle, motions bouncing sliding blinking) into a CONDITIONING for "
                         "the embedded ToyAV model. The empty prompt is the null text: use it as the negative (UCG's "
                         "unconditional text). An unknown word stops with the list of known words."),
            inputs=[
                TextEncoder.Input("text_encoder", tooltip="From CCL ToyAV Text Encoder Loader."),
                io.String.Input("text", default=DEFAULT_PROMPT, multiline=True, dynamic_prompts=False, tooltip=(
                    "The prompt, e.g. 'a red circle bouncing' (case and a final full stop are ignored). Leave "
                    "empty for the null text (the negative of UCG).")),
            ],
            outputs=[io.Conditioning.Output(display_name="conditioning", tooltip=(
                "Text embeddings [1, 5, 64] (padding positions are zeros), carrying the encoder's null text for "
                "the guider and task nodes."))],
        )

    @classmethod
    def execute(cls, text_encoder, text):
        if not hasattr(text_encoder, "encode") or not hasattr(text_encoder, "null"):
            raise ValueError("CCL ToyAV Text Encode needs the text encoder from 'CCL ToyAV Text Encoder Loader'")
        try:
            emb, _ = text_encoder.encode([text])
        except ValueError as e:
            raise ValueError(f"CCL ToyAV Text Encode: {e}") from None
        null = text_encoder.null(1).detach().float().cpu()
        return io.NodeOutput([[emb.detach().float().cpu(), {NULL_TEXT_KEY: null}]])


# ---------------------------------------------------------------------- autoencoders
class ToyAVVideoVAE:
    """The ToyAV video autoencoder behind ComfyUI's VAE contract (nodes/decode.py, nodes/tasks.py).

    encode(frames [F, H, W, C] or [B, F, H, W, C], 0..1) -> latent [B, 8, F/2, H/8, W/8];
    decode(latent [B, 8, T, h, w]) -> frames [B, 2T, 8h, 8w, 3]. H and W must be multiples of 8 (the task
    node resizes to the latent's size); an odd frame count is padded by repeating the last frame.
    """

    latent_dim = 3  # a video VAE (not run frame by frame)

    def __init__(self, ae):
        self.ae = ae
        self.fps = float(ae.fps)
        self.latent_channels = int(ae.latent_channels)
        self.temporal_factor = int(ae.temporal_factor)
        self.spatial_factor = int(ae.spatial_factor)
        self.downscale_ratio = self.upscale_ratio = self.spatial_factor
        self.output_channels = 3

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels[..., :3].float().cpu()
        if x.ndim == 4:
            x = x.unsqueeze(0)
        if x.ndim != 5:
            raise ValueError(f"ToyAV video VAE: frames must be [F, H, W, 3], got {list(pixels.shape)}")
        x = fit_length(x, x.shape[1] + (-x.shape[1]) % self.temporal_factor, pad="repeat", dim=1)
        with torch.no_grad():
            return self.ae.encode(x.clamp(0, 1))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.ae.decode(latent.float().cpu())


class ToyAVAudioVAE:
    """The ToyAV audio autoencoder behind ComfyUI's audio VAE contract.

    encode(wave [B, S, C] at 16 kHz) -> latent [B, 8, ceil(S/256)] (channels averaged, padded with silence
    to whole latents); decode(latent [B, 8, L]) -> [B, 256 L, 1] at `audio_sample_rate` (16 kHz).
    """

    latent_dim = 1
    audio_channels = output_channels = 1  # the task node down-mixes to mono

    def __init__(self, ae):
        self.ae = ae
        self.audio_sample_rate = int(ae.sample_rate)
        self.hop = int(ae.hop)
        self.latent_channels = int(ae.latent_channels)
        self.downscale_ratio = self.upscale_ratio = self.hop

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave.float().cpu()
        if x.ndim == 3:
            x = x.mean(-1)
        if x.ndim != 2:
            raise ValueError(f"ToyAV audio VAE: audio must be [B, S, C], got {list(wave.shape)}")
        x = fit_length(x, max(1, math.ceil(x.shape[-1] / self.hop)) * self.hop)  # silence to whole latents
        with torch.no_grad():
            return self.ae.encode(x, self.audio_sample_rate)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.ae.decode(latent.float().cpu()).unsqueeze(-1)


class CCLToyAVAutoencoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        files = _user_files("vae")
        return io.Schema(
            node_id="CCLToyAVAutoencoderLoader",
            display_name="CCL ToyAV Autoencoder Loader",
            category=FAMILY,
            description=("Loads the ToyAV video and audio autoencoders (the embedded ones shipped with the pack, or "
                         "ToyAV autoencoder files of yours from models/vae) as two VAEs for CCL Decode and the CCL "
                         "task nodes (Audio to Video, Video to Audio). Video: 64x64 at 16 fps, x2 time, x8 space; "
                         "audio: 16 kHz mono, 256 samples per latent."),
            inputs=[
                io.Combo.Input("video_ae", options=[EMBEDDED_VIDEO_AE] + files, default=EMBEDDED_VIDEO_AE, tooltip=(
                    "Video autoencoder: the embedded one, or a ToyAV video autoencoder file from models/vae (names "
                    "containing 'toyav')")),
                io.Combo.Input("audio_ae", options=[EMBEDDED_AUDIO_AE] + files, default=EMBEDDED_AUDIO_AE, tooltip=(
                    "Audio autoencoder: the embedded one, or a ToyAV audio autoencoder file from models/vae (names "
                    "containing 'toyav')")),
            ],
            outputs=[
                io.Vae.Output(display_name="video_vae", tooltip=(
                    "ToyAV video autoencoder (for CCL Decode's video_vae and CCL Task: Video to Audio).")),
                io.Vae.Output(display_name="audio_vae", tooltip=(
                    "ToyAV audio autoencoder, 16 kHz (for CCL Decode's audio_vae and CCL Task: Audio to Video).")),
            ],
        )

    @classmethod
    def execute(cls, video_ae=EMBEDDED_VIDEO_AE, audio_ae=EMBEDDED_AUDIO_AE):
        from ..ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
        video = ToyAVVideoVAE(load_video_ae(_resolve(video_ae, "vae")))
        audio = ToyAVAudioVAE(load_audio_ae(_resolve(audio_ae, "vae")))
        return io.NodeOutput(video, audio)


NODES = [CCLToyAVTextEncoderLoader, CCLToyAVTextEncode, CCLToyAVAutoencoderLoader]
