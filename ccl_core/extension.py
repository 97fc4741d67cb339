"""Extending a clip: the window that continues it, and the join of the two.

A new window starts `frames` latent video frames before the clip ends. Those frames, and the audio
latents from the same start time to the clip's end, are the window's clean prefix (the DCR task
"extend"): run at timestep 0 and held at the clip's values, so the window continues what is there.
The audio start is rounded to the nearest audio latent of the clip's own timeline, so the offset
between the streams stays within half an audio latent however many windows are chained. Joining
keeps the clip up to the window's start and the whole window after it, so the overlap is taken once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Continuation:
    video: torch.Tensor  # [B, C, frames, H, W]: the clip's last latent video frames
    audio: torch.Tensor  # [B, C, n]: the clip's audio latents from the same start time to its end
    video_start: int  # where the window starts in the clip, in latent video frames
    audio_start: int  # and in audio latents

    @property
    def video_prefix(self) -> int:
        return self.video.shape[2]

    @property
    def audio_prefix(self) -> int:
        return self.audio.shape[2]


def audio_index(video_frame: int, video_latent_fps: float, audio_latent_rate: float) -> int:
    """The audio latent nearest to the start time of a latent video frame."""
    return int(round(video_frame * audio_latent_rate / video_latent_fps))


def overlap_frames(seconds: float, video_latent_fps: float, temporal_patch: int = 1) -> int:
    """Latent video frames nearest to `seconds` of overlap, a positive multiple of the model's
    temporal patch (a prefix must cover whole tokens)."""
    if not seconds > 0:
        raise ValueError(f"the overlap must be a positive number of seconds, got {seconds}")
    tokens = max(1, round(seconds * video_latent_fps / temporal_patch))
    return tokens * temporal_patch


def continuation(video: torch.Tensor, audio: torch.Tensor, frames: int, video_latent_fps: float,
                 audio_latent_rate: float) -> Continuation:
    """The clean prefix of a window that continues the clip (video [B, C, T, H, W], audio [B, C, L])
    from `frames` latent video frames before its end."""
    t, length = video.shape[2], audio.shape[2]
    if not 0 < frames < t:
        raise ValueError(f"the overlap must be 1..{t - 1} latent video frames (the clip has {t}), got {frames}; "
                         "a shorter overlap, or a longer clip to extend")
    start = t - frames
    a0 = min(audio_index(start, video_latent_fps, audio_latent_rate), length - 1)
    return Continuation(video[:, :, start:], audio[:, :, a0:], start, a0)


def check_window(cont: Continuation, window_frames: int, window_audio: int) -> None:
    """Refuse a window too short to hold the prefix and still generate something after it."""
    if cont.video_prefix >= window_frames or cont.audio_prefix >= window_audio:
        raise ValueError(f"the window ({window_frames} latent video frames, {window_audio} audio latents) must be "
                         f"longer than the overlap it continues ({cont.video_prefix} frames, {cont.audio_prefix} "
                         "audio latents); use a longer window or a shorter overlap")


def place(cont: Continuation, video: torch.Tensor, audio: torch.Tensor):
    """The window's latents (video [B, C, T, H, W], audio [B, C, L], e.g. noise) with the prefix written
    over their start: the starting point of sampling, and the values held clean throughout."""
    check_window(cont, video.shape[2], audio.shape[2])
    video, audio = video.clone(), audio.clone()
    video[:, :, :cont.video_prefix] = cont.video.to(video)
    audio[:, :, :cont.audio_prefix] = cont.audio.to(audio)
    return video, audio


def join(clip_video: torch.Tensor, clip_audio: torch.Tensor, cont: Continuation, window_video: torch.Tensor,
         window_audio: torch.Tensor):
    """The clip continued by a window generated from `cont`: the clip up to the window's start, then
    the whole window (whose prefix equals the clip's tail)."""
    video = torch.cat([clip_video[:, :, :cont.video_start], window_video.to(clip_video)], dim=2)
    audio = torch.cat([clip_audio[:, :, :cont.audio_start], window_audio.to(clip_audio)], dim=2)
    return video, audio
