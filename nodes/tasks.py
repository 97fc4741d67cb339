"""Task nodes (DCR routes): audio-to-video, video-to-audio, video only, audio only, image-to-video+audio.

Each node writes the task (and the clean latent of a2v / v2a, or i2av's clean first frame) into the
CONDITIONING dicts, where the model adapter reads them (comfy_model.py) and holds what the task does
not generate at its clean value (or zeros), with no sampler mask. So the native sampler nodes and
guiders need no change: connect the node's outputs where the plain ones went.
"""

from __future__ import annotations

import math

import torch

from ..ccl_core.media import CROP_REFUSED, CROP_WARN, cover_crop, fit_length, source_frames
from ..ccl_core import routing
from ..ccl_core.routing import make_routes
from .api import io
from .conditioning import TASK_KEYS, null_text_like
from .joint import CCL_KEY, fit_batch, latent_spec, nested, split_joint, to_model_space
from .runtime import CATEGORY, show_warning


def with_task(conditioning, task, clean=None, prefix=None):
    """Copy of a CONDITIONING list with our task keys (conditioning.TASK_KEYS) set on every entry."""
    out = []
    for t, d in conditioning:
        d = {k: v for k, v in d.items() if k not in TASK_KEYS}
        d["ccl_task"] = task
        for name, x in (clean or {}).items():
            d[f"ccl_clean_{name}"] = x
        for name, n in (prefix or {}).items():
            d[f"ccl_prefix_{name}"] = int(n)
        out.append([t, d])
    return out


def apply_task(positive, negative, latent, task, clean=None, prefix=None, extra=None):
    """(positive, negative, latent) carrying the task. clean: stream -> clean latent of the stream's shape
    (a whole conditioning stream, or one whose first prefix[stream] positions along time are the clean
    prefix); it is also the latent's starting point for that stream. extra: more entries for the latent's
    CCL metadata."""
    if not positive:
        raise ValueError("positive conditioning is empty")
    video, audio = split_joint(latent, f"the {task} task node")
    spec = latent_spec(latent)
    clean = dict(clean or {})
    if "video" in clean:
        video = clean["video"] = fit_batch(clean["video"].to(video), video.shape[0], "the clean video latent")
    if "audio" in clean:
        audio = clean["audio"] = fit_batch(clean["audio"].to(audio), audio.shape[0], "the clean audio latent")
    # No noise_mask: the model holds what the task does not generate (comfy_model.CCLDualStream), which
    # reads the same on every ComfyUI and with every guider; a mask over a joint latent does not (0.12
    # takes a flat one as the video's alone).
    out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", CCL_KEY)}
    meta = {k: v for k, v in latent.get(CCL_KEY, {}).items() if k not in ("clean", "prefix", "extend")}
    meta.update(spec=spec.to_dict(), task=task, clean=clean, **(extra or {}))
    if prefix:
        meta["prefix"] = {k: int(v) for k, v in prefix.items()}
    out.update(samples=nested((video, audio)))
    out[CCL_KEY] = meta
    neg = null_text_like(positive, spec) if negative is None else negative
    return with_task(positive, task, clean, prefix), with_task(neg, task, clean, prefix), out


def cond_inputs():
    """The inputs every task node starts with (fresh objects for each schema)."""
    return [io.Conditioning.Input("positive", tooltip="Text conditioning of the prompt."),
            io.Latent.Input("latent", tooltip="Joint latent from 'CCL Empty Joint Latent'.")]


def negative_input():
    """The optional negative, the last input of every task node."""
    return io.Conditioning.Input("negative", optional=True, tooltip=(
        "Optional negative prompt. When left empty the negative output is the null text, UCG's unconditional "
        "text (zeros for Ovi; the empty prompt's encoding for the embedded ToyAV model)."))


def task_outputs():
    return [io.Conditioning.Output(display_name="positive", tooltip="Positive conditioning carrying the task."),
            io.Conditioning.Output(display_name="negative", tooltip="Negative conditioning carrying the task."),
            io.Latent.Output(display_name="latent", tooltip=(
                "Joint latent with the conditioning stream (or clean prefix) filled in; the model holds it."))]


def task_schema(node_id, display_name, description, inputs, hidden=None):
    return io.Schema(node_id=node_id, display_name=display_name, category=f"{CATEGORY}/tasks",
                     description=description, inputs=cond_inputs() + inputs + [negative_input()],
                     outputs=task_outputs(), hidden=hidden)


