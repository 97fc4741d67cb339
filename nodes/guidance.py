"""UCG guider (GUIDER for SamplerCustomAdvanced) and the null-text conditioning.

All guidance branches of a step (u, c_text, c_full, ...) are conds of one calc_cond_batch call, so
ComfyUI batches them into one model call whenever memory allows. The branch flags travel in the
cond dicts (ccl_ctx_only, ccl_skip, ccl_null_text; see comfy_model.py), and so does the audio
tower's own text (ccl_text_audio) when an audio negative is connected: Ovi guides each tower with
its own negative prompt. The packed x0 prediction
of each branch is split per modality with the latent shapes and combined per stream by
ccl_core.guidance.Guidance.combine. Its forms are affine with weights summing to one, so combining
denoised x0 (what ComfyUI's guiders return) equals combining velocities.
"""

from __future__ import annotations

import torch

import comfy.samplers
import comfy.utils

from ..ccl_core.guidance import FORMS, Guidance
from ..ccl_core.latent_spec import null_text_for
from .api import io
from .conditioning import TASK_KEYS, null_text_like
from .joint import spec_of
from .runtime import CATEGORY

AUDIO_TEXT_KEY = "ccl_text_audio"  # the audio tower's text, when it differs from the video tower's


def audio_text_of(negative_audio):
    """The one text tensor of an audio-negative CONDITIONING (a guider branch has one audio text)."""
    if negative_audio is None:
        return None
    if len(negative_audio) != 1:
        raise ValueError(f"negative_audio must be one text encoding, got a CONDITIONING of {len(negative_audio)} "
                         "entries; connect a single text encode node")
    return negative_audio[0][0]


def branch_conds(guidance: Guidance, positive, negative=None, spec=None, negative_audio=None):
    """branch name -> CONDITIONING with that branch's flags; task keys always from the positive.
    Without a negative the unconditional branches read the null text (null_text_like: the
    encoder's own, else the model's from `spec`). With `negative_audio` the unconditional branches'
    audio tower reads it instead (Ovi's audio negative); every branch then carries its audio text,
    the others their own text, so that all branches still batch into one model call."""
    task = {k: v for k, v in positive[0][1].items() if k in TASK_KEYS} if positive else {}
    audio_uncond = audio_text_of(negative_audio)
    out = {}
    for name, (use_text, full, skips) in guidance.branches.items():
        if use_text:
            src = positive
        elif negative is not None:
            src = negative
        else:
            src = null_text_like(positive, spec)
        flags = {"ccl_ctx_only": not full, "ccl_skip": guidance.skip_block if skips else -1}
        conds = []
        for t, d in src:
            d = {k: v for k, v in d.items() if k not in TASK_KEYS and k != AUDIO_TEXT_KEY}
            d.update(task)
            d.update(flags)
            if audio_uncond is not None:
                d[AUDIO_TEXT_KEY] = t if use_text else audio_uncond
            conds.append([t, d])
        out[name] = conds
    return out


class CCLGuider(comfy.samplers.CFGGuider):
    """CFGGuider whose predict_noise evaluates every guidance branch in one batch, combined per stream."""

    def set_guidance(self, guidance: Guidance, positive, negative=None, spec=None, negative_audio=None):
        self.guidance = guidance
        self.branch_names = list(guidance.branches)
        self.inner_set_conds(branch_conds(guidance, positive, negative, spec, negative_audio))

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        names = self.branch_names
        outs = comfy.samplers.calc_cond_batch(self.inner_model, [self.conds.get(n) for n in names], x, timestep,
                                              model_options)
        shapes = self._latent_shapes()
        if len(names) == 1:
            return outs[0]
        per = [comfy.utils.unpack_latents(o, shapes) for o in outs]
        video = self.guidance.combine({n: p[0] for n, p in zip(names, per)}, "video")
        audio = self.guidance.combine({n: p[1] for n, p in zip(names, per)}, "audio")
        return comfy.utils.pack_latents([video, audio])[0]

    def _latent_shapes(self):
        for conds in self.conds.values():
            for c in conds or []:
                shapes = c.get("model_conds", {}).get("latent_shapes")
                if shapes is not None:
                    shapes = shapes.cond
                    if len(shapes) != 2:
                        break
                    return shapes
        raise ValueError("the CCL guider needs a joint audio-video latent (from 'CCL Empty Joint Latent') and a "
                         "model from 'CCL Model Loader'")


class CCLGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        scale = dict(min=0.0, max=30.0, step=0.1, round=0.01)
        return io.Schema(
            node_id="CCLGuider",
            display_name="CCL UCG Guider",
            category=f"{CATEGORY}/sampling",
            description=("Unconditional context guidance (UCG) for CCL / Ovi models, as a GUIDER for "
                         "SamplerCustomAdvanced. Its unconditional branch is the context-tokens-only route, with "
                         "separate scales for video and audio. Forms: joint u + w(c_full - u); decoupled "
                         "u + w_text(c_text - u) + w_av(c_full - c_text); cfg (null/negative text, full route); ovi "
                         "(Ovi's own: negative text, full route, one fusion block skipped); none."),
            inputs=[
                io.Model.Input("model", tooltip="CCL / Ovi model."),
                io.Conditioning.Input("positive", tooltip=(
                    "Prompt conditioning (through a CCL task node for a2v, v2a, t2v, t2a).")),
                io.Combo.Input("form", options=list(FORMS), default="joint", tooltip=(
                    "joint / decoupled: UCG (unconditional = context tokens only); cfg: classic CFG with the full "
                    "route; ovi: Ovi's guidance with skip-layer; none: no guidance (one model call per step).")),
                io.Float.Input("video_scale", default=4.0, **scale, tooltip=(
                    "Guidance scale of the video stream (w, or w_text for decoupled). Ovi: 4.0.")),
                io.Float.Input("audio_scale", default=3.0, **scale, tooltip=(
                    "Guidance scale of the audio stream (w, or w_text for decoupled). Ovi: 3.0.")),
                io.Float.Input("video_av_scale", default=2.0, **scale, tooltip=(
                    "Decoupled form only: cross-modal scale w_av of the video stream (how strongly the video "
                    "follows the audio).")),
                io.Float.Input("audio_av_scale", default=2.0, **scale, tooltip=(
                    "Decoupled form only: cross-modal scale w_av of the audio stream.")),
                io.Int.Input("skip_block", default=11, min=0, max=200, tooltip=(
                    "ovi form only: fusion block skipped in the negative branch (Ovi: 11).")),
                io.Conditioning.Input("negative", optional=True, tooltip=(
                    "Optional negative prompt used in place of the null text in the unconditional branch (left "
                    "empty: the null text, zeros for Ovi, the empty prompt's encoding for ToyAV). With "
                    "negative_audio connected it is the video tower's negative only.")),
                io.Conditioning.Input("negative_audio", optional=True, tooltip=(
                    "Optional negative prompt of the audio tower (Ovi guides each tower with its own: e.g. "
                    "'robotic, muffled, echo, distorted'). Left empty, the audio tower reads the negative.")),
            ],
            outputs=[io.Guider.Output(display_name="guider", tooltip="Guider for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, model, positive, form, video_scale, audio_scale, video_av_scale, audio_av_scale, skip_block,
                negative=None, negative_audio=None):
        spec = spec_of(model)  # a clear error for a non-CCL model
        layers = model.model.ccl_config.num_layers
        if form == "ovi" and not 0 <= skip_block < layers:
            raise ValueError(f"skip_block {skip_block} is outside this model's {layers} fusion blocks (0..{layers - 1})")
        guidance = Guidance(form, video_scale, audio_scale, video_av_scale, audio_av_scale, skip_block)
        guider = CCLGuider(model)
        guider.set_guidance(guidance, positive, negative, spec, negative_audio)
        return io.NodeOutput(guider)


class CCLNullText(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CCLNullText",
            display_name="CCL Null Text",
            category=f"{CATEGORY}/conditioning",
            description=("The null text of a CCL / Ovi model (zero embeddings; for the embedded ToyAV model the "
                         "encoding of the empty prompt): the unconditional text of UCG and of training's text "
                         "dropout. Use it as a negative for native guiders, or as the prompt for an unconditional "
                         "sample."),
            inputs=[io.Model.Input("model", tooltip="CCL / Ovi model (gives the text width).")],
            outputs=[io.Conditioning.Output(display_name="conditioning", tooltip=(
                "The model's null text embeddings (zeros of its text width; ToyAV: the empty prompt)."))],
        )

    @classmethod
    def execute(cls, model):
        spec = spec_of(model)
        return io.NodeOutput([[null_text_for(spec, torch.zeros(1, 1, spec.text_dim)), {}]])


NODES = [CCLGuiderNode, CCLNullText]
