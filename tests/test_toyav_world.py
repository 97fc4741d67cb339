"""ToyAV rules and generator: every clip must follow the rules in docs/TOYAV.md ("The world") and ccl_lab/world.py to the letter."""

import numpy as np
import pytest

from ccl_lab import generator as gen
from ccl_lab import world as w

SR = w.SAMPLE_RATE
SEEDS = range(120)  # enough draws to meet the edge cases of every motion, still fast


def _spectrum(x):
    """Magnitude spectrum of a Hann-windowed signal and its frequency axis."""
    return np.abs(np.fft.rfft(x * np.hanning(len(x)))), np.fft.rfftfreq(len(x), 1.0 / SR)


def _partial(spectrum, freqs, hz):
    return spectrum[np.abs(freqs - hz) <= 3.0].max()


def _clips(motion):
    return [gen.generate_clip(seed, motion=motion) for seed in SEEDS[:40]]


# Prompts and constants.

def test_prompts_are_the_36_combinations():
    assert len(w.PROMPTS) == len(set(w.PROMPTS)) == 36
    assert "a blue square sliding" in w.PROMPTS
    for prompt in w.PROMPTS:
        assert w.make_prompt(*w.parse_prompt(prompt)) == prompt
    assert w.parse_prompt("  A Yellow Triangle Blinking. ") == ("yellow", "triangle", "blinking")


@pytest.mark.parametrize("prompt, listed", [
    ("a purple square sliding", "red, green, blue, yellow"),
    ("a red hexagon sliding", "circle, square, triangle"),
    ("a red square spinning", "bouncing, sliding, blinking"),
])
def test_unknown_word_lists_the_valid_words(prompt, listed):
    with pytest.raises(ValueError, match=listed):
        w.parse_prompt(prompt)
    with pytest.raises(ValueError, match=listed):
        gen.generate_clip(0, *prompt.split()[1:])


def test_malformed_prompt_is_rejected():
    with pytest.raises(ValueError, match="form"):
        w.parse_prompt("red square sliding")


def test_world_constants():
    assert (w.FRAME_SIZE, w.FPS, w.NUM_FRAMES, w.SAMPLE_RATE, w.NUM_SAMPLES) == (64, 16, 32, 16000, 32000)
    assert w.DURATION_S == w.NUM_SAMPLES / w.SAMPLE_RATE == 2.0
    assert {c.name: (c.rgb, c.pitch_hz) for c in w.COLOURS.values()} == {
        "red": ((0.90, 0.15, 0.15), 330.0), "green": ((0.15, 0.85, 0.20), 440.0),
        "blue": ((0.20, 0.35, 0.95), 587.33), "yellow": ((0.95, 0.85, 0.15), 784.0)}
    assert {s.name: s.timbre for s in w.SHAPES.values()} == {
        "circle": "sine", "square": "square", "triangle": "triangle"}
    assert w.SHAPES["triangle"].half_height == pytest.approx(16 * np.sqrt(3) / 4)


# Picture.

def test_clip_format_and_background():
    clip = gen.generate_clip(3)
    assert clip.frames.shape == (32, 64, 64, 3) and clip.frames.dtype == np.float32
    assert clip.waveform.shape == (32000,) and clip.waveform.dtype == np.float32
    assert 0.0 <= clip.frames.min() and clip.frames.max() <= 1.0
    np.testing.assert_allclose(clip.frames[:, [0, 0, -1, -1], [0, -1, 0, -1]], 0.08, atol=1e-7)
    assert clip.prompt == w.make_prompt(clip.colour, clip.shape, clip.motion)


@pytest.mark.parametrize("shape", list(w.SHAPES))
def test_rendered_object_has_flat_colour_area_and_centroid(shape):
    """Coverage-weighted pixels give the shape's exact area and centroid (sub-pixel timing needs it)."""
    areas = {"circle": np.pi * 49.0, "square": 196.0, "triangle": 16.0 * w.TRIANGLE_HEIGHT / 2}
    for colour, motion in (("red", "bouncing"), ("blue", "sliding"), ("yellow", "blinking")):
        clip = gen.generate_clip(11, colour, shape, motion)
        rgb = np.array(w.COLOURS[colour].rgb)
        coverage = (clip.frames - 0.08) @ (rgb - 0.08) / np.sum((rgb - 0.08) ** 2)
        seen = ~np.isnan(clip.centroids[:, 0])
        np.testing.assert_allclose(coverage.sum(axis=(1, 2))[seen], areas[shape], rtol=2e-3)
        rows, cols = np.indices((64, 64))
        mass = coverage.sum(axis=(1, 2))[seen]
        centroid = np.stack([(coverage * cols).sum(axis=(1, 2))[seen],
                             (coverage * rows).sum(axis=(1, 2))[seen]], axis=-1) / mass[:, None]
        np.testing.assert_allclose(centroid, clip.centroids[seen], atol=0.02)
        full = coverage > 1.0 - 1e-6
        np.testing.assert_allclose(clip.frames[full], np.broadcast_to(rgb, clip.frames[full].shape), atol=1e-6)