def _channels_for(vae):
    for attr in ("audio_channels", "output_channels"):
        n = getattr(vae, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def encode_audio(vae, audio: dict, spec, length: int) -> torch.Tensor:
    """AUDIO -> clean audio latent [B, C, length] in the model's space (resample, channels, duration)."""
    import torchaudio

    wave, sr = audio["waveform"], int(audio["sample_rate"])
    if wave.ndim == 2:
        wave = wave.unsqueeze(0)
    wave = wave.float().cpu()
    target_sr = int(getattr(vae, "audio_sample_rate", None) or 44100)  # ComfyUI's audio VAEs take 44.1 kHz
    if sr != target_sr:
        wave = torchaudio.functional.resample(wave, sr, target_sr)
    want = _channels_for(vae)
    if want == 1 and wave.shape[1] > 1:
        wave = wave.mean(1, keepdim=True)
    elif want == 2 and wave.shape[1] == 1:
        wave = wave.repeat(1, 2, 1)
    elif want == 2 and wave.shape[1] > 2:
        wave = wave[:, :2]
    wave = fit_length(wave, math.ceil(length / spec.audio_latent_rate * target_sr))  # silence after its end
    lat = vae.encode(wave.movedim(1, -1))
    if lat.ndim != 3 or lat.shape[1] != spec.audio_channels:
        raise ValueError(f"the audio VAE gave a latent {list(lat.shape)}; this model needs [B, "
                         f"{spec.audio_channels}, L] (Ovi: the MMAudio VAE)")
    lat = to_model_space(spec.audio_space, lat.float())
    return fit_length(lat, length, pad="repeat", dim=2)


def encode_video(vae, images: torch.Tensor, fps: float, spec, shape) -> torch.Tensor:
    """IMAGE frames at `fps` -> clean video latent with the joint latent's shape [B, C, T, h, w]."""
    import comfy.utils

    _, _, t, h, w = shape
    frames = spec.pixel_frames(t)
    height, width = h * spec.spatial_factor, w * spec.spatial_factor
    if images.ndim != 4:
        raise ValueError(f"IMAGE must be [frames, H, W, C], got {list(images.shape)}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    idx = source_frames(torch.arange(images.shape[0], dtype=torch.float64) / fps, frames, spec.fps)
    pix = images[idx][..., :3].float()
    if pix.shape[1:3] != (height, width):
        pix = comfy.utils.common_upscale(pix.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
    return fit_length(video_latent(vae, pix, spec), t, pad="repeat", dim=2)


def video_latent(vae, pix: torch.Tensor, spec) -> torch.Tensor:
    """Frames [F, H, W, 3] -> the video VAE's latent in the model's space [1, C, T, h, w]."""
    lat = vae.encode(pix)
    if lat.ndim == 4:  # an image VAE: one latent per frame
        lat = lat.movedim(0, 1).unsqueeze(0)
    if lat.ndim != 5 or lat.shape[1] != spec.video_channels:
        raise ValueError(f"the video VAE gave a latent {list(lat.shape)}; this model needs [B, "
                         f"{spec.video_channels}, T, H, W] (Ovi: the Wan 2.2 VAE; the embedded ToyAV model: "
                         "the ToyAV video autoencoder)")
    return to_model_space(spec.video_space, lat.float())


class FirstFrameEncoder:
    """A video VAE seen the way ccl_core.generate.image_latent reads a video autoencoder: `temporal_factor`
    is the number of pixel frames the first latent frame covers (1 for a causal VAE such as Wan's), and
    encode([1, F, H, W, 3]) gives the model-space latent."""

    def __init__(self, vae, spec):
        self.vae, self.spec = vae, spec
        self.temporal_factor = spec.pixel_frames(1)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return video_latent(self.vae, frames[0], self.spec)


def with_clean_stream(positive, negative, latent, task, what, encode):
    """apply_task for a2v / v2a: the stream routing.TASKS gives clean, from encode(spec, that stream's shape)."""
    video, audio = split_joint(latent, what)
    name = "video" if routing.TASKS[task].video == "clean" else "audio"
    x = video if name == "video" else audio
    clean = fit_batch(encode(latent_spec(latent), x.shape), x.shape[0], f"the {name}")
    return apply_task(positive, negative, latent, task, {name: clean})


class CCLAudioToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLAudioToVideo", "CCL Task: Audio to Video",
            "Audio-to-video (a2v): the given sound is the clean audio stream the video is generated for. Encodes "
            "the AUDIO with the audio VAE (resampled, trimmed or padded with silence to the latent's duration), "
            "holds it fixed during sampling and routes the model's a2v task.",
            [io.Vae.Input("audio_vae", tooltip="Audio VAE of the model (Ovi: MMAudio 16 kHz)."),
             io.Audio.Input("audio", tooltip="The soundtrack to make a video for.")])

    @classmethod
    def execute(cls, positive, latent, audio_vae, audio, negative=None):
        return io.NodeOutput(*with_clean_stream(positive, negative, latent, "a2v", "CCL Audio to Video",
                                                lambda spec, shape: encode_audio(audio_vae, audio, spec, shape[2])))


class CCLVideoToAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLVideoToAudio", "CCL Task: Video to Audio",
            "Video-to-audio (v2a): the given frames are the clean video stream the sound is generated for. "
            "Encodes the IMAGE frames with the video VAE (resampled in time to the model's fps, resized to the "
            "latent's size, trimmed or padded), holds them fixed and routes v2a.",
            [io.Vae.Input("video_vae", tooltip="Video VAE of the model (Ovi: Wan 2.2 VAE)."),
             io.Image.Input("images", tooltip="The video frames to make a soundtrack for."),
             io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=0.001,
                            tooltip="Frame rate of the given frames.")])

    @classmethod
    def execute(cls, positive, latent, video_vae, images, fps, negative=None):
        return io.NodeOutput(*with_clean_stream(positive, negative, latent, "v2a", "CCL Video to Audio",
                                                lambda spec, shape: encode_video(video_vae, images, fps, spec, shape)))


