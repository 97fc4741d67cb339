"""The extension helpers: the clean prefix a window continues from, and the join."""

import pytest
import torch

from ccl_core import extension as ext
from ccl_core.media import MediaError, cover_crop

FPS, RATE = 8.0, 62.5  # ToyAV's latent rates: 7.8125 audio latents per latent video frame


def clip(t=16, length=125):
    video = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1).expand(1, 2, t, 2, 2).clone()
    audio = torch.arange(length, dtype=torch.float32).view(1, 1, length).expand(1, 3, length).clone()
    return video, audio


def test_continuation_takes_the_clip_tail_from_one_start_time():
    video, audio = clip()
    cont = ext.continuation(video, audio, 4, FPS, RATE)
    assert cont.video_start == 12 and cont.video_prefix == 4
    assert torch.equal(cont.video, video[:, :, 12:])
    # 12 frames at 8 fps = 1.5 s = 93.75 audio latents: the nearest is 94, and the tail runs to the end
    assert cont.audio_start == 94 and cont.audio_prefix == 125 - 94
    assert torch.equal(cont.audio, audio[:, :, 94:])


def test_stream_offset_does_not_grow_over_chained_windows():
    video, audio = clip()
    for _ in range(6):
        cont = ext.continuation(video, audio, 4, FPS, RATE)
        window_v, window_a = ext.place(cont, torch.zeros(1, 2, 20, 2, 2), torch.zeros(1, 3, 156))
        video, audio = ext.join(video, audio, cont, window_v, window_a)
        # every window's audio start is within half a latent of its video start's time
        assert abs(cont.audio_start - cont.video_start * RATE / FPS) <= 0.5
    assert video.shape[2] == 16 + 6 * 16


def test_place_holds_the_prefix_and_join_takes_the_overlap_once():
    video, audio = clip()
    cont = ext.continuation(video, audio, 4, FPS, RATE)
    noise_v, noise_a = torch.randn(1, 2, 20, 2, 2), torch.randn(1, 3, 156)
    wv, wa = ext.place(cont, noise_v, noise_a)
    assert torch.equal(wv[:, :, :4], video[:, :, 12:]) and torch.equal(wv[:, :, 4:], noise_v[:, :, 4:])
    assert torch.equal(wa[:, :, :31], audio[:, :, 94:]) and torch.equal(wa[:, :, 31:], noise_a[:, :, 31:])
    jv, ja = ext.join(video, audio, cont, wv, wa)
    assert torch.equal(jv[:, :, :16], video) and torch.equal(jv[:, :, 16:], noise_v[:, :, 4:])
    assert torch.equal(ja[:, :, :125], audio) and torch.equal(ja[:, :, 125:], noise_a[:, :, 31:])


def test_bad_overlaps_and_windows_are_refused_with_the_fix():
    video, audio = clip()
    for frames in (0, 16, 20):
        with pytest.raises(ValueError, match="overlap must be 1..15"):
            ext.continuation(video, audio, frames, FPS, RATE)
    cont = ext.continuation(video, audio, 8, FPS, RATE)
    with pytest.raises(ValueError, match="longer than the overlap"):
        ext.place(cont, torch.zeros(1, 2, 8, 2, 2), torch.zeros(1, 3, 125))
    assert ext.overlap_frames(0.5, FPS) == 4 and ext.overlap_frames(0.5, 6.0, 2) == 4
    with pytest.raises(ValueError, match="positive number of seconds"):
        ext.overlap_frames(0, FPS)


def test_cover_crop_scales_to_cover_then_crops_the_centre():
    image = torch.zeros(40, 80, 3)
    image[:, 20:60] = 1.0  # a white middle half, which a centre crop of a square keeps
    out, lost = cover_crop(image, (32, 32))
    assert out.shape == (32, 32, 3) and lost == pytest.approx(0.5)
    assert out.mean() > 0.95
    same, none = cover_crop(torch.rand(2, 64, 64, 3), (32, 32))
    assert same.shape == (2, 32, 32, 3) and none == 0.0
    with pytest.raises(MediaError, match=r"\[\.\.\., H, W, 3\]"):
        cover_crop(torch.zeros(3, 8, 8), (8, 8))
