"""Sharded training on torch.distributed's FSDP2 (`fully_shard`): the Ovi-sized pair on many GPUs.

Layout: one FSDP unit per block pair (video block i and audio block i, one all-gather for both, since
the dual-stream forward interleaves them), then the root (embeddings, heads, time projections).
Parameters, gradients and AdamW states are sharded over the ranks; the sharded parameters are the
fp32 master weights, cast to `fsdp_param_dtype` for compute, and gradients are reduced in
`fsdp_reduce_dtype`. `gradient_checkpointing` is the model's own flag: it checkpoints each block
pair, outside the pair's FSDP hooks (the usual FSDP2 + activation checkpointing composition).

Two things the plain model does not give FSDP, and how they are bridged here:
- The model never calls a block's `forward`: it calls their halves in Ovi's interleaved order
  (model._block_compute). The pair's step is registered as an FSDP forward method on the video block
  (`register_fsdp_forward_method`, which runs the same all-gather / reshard hooks as a forward) and
  installed as the model instance's `_block`, the per-pair seam the block swapper also uses.
- DCR routing leaves parameters unused on some ranks (a t2v-only batch never runs the audio tower),
  and FSDP's reduce-scatter needs every rank to bring the same gradients. Each FSDP unit therefore
  adds `0 * sum(first element of every trainable parameter)` to its outputs, so every trainable
  parameter gets a gradient on every rank, zero where unused. Unlike DDP and one process, a
  parameter that no rank used in a step still takes an AdamW step with a zero gradient (its moments
  decay and weight decay applies). With the default task mix every parameter is used almost every
  step; the test's one-process reference applies the same rule.

Checkpoints go through torch.distributed.checkpoint (DCP): every rank writes its shards, and DCP
reshards on load, so a run resumes at any world size. `export_checkpoint` turns one into a single
safetensors file in checkpoint.save_checkpoint's format (CCL Model Loader, load_checkpoint).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from typing import Optional, Union

import torch
import torch.distributed as dist

from . import distributed, rng
from .config import TrainConfig
from .optim import freeze
from .trainer import TRAINER_FILE, Trainer, rank_file

DCP_DIR = "dcp"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def join_group(info: distributed.DistInfo) -> distributed.DistInfo:
    """FSDP needs a process group even on one process: create a one-rank group when none exists."""
    if dist.is_initialized():
        return info
    backend = "nccl" if info.device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    info.owns_group = True  # the caller's teardown(info) destroys it
    return info


def _touch(outputs, params):
    """outputs + 0 * (one element of each trainable parameter): every parameter gets a gradient."""
    params = [p for p in params if p.requires_grad]
    if not params or not torch.is_grad_enabled():
        return outputs
    zero = torch.stack([p.reshape(-1)[0].float() for p in params]).sum() * 0.0
    return tuple(None if x is None else x + zero.to(x.dtype) for x in outputs)


def _pair_step(model, i: int, *xs, streams, skip):
    out = model._block_compute(i, *xs, streams=streams, skip=skip)
    blocks = (model.video_model.blocks[i], model.audio_model.blocks[i])
    return _touch(out, [p for b in blocks for p in b.parameters()])


def _touch_root(module, args, output):
    """Forward hook on the root, registered before fully_shard so it runs while its params are gathered."""
    return _touch(output, [p for n, p in module.named_parameters() if ".blocks." not in n])


def shard_model(model: torch.nn.Module, param_dtype: torch.dtype, reduce_dtype: torch.dtype) -> torch.nn.Module:
    """Apply fully_shard per block pair, then to the root; the model is changed in place and returned."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    if getattr(model, "block_swap", None) is not None:
        raise ValueError("the model has block swapping (offload.BlockSwap) enabled; FSDP shards the blocks "
                         "instead: train without block swap")
    # cast_forward_inputs=False: the model casts its own inputs (timesteps stay fp32 for the embedding)
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype, cast_forward_inputs=False)
    for i, (v, a) in enumerate(zip(model.video_model.blocks, model.audio_model.blocks)):
        fully_shard([v, a], mp_policy=policy)
        v.ccl_pair_step = functools.partial(_pair_step, model, i)
        register_fsdp_forward_method(v, "ccl_pair_step")
    model._block = lambda i, *xs, streams, skip: model.video_model.blocks[i].ccl_pair_step(
        *xs, streams=streams, skip=skip)
    model.register_forward_hook(_touch_root)
    fully_shard(model, mp_policy=policy)
    return model


