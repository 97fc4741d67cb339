"""ToyAV metrics (docs/TOYAV.md, "The world": metrics), recovered from pixels and samples alone.

Nothing here reads a clip's ground truth, so the same code scores generated clips, decoded mp4
files and the generator's own clips, which must score perfectly.

Conventions:
- A picture event is an interval of times the picture allows: a contact refined to sub-frame
  time is a point (both ends equal); an appearance can only be placed between the last frame
  without the object and the first frame with it, so it is that frame interval. An offset is
  the signed distance from a sound onset to the event's interval (positive: sound late); it is
  0 for an onset inside the interval.
- Contacts need two frames on each side for their sub-frame fit, so contacts are only reported
  from frame TIMED_MARGIN_FRAMES to frame T-1-TIMED_MARGIN_FRAMES, and precision only counts
  onsets inside that span (outside it the picture cannot time an event).
- Recall is NaN for a clip with no picture event, precision is NaN for a clip with no onset in
  that span (0 / 0); `aggregate` averages over the clips where they are defined.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import world as w

MATCH_WINDOW_S = 0.100  # an event and an onset this close are the same happening
PITCH_TOLERANCE = 0.03  # relative error allowed on the fundamental
OBJECT_MIN_CONTRAST = 0.02  # RGB distance from the background below which a pixel is background
VISIBLE_FRACTION = 0.5  # of the object's usual weight, for a frame to show it
STILL_PX = 2.0  # a track spreading less than this on both axes does not move
CONTACT_PROMINENCE_PX = 1.0  # an extremum of the track must stand out this much to be a contact
ENVELOPE_HOP_S = 0.002  # RMS envelope resolution for onsets
LOWEST_FLOOR_DBFS = -60.0  # the noise floor is never taken lower (digital silence is not a floor)
ONSET_ABOVE_FLOOR_DB = 20.0  # an onset rises this far above the noise floor...
ONSET_RISE_DB = 10.0  # ...and by this much within ONSET_RISE_S
ONSET_RISE_S = 0.010
ONSET_SAMPLE_FACTOR = 8.0  # a sample this far above the quiet level starts the sound
ONSET_REFRACTORY_S = 0.030  # onsets closer than this are one onset
PITCH_FRAME_S = 0.064  # analysis frame for the fundamental
PITCH_RANGE_HZ = (50.0, 4000.0)


@dataclass(frozen=True)
class ObjectTrack:
    """What the picture shows of the object, frame by frame."""

    centroids: np.ndarray  # [T, 2] (x, y), weighted by difference from the background; NaN if unseen
    visible: np.ndarray  # [T] bool
    colour: np.ndarray  # [3] mean RGB of the object's fully covered pixels; NaN if never seen


def object_track(frames) -> ObjectTrack:
    """Centroid, visibility and colour of whatever differs from the (per-frame median) background."""
    frames = _as_numpy(frames)
    if np.issubdtype(frames.dtype, np.integer):
        frames = frames / np.iinfo(frames.dtype).max
    frames = frames.astype(np.float64)
    background = np.median(frames, axis=(1, 2), keepdims=True)
    distance = np.linalg.norm(frames - background, axis=-1)
    # Coding noise sits in every pixel; the object in a few. Weights stay proportional to the
    # coverage of antialiased edges, which keeps the centroid sub-pixel accurate.
    threshold = max(OBJECT_MIN_CONTRAST, 4.0 * float(np.median(distance)))
    weight = np.maximum(distance - threshold, 0.0)
    mass = weight.sum(axis=(1, 2))
    rows, cols = np.indices(weight.shape[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = np.stack([(weight * cols).sum(axis=(1, 2)) / mass,
                              (weight * rows).sum(axis=(1, 2)) / mass], axis=-1)
    usual = np.percentile(mass, 90)
    visible = (mass >= VISIBLE_FRACTION * usual) & (usual > 1.0)
    centroids[~visible] = np.nan

    peak = distance.max(axis=(1, 2), keepdims=True)
    core = (distance >= 0.9 * peak) & visible[:, None, None]
    colour = frames[core].mean(axis=0) if core.any() else np.full(3, np.nan)
    return ObjectTrack(centroids, visible, colour)


def motion_steps(frames, frames_per_latent: int) -> dict:
    """The object's steps (px) between consecutive frames where it is seen in both, split by where
    they fall in a video latent of `frames_per_latent` frames: "within" one latent frame, "across"
    two, and "first", the step into the second latent frame. The world moves objects smoothly
    (within about equal to across); a model that draws them once per latent frame does not."""
    track = object_track(frames)
    out = {"within": [], "across": [], "first": []}
    for f in range(1, len(track.centroids)):
        if not (track.visible[f - 1] and track.visible[f]):
            continue
        step = float(np.linalg.norm(track.centroids[f] - track.centroids[f - 1]))
        out["across" if f % frames_per_latent == 0 else "within"].append(step)
        if f == frames_per_latent:
            out["first"].append(step)
    return out


def classify_motion(track: ObjectTrack) -> str:
    """bouncing, sliding or blinking as in TOYAV.md; "static" or "none" for anything else."""
    if not track.visible.any():
        return "none"
    if not track.visible.all():
        return "blinking"
    spread = np.ptp(track.centroids, axis=0)
    if spread.max() < STILL_PX:
        return "static"
    return "sliding" if spread[0] > spread[1] else "bouncing"


def picture_events(track: ObjectTrack, fps: float, motion: str) -> np.ndarray:
    """[n, 2] (earliest, latest) times of the events the picture shows for this motion class."""
    if motion == "bouncing":  # floor contacts: the lowest points (y grows downwards)
        times = contact_times(track.centroids[:, 1], fps)
    elif motion == "sliding":  # wall contacts: rightmost and leftmost points
        x = track.centroids[:, 0]
        times = np.sort(np.concatenate([contact_times(x, fps), contact_times(-x, fps)]))
    elif motion == "blinking":  # appearances, between two frames
        first_seen = np.flatnonzero(track.visible[1:] & ~track.visible[:-1]) + 1
        return np.stack([(first_seen - 1) / fps, first_seen / fps], axis=-1)
    else:
        times = np.zeros(0)
    return np.stack([times, times], axis=-1)


def contact_times(coordinate: np.ndarray, fps: float) -> np.ndarray:
    """Sub-frame times of the prominent maxima of a coordinate that moves ballistically.

    Between contacts the coordinate is a parabola of one curvature (gravity; zero when
    sliding). With that curvature removed it is piecewise linear, and a contact is where the
    line before it meets the line after it. The contact lies either just before or just after
    the extremal frame m; fitting the wrong side puts the meeting point exactly at frame m, so
    of the two fits the one farther from frame m is the right one.
    """
    n = len(coordinate)
    t = np.arange(n) / fps
    peaks = _prominent_maxima(coordinate)
    if len(peaks) == 0:
        return np.zeros(0)
    second = coordinate[2:] - 2.0 * coordinate[1:-1] + coordinate[:-2]  # centred on 1..n-2
    near_peak = np.zeros(n, dtype=bool)
    near_peak[np.clip(peaks[:, None] + np.arange(-1, 2), 0, n - 1)] = True
    smooth = second[~near_peak[1:-1]]
    curvature = float(np.median(smooth)) * fps**2 if len(smooth) else 0.0
    z = coordinate - 0.5 * curvature * t**2

    margin = w.TIMED_MARGIN_FRAMES
    times = []
    for m in peaks[(peaks >= margin) & (peaks <= n - 1 - margin)]:
        fits = np.array([_meeting_time(z, t, m - 1, m + 1),  # contact in (t[m], t[m+1])
                         _meeting_time(z, t, m - 2, m)])  # contact in (t[m-1], t[m])
        fits = fits[np.isfinite(fits)]
        best = fits[np.argmax(np.abs(fits - t[m]))] if len(fits) else t[m]
        times.append(np.clip(best, t[m - 1], t[m + 1]))
    return np.array(times)


def _meeting_time(z: np.ndarray, t: np.ndarray, i: int, j: int) -> float:
    """Where the line through samples (i, i+1) meets the line through (j, j+1); NaN if parallel."""
    slope_i = (z[i + 1] - z[i]) / (t[i + 1] - t[i])
    slope_j = (z[j + 1] - z[j]) / (t[j + 1] - t[j])
    if np.isclose(slope_i, slope_j):
        return np.nan
    return float((z[j] - z[i] + slope_i * t[i] - slope_j * t[j]) / (slope_i - slope_j))


def _prominent_maxima(values: np.ndarray) -> np.ndarray:
    """Interior local maxima that stand CONTACT_PROMINENCE_PX above the valleys on both sides."""
    inner = values[1:-1]
    candidates = np.flatnonzero((inner > values[:-2]) & (inner >= values[2:])) + 1
    kept = []
    for m in candidates:
        higher_left = np.flatnonzero(values[:m] > values[m])
        higher_right = np.flatnonzero(values[m + 1:] > values[m])
        left = values[higher_left[-1] + 1 if len(higher_left) else 0:m].min()
        right = values[m + 1:m + 1 + higher_right[0] if len(higher_right) else None].min()
        if values[m] - max(left, right) >= CONTACT_PROMINENCE_PX:
            kept.append(m)
    return np.array(kept, dtype=int)


def _envelope(waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, float]:
    """RMS per ENVELOPE_HOP_S hop, the hop length in samples, and the noise floor RMS (the
    10th percentile of the hops: ToyAV sounds leave at least a fifth of a clip quiet)."""
    hop = max(1, round(ENVELOPE_HOP_S * sample_rate))
    count = len(waveform) // hop
    rms = np.sqrt(np.mean(waveform[:count * hop].reshape(count, hop) ** 2, axis=1))
    floor = max(float(np.percentile(rms, 10)), 10.0 ** (LOWEST_FLOOR_DBFS / 20.0))
    return rms, hop, floor


def sound_onsets(waveform, sample_rate: int) -> np.ndarray:
    """Times (s) where the amplitude envelope rises out of the noise, refined to the sample.

    A hop is an onset candidate when its level is ONSET_ABOVE_FLOOR_DB above the noise floor
    and has risen ONSET_RISE_DB within ONSET_RISE_S; the first hop of each such run is walked
    back to the foot of the rise, and the onset is the first sample from there that stands
    ONSET_SAMPLE_FACTOR above the quiet level before it (about 6 noise sigmas).
    """
    x = _mono(waveform)
    rms, hop, floor = _envelope(x, sample_rate)
    if len(rms) < 2:
        return np.zeros(0)
    level = 20.0 * np.log10(np.maximum(rms, 1e-10))
    span = max(1, round(ONSET_RISE_S / ENVELOPE_HOP_S))
    padded = np.concatenate([np.full(span, level[0]), level])
    recent_min = np.min(np.lib.stride_tricks.sliding_window_view(padded[:-1], span), axis=1)
    loud = level > 20.0 * np.log10(floor) + ONSET_ABOVE_FLOOR_DB
    active = loud & (level - recent_min > ONSET_RISE_DB)
    starts = np.flatnonzero(active & ~np.concatenate([[False], active[:-1]]))

    onsets = []
    for k in starts:
        foot = k
        while foot > 0 and level[foot - 1] < level[foot]:
            foot -= 1
        first = max(foot - 1, 0)
        quiet = max(floor, rms[first])
        standing_out = np.abs(x[first * hop:(k + 1) * hop]) > ONSET_SAMPLE_FACTOR * quiet
        sample = first * hop + (np.argmax(standing_out) if standing_out.any() else (k - first) * hop)
        if not onsets or sample / sample_rate - onsets[-1] >= ONSET_REFRACTORY_S:
            onsets.append(sample / sample_rate)
    return np.array(onsets)


def fundamental_hz(waveform, sample_rate: int) -> float:
    """Strongest partial of the sounding part (the fundamental for every ToyAV timbre), in Hz.

    Power spectra of Hann-windowed frames louder than 20 dB over the noise floor are averaged;
    the peak is refined by parabolic interpolation of the log power. NaN if nothing sounds.
    """
    x = _mono(waveform)
    _, _, floor = _envelope(x, sample_rate)
    size = int(2 ** np.ceil(np.log2(PITCH_FRAME_S * sample_rate)))
    if len(x) < size:
        return float("nan")
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::size // 4]
    loud = frames[np.sqrt(np.mean(frames**2, axis=1)) > 10.0 * floor]
    if len(loud) == 0:
        return float("nan")
    padded = 8 * size
    power = np.mean(np.abs(np.fft.rfft(loud * np.hanning(size), n=padded)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(padded, 1.0 / sample_rate)
    top = min(PITCH_RANGE_HZ[1], sample_rate / 2)
    band = np.flatnonzero((freqs >= PITCH_RANGE_HZ[0]) & (freqs <= top))
    k = int(np.clip(band[np.argmax(power[band])], 1, len(power) - 2))
    a, b, c = np.log(power[k - 1:k + 2] + 1e-30)
    shift = 0.5 * (a - c) / (a - 2.0 * b + c) if a - 2.0 * b + c < 0 else 0.0
    return float((k + shift) * sample_rate / padded)


SHAPE_AREAS_PX = {"circle": np.pi * w.CIRCLE_RADIUS**2, "square": w.SQUARE_SIDE**2,
                  "triangle": w.TRIANGLE_SIDE * w.TRIANGLE_HEIGHT / 2.0}


def object_area(frames) -> float:
    """The object's area in pixels (median over the frames that show it): each pixel counts the
    fraction of the way from the background to the object's colour, so antialiased edges count
    their coverage. NaN when the object is never seen."""
    frames = _as_numpy(frames)
    if np.issubdtype(frames.dtype, np.integer):
        frames = frames / np.iinfo(frames.dtype).max
    frames = frames.astype(np.float64)
    track = object_track(frames)
    if not track.visible.any():
        return float("nan")
    seen = frames[track.visible]
    background = np.median(seen, axis=(1, 2), keepdims=True)
    distance = np.linalg.norm(seen - background, axis=-1)
    full = np.linalg.norm(track.colour - background[:, 0, 0], axis=-1)  # [frames]: a fully covered pixel
    cover = np.clip(distance / full[:, None, None], 0.0, 1.0)
    cover[distance < OBJECT_MIN_CONTRAST] = 0.0
    return float(np.median(cover.sum(axis=(1, 2))))


def classify_shape(frames) -> str | None:
    """circle, square or triangle: the world shape whose area is nearest (their areas are about
    111, 154 and 196 px, far enough apart for blurred edges); None when no object is seen."""
    area = object_area(frames)
    if np.isnan(area):
        return None
    return min(SHAPE_AREAS_PX, key=lambda name: abs(np.log(area / SHAPE_AREAS_PX[name])))


def nearest_colour(rgb: np.ndarray) -> str | None:
    """The world colour closest in RGB, or None when no object was seen."""
    if np.isnan(rgb).any():
        return None
    names = list(w.COLOURS)
    palette = np.array([w.COLOURS[n].rgb for n in names])
    return names[int(np.argmin(np.linalg.norm(palette - rgb, axis=1)))]


def sync(events: np.ndarray, onsets: np.ndarray, timed_span: tuple[float, float]) -> dict:
    """Offsets of picture events to their nearest onsets, recall and precision (see module doc)."""
    events = np.asarray(events, dtype=np.float64).reshape(-1, 2)
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    gaps = _gaps(events, onsets)  # [events, onsets] signed offsets
    if gaps.size:
        offsets = gaps[np.arange(len(events)), np.argmin(np.abs(gaps), axis=1)]
    else:
        offsets = np.zeros(0)
    timed = (onsets >= timed_span[0]) & (onsets <= timed_span[1])
    if len(events):
        recall = float(np.mean(np.abs(offsets) <= MATCH_WINDOW_S)) if len(offsets) else 0.0
    else:
        recall = np.nan
    if not timed.any():
        precision = np.nan
    elif len(events):
        precision = float(np.mean(np.min(np.abs(gaps[:, timed]), axis=0) <= MATCH_WINDOW_S))
    else:
        precision = 0.0
    return {
        "offsets_ms": (offsets * 1000.0).tolist(),
        "median_offset_ms": float(np.median(np.abs(offsets)) * 1000.0) if len(offsets) else np.nan,
        "recall": recall,
        "precision": float(precision),
    }


def _gaps(events: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Signed distance of each onset to each event interval (0 inside it)."""
    early, late = events[:, :1], events[:, 1:]
    return np.where(onsets < early, onsets - early, np.where(onsets > late, onsets - late, 0.0))