# Physics.

def test_bouncing_contacts_put_the_bottom_on_the_floor():
    for clip in _clips("bouncing"):
        path, shape = clip.trajectory, w.SHAPES[clip.shape]
        contacts = np.array(clip.events)
        bottom_at = path.centre(contacts)[:, 1] + shape.half_height
        bottom_just_before = path.centre(contacts - 1e-9)[:, 1] + shape.half_height
        np.testing.assert_allclose(bottom_at, w.FLOOR_Y, atol=1e-6)
        np.testing.assert_allclose(bottom_just_before, w.FLOOR_Y, atol=1e-6)
        dense = np.linspace(0.0, w.DURATION_S, 4001)
        centres = path.centre(dense)
        assert np.all(centres[:, 1] + shape.half_height <= w.FLOOR_Y + 1e-9)
        assert np.all(centres[:, 1] - shape.half_height >= -1e-9)  # dropped from inside the picture
        assert np.ptp(centres[:, 0]) == 0.0
        assert w.RESTITUTION_RANGE[0] <= path.restitution <= w.RESTITUTION_RANGE[1]
        flights = np.diff(np.append(contacts, contacts[-1] + 2 * path.rebound_speeds[-1] / w.GRAVITY_PX_S2))
        assert flights.min() >= w.MIN_FLIGHT_S
        np.testing.assert_allclose(path.rebound_speeds[1:] / path.rebound_speeds[:-1], path.restitution)


def test_sliding_contacts_touch_a_wall():
    for clip in _clips("sliding"):
        path, shape = clip.trajectory, w.SHAPES[clip.shape]
        x = path.centre(np.array(clip.events))[:, 0]
        gap = np.minimum(np.abs(x - shape.half_width - w.LEFT_WALL_X),
                         np.abs(x + shape.half_width - w.RIGHT_WALL_X))
        np.testing.assert_allclose(gap, 0.0, atol=1e-6)
        dense = path.centre(np.linspace(0.0, w.DURATION_S, 4001))
        assert dense[:, 0].min() - shape.half_width >= w.LEFT_WALL_X - 1e-9
        assert dense[:, 0].max() + shape.half_width <= w.RIGHT_WALL_X + 1e-9
        assert np.ptp(dense[:, 1]) == 0.0
        speed = np.abs(np.diff(dense[:, 0])).max() / (w.DURATION_S / 4000)
        assert w.SLIDE_SPEED_RANGE_PX_S[0] - 1e-6 <= speed <= w.SLIDE_SPEED_RANGE_PX_S[1] + 1e-6


def test_blinking_spells_and_frames():
    for clip in _clips("blinking"):
        spells = np.array(clip.blinks)
        on = spells[:, 1] - spells[:, 0]
        off = spells[1:, 0] - spells[:-1, 1]
        assert np.all((on >= 0.2) & (on <= 0.6)) and np.all((off >= 0.15) & (off <= 0.5))
        starts = spells[:, 0]
        np.testing.assert_allclose(clip.events, starts[(starts >= 0) & (starts < 2.0)])
        times = np.arange(32) / 16
        shown = np.any((times[:, None] >= spells[:, 0]) & (times[:, None] < spells[:, 1]), axis=1)
        drawn = np.abs(clip.frames - 0.08).max(axis=(1, 2, 3)) > 0.5
        np.testing.assert_array_equal(drawn, shown)


def test_every_clip_has_a_timed_event():
    first, last = 2 / 16, 29 / 16
    for seed in SEEDS:
        events = np.array(gen.generate_clip(seed).events)
        assert np.any((events >= first) & (events <= last)), seed


# Sound.

def test_impact_envelope():
    tau = np.array([-1e-4, 0.0, 0.001, 0.002, 0.062, 0.1499, 0.150])
    expected = [0.0, 0.0, 0.25, 0.5, 0.5 * np.exp(-1.0), 0.5 * np.exp(-0.1479 / 0.060), 0.0]
    np.testing.assert_allclose(gen.impact_envelope(tau), expected, atol=1e-12)