class CCLVideoOnly(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLVideoOnly", "CCL Task: Video Only",
            "Text-to-video only (t2v): the audio stream is absent; the video reads only the context tokens and the "
            "audio tower is not run. Decoding gives silence.", [])

    @classmethod
    def execute(cls, positive, latent, negative=None):
        return io.NodeOutput(*apply_task(positive, negative, latent, "t2v"))


class CCLAudioOnly(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLAudioOnly", "CCL Task: Audio Only",
            "Text-to-audio only (t2a): the video stream is absent; the audio reads only the context tokens and the "
            "video tower is not run. Decoding gives black frames.", [])

    @classmethod
    def execute(cls, positive, latent, negative=None):
        return io.NodeOutput(*apply_task(positive, negative, latent, "t2a"))


def first_frame_latents(vae, image: torch.Tensor, spec, shape, node_id=None) -> torch.Tensor:
    """IMAGE [N, H, W, C] -> the clean first latent frame of each clip [B, C, 1, h, w] (N is 1 or B), the
    image fitted to the latent's pixel size by media.cover_crop and encoded as ccl_core.generate does."""
    from ..ccl_core.generate import image_latent

    batch, _, _, h, w = shape
    height, width = h * spec.spatial_factor, w * spec.spatial_factor
    if not torch.is_tensor(image) or image.ndim != 4 or image.shape[-1] < 3 or min(image.shape[:3]) < 1:
        got = list(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"CCL Image to Video+Audio: the image must be an IMAGE [N, H, W, 3] (e.g. from Load "
                         f"Image), got {got}")
    if image.shape[0] not in (1, batch):
        raise ValueError(f"CCL Image to Video+Audio: {image.shape[0]} images for a latent of batch {batch}; give "
                         "one image, or one per clip")
    fitted, lost = cover_crop(image[..., :3].float().cpu(), (height, width))
    size = f"{image.shape[2]}x{image.shape[1]}"
    if lost > CROP_REFUSED:
        raise ValueError(f"CCL Image to Video+Audio: fitting the {size} image to the video's {width}x{height} "
                         f"would crop away {lost:.0%} of it; crop or pad the image to about the video's aspect "
                         "ratio first, or set CCL Empty Joint Latent's width and height to the image's aspect")
    if lost > CROP_WARN:
        show_warning(f"the {size} image is centre-cropped to the video's {width}x{height}: {lost:.0%} of it is cut "
                     "away", node_id)
    encoder = FirstFrameEncoder(vae, spec)
    with torch.no_grad():
        first = torch.cat([image_latent(encoder, frame) for frame in fitted])
    if list(first.shape[2:]) != [1, h, w]:
        raise ValueError(f"the video VAE gave a first latent frame {list(first.shape)} for a {width}x{height} "
                         f"image; this latent needs [1, {spec.video_channels}, 1, {h}, {w}]: use the model's own "
                         "video VAE")
    return fit_batch(first, batch, "the image latent")


class CCLImageToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return task_schema(
            "CCLImageToVideo", "CCL Task: Image to Video+Audio",
            "Image-to-video with sound (i2av): the clip starts on the given image. The image is scaled to cover "
            f"the latent's frame and centre-cropped (a warning above {CROP_WARN * 100:g} % cut away; refused above "
            f"{CROP_REFUSED * 100:g} %), encoded "
            "as the first latent video frame with the video VAE, and that frame is held clean (timestep 0) "
            "while the rest of the video and the sound are generated, as Ovi's image-to-video does.",
            [io.Vae.Input("video_vae", tooltip=(
                "Video VAE of the model (Ovi: Wan 2.2 VAE; the embedded ToyAV model: the ToyAV video autoencoder).")),
             io.Image.Input("image", tooltip="The first frame: one image, or one per clip of the latent's batch.")],
            hidden=[io.Hidden.unique_id])

    @classmethod
    def execute(cls, positive, latent, video_vae, image, negative=None):
        v, _ = split_joint(latent, "CCL Image to Video+Audio")
        spec = latent_spec(latent)
        first = first_frame_latents(video_vae, image, spec, v.shape, getattr(cls.hidden, "unique_id", None))
        frames = int(make_routes("i2av", 1).video_prefix[0])  # routing.TASKS: i2av holds the first latent frame
        clean = v.clone()
        clean[:, :, :frames] = first.to(clean)
        return io.NodeOutput(*apply_task(positive, negative, latent, "i2av", {"video": clean},
                                         prefix={"video": frames, "audio": 0}))


NODES = [CCLAudioToVideo, CCLVideoToAudio, CCLVideoOnly, CCLAudioOnly, CCLImageToVideo]