def score_clip(frames, fps: float, waveform, sample_rate: int, prompt: str) -> dict:
    """Every ToyAV measurement of one clip against its prompt."""
    colour, _, motion = w.parse_prompt(prompt)
    frames = _as_numpy(frames)
    track = object_track(frames)
    motion_found = classify_motion(track)
    events = picture_events(track, fps, motion_found)
    onsets = sound_onsets(waveform, sample_rate)
    last = len(frames) - 1
    timed_span = (w.TIMED_MARGIN_FRAMES / fps, (last - w.TIMED_MARGIN_FRAMES) / fps)
    pitch = fundamental_hz(waveform, sample_rate)
    colour_found = nearest_colour(track.colour)
    return {
        "prompt": prompt,
        "picture_events": [tuple(e) for e in events.tolist()],
        "sound_onsets": onsets.tolist(),
        **sync(events, onsets, timed_span),
        "colour": colour_found,
        "colour_ok": colour_found == colour,
        "pitch_hz": pitch,
        "pitch_ok": bool(abs(pitch / w.COLOURS[colour].pitch_hz - 1.0) <= PITCH_TOLERANCE),
        "motion": motion_found,
        "motion_ok": motion_found == motion,
    }


def aggregate(scores: list[dict]) -> dict:
    """Means over clips (NaNs skipped) and the median absolute offset over all events."""
    offsets = np.abs(np.concatenate([np.zeros(0)] + [np.asarray(s["offsets_ms"], float) for s in scores]))

    def mean(key):
        values = np.array([s[key] for s in scores], dtype=np.float64)
        values = values[~np.isnan(values)]
        return float(values.mean()) if len(values) else np.nan

    return {
        "clips": len(scores),
        "median_offset_ms": float(np.median(offsets)) if len(offsets) else np.nan,
        "recall": mean("recall"),
        "precision": mean("precision"),
        "colour_accuracy": mean("colour_ok"),
        "pitch_accuracy": mean("pitch_ok"),
        "motion_accuracy": mean("motion_ok"),
    }