def test_square_timbre_has_odd_harmonics_below_the_limit():
    tau = np.arange(SR) / SR
    spectrum, freqs = _spectrum(gen.tone(tau, 440.0, "square"))
    fundamental = _partial(spectrum, freqs, 440.0)
    for n in (3, 5, 7, 9, 11, 13, 15, 17):  # 17 * 440 = 7480 Hz is the last one kept
        assert _partial(spectrum, freqs, n * 440.0) / fundamental == pytest.approx(1.0 / n, rel=0.02)
    for n in (2, 4, 6):
        assert _partial(spectrum, freqs, n * 440.0) / fundamental < 1e-6
    assert spectrum[freqs > 7500.0].max() / fundamental < 1e-6


def test_triangle_timbre_harmonics_fall_as_inverse_square():
    tau = np.arange(SR) / SR
    spectrum, freqs = _spectrum(gen.tone(tau, 330.0, "triangle"))
    fundamental = _partial(spectrum, freqs, 330.0)
    for n in (3, 5, 7, 9):
        assert _partial(spectrum, freqs, n * 330.0) / fundamental == pytest.approx(1.0 / n**2, rel=0.02)
    assert spectrum[freqs > 7500.0].max() / fundamental < 1e-6


def test_tones_peak_at_one_and_start_at_zero():
    tau = np.arange(SR // 10) / SR
    for timbre in ("sine", "square", "triangle"):
        for colour in w.COLOURS.values():
            wave = gen.tone(tau, colour.pitch_hz, timbre)
            assert gen.tone(np.zeros(1), colour.pitch_hz, timbre)[0] == pytest.approx(0.0, abs=1e-12)
            assert 0.99 <= np.abs(wave).max() <= 1.0 + 1e-6


def test_impact_clip_sound_starts_at_the_contact_and_peaks_at_half():
    clip = gen.generate_clip(4, "green", "square", "bouncing")
    assert np.abs(clip.waveform).max() == pytest.approx(0.5, abs=0.01)
    for t0 in clip.events:
        start = int(np.ceil(t0 * SR))
        assert np.abs(clip.waveform[start - 80:start]).max() < 6 * w.NOISE_RMS  # 5 ms of noise only
        assert np.abs(clip.waveform[start:start + 80]).max() > 0.4


def test_noise_is_minus_50_dbfs_rms():
    silence = gen.synthesize(np.zeros(0), np.zeros((0, 2)), 440.0, "sine", np.random.default_rng(1))
    assert 20 * np.log10(np.sqrt(np.mean(silence.astype(np.float64) ** 2))) == pytest.approx(-50.0, abs=0.1)


def test_blink_sound_follows_the_spells():
    clip = gen.generate_clip(8, "blue", "circle", "blinking")
    t = np.arange(w.NUM_SAMPLES) / SR
    for on, off in clip.blinks:
        inside = (t >= on + w.BLINK_FADE_S) & (t <= off - w.BLINK_FADE_S)
        if inside.sum() > 200:
            assert np.abs(clip.waveform[inside]).max() == pytest.approx(0.3, abs=0.01)
    shown = np.any((t[:, None] >= np.array(clip.blinks)[:, 0]) & (t[:, None] < np.array(clip.blinks)[:, 1]), axis=1)
    assert np.abs(clip.waveform[~shown]).max() < 6 * w.NOISE_RMS


# Determinism and helpers.

def test_same_seed_same_clip_and_words_do_not_change_the_draw():
    a, b = gen.generate_clip(42), gen.generate_clip(42)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.waveform, b.waveform)
    assert a.events == b.events and a.prompt == b.prompt
    assert gen.generate_clip(43).events != a.events
    red = gen.generate_clip(7, "red", "circle", "sliding")
    green = gen.generate_clip(7, "green", "circle", "sliding")
    assert red.events == green.events and not np.array_equal(red.waveform, green.waveform)


def test_batch_and_stream():
    batch = gen.generate_batch([1, 2, 3], motion="blinking")
    assert batch.frames.shape == (3, 32, 64, 64, 3) and batch.waveforms.shape == (3, 32000)
    assert all(p.endswith("blinking") for p in batch.prompts)
    first = [c.prompt for c, _ in zip(gen.iter_clips(5), range(6))]
    again = [c.prompt for c, _ in zip(gen.iter_clips(5), range(6))]
    other = [c.events for c, _ in zip(gen.iter_clips(6), range(6))]
    assert first == again
    assert other != [c.events for c, _ in zip(gen.iter_clips(5), range(6))]
