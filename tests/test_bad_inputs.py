"""A corpus of bad inputs, each expected to fail with one exact error class and a message naming the
problem: crafted checkpoints (built here from the tiny config, never shipped), broken media, raced
and misnamed outputs, out-of-range options, and signals during a run."""

import json
import os
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest
import torch

from ccl_core import DualStreamModel, tiny_config
from ccl_core import checkpoint as ckpt
from ccl_core.__main__ import Terminated, main, signals_raise
from ccl_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ccl_core.generate import SEED_RANGE, STEPS_RANGE, check_settings, generate
from ccl_core.media import (MediaError, MediaWarning, OutputExistsError, publish, read_audio, read_video,
                            write_mp4)
from conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------- crafted checkpoints
def _split(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(path, header, body):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A valid tiny CCL checkpoint; every crafted case is this file with one lie in its header."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    torch.manual_seed(0)
    save_checkpoint(DualStreamModel(tiny_config()), path)
    return path


Q, K = "video_model.blocks.0.self_attn.q.weight", "video_model.blocks.0.self_attn.k.weight"


def _offsets(name, f):
    def edit(h, body):
        h[name]["data_offsets"] = f(h[name]["data_offsets"], len(body))
    return edit


def _config(**changes):
    def edit(h, body):
        cfg = json.loads(h["__metadata__"]["ccl_config"])
        for k, v in changes.items():
            if v is _DROP:
                cfg.pop(k)
            else:
                cfg[k] = v
        h["__metadata__"]["ccl_config"] = json.dumps(cfg)
    return edit


def _meta(key, value):
    def edit(h, body):
        if value is _DROP:
            h["__metadata__"].pop(key)
        else:
            h["__metadata__"][key] = value
    return edit


def _set(name, key, value):
    def edit(h, body):
        h[name][key] = value
    return edit


_DROP = object()

CHECKPOINT_CASES = {
    # byte spans
    "lying offsets": (_offsets(Q, lambda o, n: [o[0], o[0] + 1]),
                      rf"tensor '{Q}' spans 1 bytes .* but its shape \[32, 32\] of F32 needs 4096"),
    "reversed offsets": (_offsets(Q, lambda o, n: [o[1], o[0]]), rf"tensor '{Q}' has reversed data_offsets"),
    "overlapping spans": (lambda h, b: h[K].update(data_offsets=h[Q]["data_offsets"]), r"tensors .* overlap"),
    "span past the end": (_offsets(Q, lambda o, n: [n, n + o[1] - o[0]]),
                          rf"is truncated: tensor '{Q}' ends at byte \d+ but the file has \d+"),
    "negative offset": (_offsets(Q, lambda o, n: [-4, o[1]]), rf"tensor '{Q}' has invalid data_offsets \[-4"),
    "unknown dtype": (_set(Q, "dtype", "F4"), rf"tensor '{Q}' has unknown dtype 'F4' \(known: "),
    "negative shape": (_set(Q, "shape", [-32, -32]), rf"tensor '{Q}' has an invalid shape \[-32, -32\]"),
    "entry not an object": (lambda h, b: h.update({Q: [1, 2]}), rf"tensor '{Q}' has no dtype / shape / data_offsets"),
    "metadata not strings": (_meta("ccl_config", {"dim": 32}), r"__metadata__ must map names to strings"),
    # the config in the metadata
    "huge config": (_config(num_layers=4000, dim=2**20),
                    r"at least [\d,]+ parameters \(num_layers=4000, dim=1048576, .*\) but the file holds [\d,]+"),
    "bad JSON": (_meta("ccl_config", "{not json"), r"metadata ccl_config is not valid JSON"),
    "config not an object": (_meta("ccl_config", "[1, 2]"), r"ccl_config is a JSON list, not an object"),
    "missing ccl_config": (_meta("ccl_config", _DROP), r"marked as a CCL checkpoint .* has no ccl_config"),
    "newer format": (_meta("ccl_format", "2"), r"CCL format '2'; this version reads format '1'"),
    "missing field": (_config(dim=_DROP), r"missing field 'dim'"),
    "unknown field": (_config(depth=3), r"unknown fields \['depth'\]"),
    "string for int": (_config(num_layers="2"), r"field 'num_layers' must be an integer, got '2'"),
    "string for bool": (_config(qk_norm="yes"), r"field 'qk_norm' must be true or false, got 'yes'"),
    "short patch": (_config(video_patch=[1, 2]), r"field 'video_patch' must be a list of 3, got \[1, 2\]"),
    "float for int": (_config(n_ctx=4.5), r"field 'n_ctx' must be an integer, got 4.5"),
    "zero heads": (_config(num_heads=0), r"num_heads must be >= 1, got 0"),
    "unknown fusion": (_config(fusion="magic"), r"fusion must be one of .* got 'magic'"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_crafted_checkpoints_are_refused_naming_the_problem(good, tmp_path, case):
    edit, message = CHECKPOINT_CASES[case]
    header, body = _split(good)
    edit(header, body)
    path = tmp_path / "crafted.safetensors"
    _join(path, header, body)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    assert time.perf_counter() - t0 < 5  # refused from the header, before anything large is built


def test_a_header_that_is_not_an_object(tmp_path):
    path = tmp_path / "list.safetensors"
    path.write_bytes(struct.pack("<Q", 6) + b"[1, 2]")
    with pytest.raises(CheckpointError, match="header is a JSON list, not an object"):
        load_checkpoint(path)


def test_ovi_lookalike_missing_a_tensor(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "half_ovi.safetensors"
    save_file({"video_model.blocks.0.cross_attn.k_fusion.weight": torch.zeros(4, 4),
               "audio_model.blocks.0.cross_attn.k_fusion.weight": torch.zeros(4, 4)}, path)
    with pytest.raises(CheckpointError, match=r"looks like an Ovi .* lacks the tensor 'video_model.blocks.0.self_attn"):
        load_checkpoint(path)


def test_weights_larger_than_free_memory_are_refused(good, monkeypatch):
    monkeypatch.setattr(ckpt, "available_memory", lambda device: 1000)
    with pytest.raises(CheckpointError, match=r"the weights need 0.00 GiB on cpu but only 0.00 GiB are free"):
        load_checkpoint(good)
    monkeypatch.setattr(ckpt, "available_memory", lambda device: None)  # unknown: not refused
    load_checkpoint(good)


def test_the_real_free_memory_is_read():
    free = ckpt.available_memory("cpu")
    assert free is None or free > 2**20


def test_the_parameter_bound_holds_for_shipped_configs():
    """min_parameters must never exceed what a real model has, or valid files would be refused."""
    from ccl_core.toyav.embedded import toyav_config
    for cfg in (tiny_config(), toyav_config(), tiny_config(fusion="ovi", n_ctx=0, tarp_window=None)):
        with torch.device("meta"):
            real = sum(p.numel() for p in DualStreamModel(cfg).parameters())
        assert ckpt.min_parameters(cfg) <= real


# ---------------------------------------------------------------------- media in
def _wav(path, samples, rate=16000):
    pcm = (np.sin(np.arange(samples) * 0.05) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


@pytest.mark.parametrize("samples, seconds", [(28, "0.00175"), (1600, "0.1")])
def test_audio_far_too_short_is_refused(tmp_path, samples, seconds):
    with pytest.raises(MediaError, match=rf"tiny.wav lasts {seconds} s, under 10% of the 2 s clip, so the result "
                                         rf"would be mostly silence"):
        read_audio(_wav(tmp_path / "tiny.wav", samples), 16000, 2.0)


def test_audio_short_or_long_is_fitted_with_a_warning(tmp_path):
    with pytest.warns(MediaWarning, match=r"short.wav lasts 1.50 s but the clip is 2 s: its last 0.50 s are silence"):
        assert read_audio(_wav(tmp_path / "short.wav", 24000), 16000, 2.0).shape == (32000,)
    t0 = time.perf_counter()
    with pytest.warns(MediaWarning, match=r"long.wav lasts 60.00 s .* only its first 2 s are used, the rest is cut"):
        assert read_audio(_wav(tmp_path / "long.wav", 60 * 16000), 16000, 2.0).shape == (32000,)
    assert time.perf_counter() - t0 < 5  # decoding stops after the clip's length


def test_audio_of_the_clips_length_is_fitted_silently(tmp_path, recwarn):
    read_audio(_wav(tmp_path / "ok.wav", 32500), 16000, 2.0)  # within 5 %: codec padding, not worth a word
    assert not [w for w in recwarn if issubclass(w.category, MediaWarning)]


def test_truncated_wav_is_read_as_far_as_it_goes(tmp_path):
    data = _wav(tmp_path / "full.wav", 32000).read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 4])
    with pytest.warns(MediaWarning, match=r"cut.wav lasts 0.50 s .* its last 1.50 s are silence"):
        read_audio(tmp_path / "cut.wav", 16000, 2.0)
    (tmp_path / "head.wav").write_bytes(data[:30])
    with pytest.raises(MediaError, match=r"cannot read .*head.wav"):
        read_audio(tmp_path / "head.wav", 16000, 2.0)


def test_text_named_wav_and_wrong_streams(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("these are my notes, not a sound\n" * 20)
    with pytest.raises(MediaError, match=r"cannot read .*notes.wav"):
        read_audio(text, 16000, 2.0)
    with pytest.raises(MediaError, match=r"sound.wav has no video stream"):
        read_video(_wav(tmp_path / "sound.wav", 32000), 16, (64, 64), 2.0)
    silent = write_mp4(tmp_path / "silent.mp4", torch.rand(32, 32, 32, 3), 16.0)
    with pytest.raises(MediaError, match=r"silent.mp4 has no audio stream"):
        read_audio(silent, 16000, 2.0)


def test_video_too_short_refused_short_padded_long_cut(tmp_path):
    with pytest.raises(MediaError, match=r"one.mp4 lasts 0.0625 s, under 10% .* mostly the last frame, held"):
        read_video(write_mp4(tmp_path / "one.mp4", torch.rand(1, 32, 32, 3), 16.0), 16, (64, 64), 2.0)
    short = write_mp4(tmp_path / "short.mp4", torch.rand(20, 32, 32, 3), 16.0)
    with pytest.warns(MediaWarning, match=r"short.mp4 lasts 1.25 s .* its last 0.75 s are the last frame, held"):
        assert read_video(short, 16, (64, 64), 2.0).shape == (32, 64, 64, 3)
    long = write_mp4(tmp_path / "long.mp4", torch.rand(160, 32, 32, 3), 16.0)
    with pytest.warns(MediaWarning, match=r"long.mp4 lasts 10.00 s .* only its first 2 s are used"):
        assert read_video(long, 16, (64, 64), 2.0).shape == (32, 64, 64, 3)
    with open(long, "rb") as f:
        data = f.read()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 20])  # the index and a few frames
    with pytest.raises(MediaError, match=r"cannot decode the video of .*cut.mp4"):
        read_video(tmp_path / "cut.mp4", 16, (64, 64), 2.0)


# ---------------------------------------------------------------------- outputs
def _frames(value):
    return torch.full((8, 32, 32, 3), value)


def _race(path, **options):
    """Two threads write one path, both past the start-up checks before either publishes."""
    barrier = threading.Barrier(2)
    results = {}

    def writer(value):
        first = [True]

        def on_frame():
            if first[0]:
                first[0] = False
                barrier.wait(timeout=30)

        try:
            results[value] = write_mp4(path, _frames(value), 16.0, on_frame=on_frame, **options)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            results[value] = e

    threads = [threading.Thread(target=writer, args=(v,)) for v in (0.0, 1.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _brightness(path):
    from ccl_lab.metrics import load_mp4
    return float(np.asarray(load_mp4(path)[0]).mean())


def test_two_writers_to_one_path_one_wins_one_fails(tmp_path):
    path = tmp_path / "clip.mp4"
    results = _race(path)
    won = [v for v, r in results.items() if isinstance(r, str)]
    lost = [r for r in results.values() if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], OutputExistsError)
    assert "created by another writer while this one was being written; nothing was overwritten" in str(lost[0])
    assert os.listdir(tmp_path) == ["clip.mp4"]  # no temp files
    assert abs(_brightness(path) / 255 - won[0]) < 0.1  # the winner's frames, intact


def test_two_writers_with_next_free_both_keep_their_clip(tmp_path):
    results = _race(tmp_path / "clip.mp4", next_free=True)
    assert sorted(os.path.basename(p) for p in results.values()) == ["clip-1.mp4", "clip.mp4"]
    for value, path in results.items():
        assert abs(_brightness(path) / 255 - value) < 0.1
    assert sorted(os.listdir(tmp_path)) == ["clip-1.mp4", "clip.mp4"]


def test_overwrite_replaces_and_names_are_checked_first(tmp_path):
    path = write_mp4(tmp_path / "a.mp4", _frames(0.0), 16.0)
    with pytest.raises(OutputExistsError, match=r"a.mp4 exists; nothing was overwritten"):
        write_mp4(path, _frames(1.0), 16.0)
    assert write_mp4(path, _frames(1.0), 16.0, overwrite=True) == path
    assert _brightness(path) > 200
    assert write_mp4(path, _frames(0.0), 16.0, next_free=lambda n: str(tmp_path / f"a_{n:05}_.mp4")).endswith("a_00001_.mp4")
    for bad, message in [(tmp_path, "is a folder; give a file name"), (tmp_path / "a.wav", "must end in .mp4"),
                         (tmp_path / "no" / "a.mp4", r"the folder .*no does not exist")]:
        with pytest.raises(MediaError, match=message):
            write_mp4(bad, _frames(0.0), 16.0, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "a_00001_.mp4"]


def test_without_hard_links_the_name_is_reserved_exclusively(tmp_path, monkeypatch):
    import errno

    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    path = write_mp4(tmp_path / "a.mp4", _frames(0.0), 16.0)
    tmp = tmp_path / ".a.x.part.mp4"
    tmp.write_bytes(b"new")
    with pytest.raises(OutputExistsError):
        publish(tmp, path)
    assert _brightness(path) < 50 and sorted(os.listdir(tmp_path)) == ["a.mp4"]
    assert write_mp4(path, _frames(1.0), 16.0, next_free=True).endswith("a-1.mp4")


def test_a_signal_during_the_write_leaves_no_temp_file(tmp_path):
    count = [0]

    def on_frame():
        count[0] += 1
        if count[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Terminated), signals_raise():
        write_mp4(tmp_path / "a.mp4", _frames(0.5), 16.0, on_frame=on_frame)
    assert os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is not None  # the handler was put back


# ---------------------------------------------------------------------- seeds and options
def test_seed_and_steps_ranges():
    for seed in (SEED_RANGE[1] + 1, 2**63 - 1, 2**64 - 1, 2**64, -1, True, 1.5):
        with pytest.raises(ValueError, match=r"seed must be an integer in 0..4294967295"):
            check_settings(seed=seed)
    for steps in (0, STEPS_RANGE[1] + 1, 10000):
        with pytest.raises(ValueError, match=r"steps must be in 1..1000"):
            check_settings(steps=steps)
    with pytest.raises(ValueError, match="shift must be a finite number > 0"):
        check_settings(shift=float("nan"))
    check_settings(seed=SEED_RANGE[1], steps=STEPS_RANGE[1], shift=5.0)


def test_distinct_seeds_at_the_top_of_the_range_give_distinct_noise():
    from ccl_core.toyav.autoencoders import AudioAE, VideoAE
    from ccl_core.toyav.embedded import Pipeline, toyav_config
    from ccl_core.toyav.text import ToyAVTextEncoder

    torch.manual_seed(0)
    v, a = VideoAE().eval(), AudioAE().eval()
    pipe = Pipeline(DualStreamModel(toyav_config(v, a)).eval(), ToyAVTextEncoder(), v, a)
    top = SEED_RANGE[1]
    latents = [generate(pipe, "a red circle bouncing", seed=s, steps=1).video_latent for s in (top, top - 1, 0)]
    assert not torch.equal(latents[0], latents[1]) and not torch.equal(latents[0], latents[2])


def _main(capsys, *args):
    code = main(["generate", "--quiet", "--threads", "1", *[str(a) for a in args]])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("args, message", [
    (["--seed", 2**64], r"--seed must be an integer in 0..4294967295"),
    (["--seed", 2**63 - 1], r"--seed must be an integer in 0..4294967295"),
    (["--steps", 10000], r"--steps must be in 1..1000, got 10000"),
    (["--threads", 0], r"--threads must be in 1..\d+ \(this machine's cores\), got 0"),
    (["--audio", "x.wav"], r"--audio is only used by --task a2v; --task t2av would ignore it"),
    (["--task", "v2a", "--video", "v.mp4", "--audio", "x.wav"], r"--audio is only used by --task a2v; --task v2a"),
    (["--task", "a2v", "--audio", "x.wav", "--video", "v.mp4"], r"--video is only used by --task v2a; --task a2v"),
    (["--task", "a2v"], r"--task a2v needs --audio FILE"),
    (["--video-scale", "inf"], r"--video-scale must be a finite number"),
    (["--shift", "0"], r"--shift must be a finite number > 0"),
    (["--guidance", "none", "--negative-audio", "a red circle"], r"--guidance none has no unconditional branch"),
    (["--negative-audio", "muffled echo"], r"unknown ToyAV word\(s\) \['muffled', 'echo'\]"),
])
def test_cli_options_refused_in_one_line(capsys, tmp_path, args, message):
    code, err = _main(capsys, "--prompt", "a red circle bouncing", "--out", tmp_path / "x.mp4", *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert __import__("re").search(message, err), err


@pytest.mark.parametrize("out, extra, message", [
    ("x.wav", [], r"x.wav: the output is an mp4 file, so its name must end in .mp4"),
    ("x.gif", [], r"must end in .mp4"),
    (".", ["--overwrite"], r"is a folder; give a file name"),
    ("missing/x.mp4", [], r"cannot write .*missing/x.mp4: the folder .*missing does not exist"),
])
def test_cli_out_is_checked_before_anything_loads(capsys, tmp_path, out, extra, message):
    # --model names no file: had the model been loaded first, that would be the error
    code, err = _main(capsys, "--prompt", "a red circle bouncing", "--model", tmp_path / "none.safetensors",
                      "--out", tmp_path / out, *extra)
    assert code == 2 and err.count("\n") == 1, err
    assert __import__("re").search(message, err), err
    assert os.listdir(tmp_path) == []


def test_cli_existing_out_and_crafted_model_are_one_line(capsys, tmp_path, good):
    (tmp_path / "x.mp4").write_bytes(b"precious")
    code, err = _main(capsys, "--prompt", "a red circle bouncing", "--out", tmp_path / "x.mp4")
    assert code == 2 and "x.mp4 exists; nothing was overwritten" in err and err.count("\n") == 1
    assert (tmp_path / "x.mp4").read_bytes() == b"precious"
    header, body = _split(good)
    CHECKPOINT_CASES["reversed offsets"][0](header, body)
    _join(tmp_path / "bad.safetensors", header, body)
    code, err = _main(capsys, "--prompt", "a red circle bouncing", "--model", tmp_path / "bad.safetensors",
                      "--out", tmp_path / "y.mp4")
    assert code == 2 and "has reversed data_offsets" in err and err.count("\n") == 1, err


# ---------------------------------------------------------------------- signals in a real run
@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    from ccl_core.assets import ASSETS, AUDIO_AE_FILE, VIDEO_AE_FILE
    from ccl_core.toyav.autoencoders import load_audio_ae, load_video_ae
    from ccl_core.toyav.embedded import toyav_config
    if not (ASSETS / VIDEO_AE_FILE).is_file() or not (ASSETS / AUDIO_AE_FILE).is_file():
        pytest.skip("shipped autoencoders not present")
    path = tmp_path_factory.mktemp("toy") / "m.safetensors"
    save_checkpoint(DualStreamModel(toyav_config(load_video_ae(), load_audio_ae())), path)
    return path


def default_sigint():
    """A test run started in the background (`cmd &` in a non-interactive shell) ignores SIGINT, and a
    child inherits that, so Python would never raise KeyboardInterrupt: the CLI starts as from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, code, line", [(signal.SIGTERM, 143, "terminated (SIGTERM); nothing was written"),
                                             (signal.SIGINT, 130, "interrupted (SIGINT); nothing was written")])
def test_cli_signal_during_generation_exits_in_one_line(toy_model, tmp_path, sig, code, line):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "ccl_core", "generate", "--prompt", "a red circle bouncing",
                             "--model", str(toy_model), "--steps", "1000", "--threads", "1",
                             "--out", str(tmp_path / "x.mp4")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0, preexec_fn=default_sigint)
    err = b""
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while b"sampling [" not in err and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=1):
                err += os.read(proc.stderr.fileno(), 4096)
        assert b"sampling [" in err, err.decode()
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [s for s in (err + rest).decode().replace("\r", "\n").splitlines()
             if s.strip() and not s.startswith("sampling [")]
    assert proc.returncode == code and lines == [line], (proc.returncode, lines, err + rest)
    assert os.listdir(tmp_path) == []