SUMMARY_KEYS = ("median_offset_ms", "recall", "precision", "colour_accuracy", "pitch_accuracy", "motion_accuracy")


def summarize_by_seed(by_seed: list[list[dict]]) -> dict:
    """Scores over all clips, per seed, and the spread (population std) of the per-seed scores,
    rounded to 4 digits: how the benchmark and the ablation report a set of prompts x seeds."""
    per_seed = [aggregate(s) for s in by_seed]
    spread = {}
    for key in SUMMARY_KEYS:
        vals = [s[key] for s in per_seed if s[key] == s[key]]
        spread[key] = round(float(np.std(vals)), 4) if len(vals) > 1 else 0.0
    return {"all": _rounded(aggregate([c for s in by_seed for c in s])), "per_seed": [_rounded(s) for s in per_seed],
            "spread_across_seeds": spread}


def _rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def load_mp4(path: str | Path) -> tuple[np.ndarray, float, np.ndarray, int]:
    """Frames [T, H, W, 3] uint8, fps, mono waveform float32 and sample rate of a video file.

    Audio is placed on the video's clock by timestamps, so encoder priming and edit lists do not
    shift it: sample 0 is the time of the first video frame.
    """
    import av

    frames, frame_times, chunks = [], [], []
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        fps = float(video.average_rate)
        sample_rate = audio.rate if audio is not None else 0
        for packet in container.demux([s for s in (video, audio) if s is not None]):
            for frame in packet.decode():
                if packet.stream.type == "video":
                    frames.append(frame.to_ndarray(format="rgb24"))
                    frame_times.append(frame.time)
                else:
                    samples = frame.to_ndarray().astype(np.float32)
                    if not frame.format.is_planar:  # interleaved channels
                        samples = samples.reshape(-1, len(frame.layout.channels)).T
                    chunks.append((frame.time, samples.mean(axis=0)))
    start = frame_times[0] if frame_times[0] is not None else 0.0
    placed = [(round((t - start) * sample_rate), s) for t, s in chunks]
    waveform = np.zeros(max([i + len(s) for i, s in placed], default=0), dtype=np.float32)
    for i, s in placed:
        skip = max(0, -i)
        waveform[i + skip:i + len(s)] = s[skip:]
    return np.stack(frames), fps, waveform, sample_rate


def _as_numpy(array) -> np.ndarray:
    """numpy view of an array or a (CPU) torch tensor, without importing torch."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _mono(waveform) -> np.ndarray:
    """Mean over every leading axis ([S], [C, S] or ComfyUI's [B, C, S])."""
    x = _as_numpy(waveform).astype(np.float64)
    return x.reshape(-1, x.shape[-1]).mean(axis=0)
