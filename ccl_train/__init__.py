"""Training of the dual-stream model with dynamic context routing (docs/TRAINING.md).

`train(model, data, cfg, run_dir)` runs one stage of the recipe (`stage_config("video" | "audio" |
"joint" | "fusion")`) in a resumable run directory; `Trainer.step(batch)` is one DCR optimizer
step for custom loops. TrainConfig(parallel="fsdp") shards the model with FSDP2 (fsdp.py); recipe.py
is the CCL-from-Ovi recipe, cache.py / encoders.py turn a folder of clips into training latents.
docs/TRAINING.md describes the data contract, the run directory and launching under torchrun.
"""

from .config import STAGES, TrainConfig, stage_config
from .data import DurationBatches, LatentBatches, TensorBatches, check_batch
from .ema import EMA
from .loop import train
from .trainer import StepResult, Trainer

__all__ = ["DurationBatches", "EMA", "LatentBatches", "STAGES", "StepResult", "TensorBatches", "TrainConfig",
           "Trainer", "check_batch", "stage_config", "train"]
