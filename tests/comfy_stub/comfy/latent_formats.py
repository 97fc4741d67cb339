"""Stub of comfy/latent_formats.py: LatentFormat (identity) and Wan22 with FAKE per-channel constants.

Wan22 here has the real class's shape and formula ((x - mean) * scale / std, per channel, 48 ch) but
made-up numbers: tests only check that the nodes convert both ways, never the values.
"""
import torch


class LatentFormat:
    scale_factor = 1.0
    latent_channels = 4
    latent_rgb_factors = None

    def process_in(self, latent):
        return latent * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor


class Wan22(LatentFormat):
    latent_channels = 48
    latent_rgb_factors = [[0.01 * ((i * 7 + j) % 5 - 2) for j in range(3)] for i in range(48)]  # fake
    latent_rgb_factors_bias = [0.0, 0.0, 0.0]

    def __init__(self):
        self.latents_mean = torch.linspace(-0.5, 0.5, 48).view(1, 48, 1, 1, 1)  # fake
        self.latents_std = torch.linspace(0.5, 2.0, 48).view(1, 48, 1, 1, 1)  # fake

    def process_in(self, latent):
        return (latent - self.latents_mean.to(latent)) * self.scale_factor / self.latents_std.to(latent)

    def process_out(self, latent):
        return latent * self.latents_std.to(latent) / self.scale_factor + self.latents_mean.to(latent)