class FSDPTrainer(Trainer):
    """Trainer with the model sharded by FSDP2 and checkpoints written with DCP (see module doc)."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, device: Union[str, torch.device, None] = None,
                 info: Optional[distributed.DistInfo] = None):
        """model: rank 0's holds the weights (any dtype, usually on the CPU); the other ranks' may be the same
        or a model on the meta device (no memory), since only rank 0's weights are read. The trained,
        sharded model is a new one, self.model; `model` itself is left as it was."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        from ccl_core.model import DualStreamModel

        self.cfg = cfg
        self.elapsed = 0.0
        self.info = join_group(info if info is not None else distributed.setup(device))
        self.device = self.info.device
        self.model_config = model.config
        on_meta = any(p.is_meta for p in model.parameters())
        if on_meta and self.info.is_main:
            raise ValueError("rank 0's model is on the meta device; rank 0 must hold the weights to start from "
                             "(the other ranks may pass a meta-device model)")
        full = {k: v.detach() for k, v in model.state_dict().items()} if self.info.is_main else {}
        with torch.device("meta"):  # every rank shards an empty model, then receives its shard of rank 0's
            shell = DualStreamModel(model.config)
        shell.train()
        shell.gradient_checkpointing = cfg.gradient_checkpointing
        self.trainable = freeze(shell, cfg)  # fp32 master weights whatever dtype rank 0 loaded
        self.model = self.module = shard_model(shell, DTYPES[cfg.fsdp_param_dtype], DTYPES[cfg.fsdp_reduce_dtype])
        self.model.to_empty(device=self.device)
        set_model_state_dict(self.model, full, options=StateDictOptions(
            full_state_dict=True, broadcast_from_rank0=self.info.enabled, strict=True))
        del full
        self._start_state()

    def autocast(self):
        return contextlib.nullcontext()  # FSDP's MixedPrecisionPolicy casts the gathered weights

    def clip_gradients(self) -> float:
        from torch.distributed.tensor import DTensor

        limit = self.cfg.grad_clip if self.cfg.grad_clip is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.params, limit)
        return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)

    @contextlib.contextmanager
    def ema_weights(self):
        raise NotImplementedError("ema_weights() needs whole weights; under FSDP export the checkpoint "
                                  "(fsdp.export_checkpoint) and evaluate the exported model")
        yield  # pragma: no cover

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        if self.ema is not None:
            state["ema"] = self.ema.shadow
        return state

    def save(self, directory: Union[str, os.PathLike], extra: Optional[dict] = None) -> None:
        """Every rank writes its shards (DCP, directory/dcp) and rank-NNNNN.pt; rank 0 writes trainer.pt."""
        import torch.distributed.checkpoint as dcp

        directory = os.fspath(directory)
        dcp.save(self._state(), checkpoint_id=os.path.join(directory, DCP_DIR))
        if self.info.is_main:
            torch.save({"step": self.step_count, "ema": None if self.ema is None else self.ema.state_dict(),
                        "world_size": self.info.world_size, "config": self.cfg.to_dict(),
                        "model_config": self.model_config.to_json(), "stage": self.cfg.stage},
                       os.path.join(directory, TRAINER_FILE))
        torch.save({"task_gen": self.task_gen.get_state(), "noise_gen": self.noise_gen.get_state(),
                    "rng": rng.capture(), "extra": extra or {}},
                   os.path.join(directory, rank_file(self.info.rank)))

    def load(self, directory: Union[str, os.PathLike]) -> dict:
        """Restore a checkpoint written at any world size; return this rank's `extra`.

        Weights, optimizer, EMA and step are exact at any world size. The random draws and the
        data position continue exactly only at the world size the checkpoint was written with;
        at another size each rank draws anew (seeded from seed, rank and step) and its data
        source starts over, with a warning.
        """
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        directory = os.fspath(directory)
        if not os.path.isdir(os.path.join(directory, DCP_DIR)):
            raise ValueError(f"{directory} has no {DCP_DIR}/: it was written by a parallel='ddp' run; resume it "
                             f"with parallel='ddp', or start a new FSDP run from its model.safetensors")
        meta = torch.load(os.path.join(directory, TRAINER_FILE), map_location="cpu", weights_only=True)
        if (self.ema is None) != (meta["ema"] is None):
            raise ValueError(f"{directory} was saved with ema_decay {'None' if meta['ema'] is None else 'set'}; "
                             f"resume with the same ema setting")
        state = self._state()
        try:
            dcp.load(state, checkpoint_id=os.path.join(directory, DCP_DIR))
        except Exception as e:  # DCP reports missing keys / shapes as CheckpointException
            raise ValueError(f"the sharded checkpoint in {directory} does not fit this run ({e}); resume with the "
                             f"model config, TrainConfig.train and ema setting it was saved with") from None
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        if self.ema is not None:
            self.ema.updates = int(meta["ema"]["updates"])
        self.step_count = int(meta["step"])
        mine = os.path.join(directory, rank_file(self.info.rank))
        if meta["world_size"] == self.info.world_size:
            mine = torch.load(mine, map_location="cpu", weights_only=True)
            self.task_gen.set_state(mine["task_gen"])
            self.noise_gen.set_state(mine["noise_gen"])
            rng.restore(mine["rng"])
            return mine["extra"]
        if self.info.is_main:
            warnings.warn(f"{directory} was written by {meta['world_size']} ranks and this run has "
                          f"{self.info.world_size}: weights, optimizer and step are restored exactly, but the "
                          f"random draws and data positions start afresh", stacklevel=2)
        seed = self.cfg.seed + self.info.rank + (self.step_count << 20)
        self.task_gen.manual_seed(seed)
        self.noise_gen.manual_seed(seed + (1 << 32))
        rng.seed_all(seed)
        extra = {}
        if os.path.exists(mine):
            extra = torch.load(mine, map_location="cpu", weights_only=True)["extra"]
            extra.pop("data", None)
        return extra


