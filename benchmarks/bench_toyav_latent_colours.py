"""How each colour sits in the ToyAV video latent: why i2av fails most on yellow objects.

    python benchmarks/bench_toyav_latent_colours.py [--clips 12] [--out docs/benchmarks/toyav_latent_colours.json]

For each colour, over `--clips` ground-truth clips (a square sliding, seeds 1000 on), with the
shipped video autoencoder:
- the mean |latent| of the clip (normalised latents: 1 is a channel's spread over the training clips);
- the mean |latent| of the first latent frame i2av holds (`generate.image_latent`, the first frame held still);
- the mean |difference| between that held latent and the clip's own first latent frame (the object moving);
- the autoencoder's reconstruction PSNR of the clip.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ccl_core.generate import image_latent  # noqa: E402
from ccl_core.toyav.clip import COLOURS  # noqa: E402
from ccl_lab import generate_clip  # noqa: E402
from ccl_lab.evaluate import benchmark_parser, benchmark_pipeline, write_result  # noqa: E402
from ccl_lab.train_autoencoders import psnr as reconstruction_psnr  # noqa: E402


@torch.no_grad()
def colour_row(video_ae, colour: str, clips: int) -> dict:
    latent, held, gap, psnr = [], [], [], []
    for seed in range(1000, 1000 + clips):
        frames = torch.from_numpy(generate_clip(seed, colour, "square", "sliding").frames).float()[None]
        z = video_ae.encode(frames)
        still = image_latent(video_ae, frames[0, 0])
        latent.append(float(z.abs().mean()))
        held.append(float(still.abs().mean()))
        gap.append(float((still - z[:, :, :1]).abs().mean()))
        psnr.append(reconstruction_psnr(video_ae.decode(z), frames))
    mean = lambda xs: round(float(np.mean(xs)), 3)  # noqa: E731
    return {"latent_abs_mean": mean(latent), "held_frame_abs_mean": mean(held),
            "held_vs_own_first_frame_abs_mean": mean(gap), "reconstruction_psnr_db": round(float(np.mean(psnr)), 1)}


def main():
    ap = benchmark_parser(__doc__, "docs/benchmarks/toyav_latent_colours.json")
    ap.add_argument("--clips", type=int, default=12)
    args = ap.parse_args()
    pipe = benchmark_pipeline(args)
    rows = {colour: colour_row(pipe.video_ae, colour, args.clips) for colour in COLOURS}
    for colour, row in rows.items():
        print(colour, row, flush=True)
    write_result({"settings": {"model": args.model or "shipped", "clips": args.clips, "clip": "a square sliding"},
                  "torch": torch.__version__, "colours": rows}, args.out)


if __name__ == "__main__":
    main()