def read_meta(checkpoint_dir: Union[str, os.PathLike]) -> dict:
    path = os.path.join(os.fspath(checkpoint_dir), TRAINER_FILE)
    if not os.path.isfile(path) or not os.path.isdir(os.path.join(os.fspath(checkpoint_dir), DCP_DIR)):
        raise FileNotFoundError(f"{checkpoint_dir} is not an FSDP training checkpoint (it needs {TRAINER_FILE} and "
                                f"{DCP_DIR}/); pass a run_dir/checkpoints/step-NNNNNNNN directory of a "
                                f"parallel='fsdp' run")
    meta = torch.load(path, map_location="cpu", weights_only=True)
    if "model_config" not in meta:
        raise ValueError(f"{checkpoint_dir} is a DDP / one-process checkpoint: use its model.safetensors or "
                         f"ema.safetensors directly")
    return meta


def load_full_model(checkpoint_dir: Union[str, os.PathLike], weights: str = "ema"):
    """The whole model of an FSDP checkpoint in one process (fp32, CPU); weights "ema" or "model".

    Reads the shards with DCP without a process group, so it works from any script after training.
    """
    import torch.distributed.checkpoint as dcp

    from ccl_core.config import ModelConfig
    from ccl_core.model import DualStreamModel

    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    meta = read_meta(checkpoint_dir)
    if weights == "ema" and meta["ema"] is None:
        raise ValueError(f"{checkpoint_dir} has no EMA (the run had ema_decay=None): export weights='model'")
    config = ModelConfig.from_json(meta["model_config"])
    with torch.device("meta"):
        model = DualStreamModel(config)
    model.to_empty(device="cpu")
    state = model.state_dict()
    path = os.path.join(os.fspath(checkpoint_dir), DCP_DIR)
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process")
        dcp.load({"model": state}, checkpoint_id=path, no_dist=True)
        if weights == "ema":
            names = [k.split(".", 1)[1] for k in dcp.FileSystemReader(path).read_metadata().state_dict_metadata
                     if k.startswith("ema.")]
            shadow = {n: torch.empty_like(state[n], dtype=torch.float32) for n in names}
            dcp.load({"ema": shadow}, checkpoint_id=path, no_dist=True)
            with torch.no_grad():
                for n, t in shadow.items():
                    state[n].copy_(t)
    model.eval()
    return model, meta


def export_checkpoint(checkpoint_dir: Union[str, os.PathLike], out_path: Union[str, os.PathLike],
                      weights: str = "ema", dtype: Optional[str] = None) -> str:
    """Write an FSDP checkpoint as one safetensors file (config in its metadata) for load_checkpoint.

    dtype: None keeps fp32; "bf16" halves the file (Ovi's own weights are bf16).
    """
    from ccl_core.checkpoint import DTYPE_NAMES, save_checkpoint

    model, meta = load_full_model(checkpoint_dir, weights)
    if dtype not in DTYPE_NAMES or DTYPE_NAMES[dtype] == torch.float8_e4m3fn:
        raise ValueError(f"export dtype must be None, 'fp32', 'bf16' or 'fp16', got {dtype!r}")
    save_checkpoint(model, out_path, metadata={"step": meta["step"], "stage": meta["stage"],
                                               "ema": int(weights == "ema")}, dtype=DTYPE_NAMES[dtype])
    return os.fspath(out_path)


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m ccl_train.fsdp",
                                description="Export an FSDP checkpoint to one safetensors file (CCL Model Loader).")
    p.add_argument("checkpoint", help="run_dir/checkpoints/step-NNNNNNNN of a parallel='fsdp' run")
    p.add_argument("out", help="the .safetensors file to write")
    p.add_argument("--weights", default="ema", choices=("ema", "model"))
    p.add_argument("--dtype", default=None, choices=("fp32", "bf16", "fp16"), help="default: fp32")
    args = p.parse_args(argv)
    print(export_checkpoint(args.checkpoint, args.out, args.weights, args.dtype))


if __name__ == "__main__":
    main()
