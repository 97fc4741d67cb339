"""The files the pack ships in this folder (the embedded ToyAV model and its parts), by name.

The one place that says where they are: the runtime loaders (ccl_core.toyav), the nodes
(nodes/toyav.py) and the training entry points (ccl_lab) all read these names.
"""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
MODEL_FILE = "toyav_ccl.safetensors"  # the embedded diffusion model (python -m ccl_lab.train_embedded)
TEXT_FILE = "toyav_text.safetensors"  # the text encoder (python -m ccl_lab.train_autoencoders)
VIDEO_AE_FILE = "toyav_video_ae.safetensors"  # the video autoencoder (python -m ccl_lab.train_autoencoders)
AUDIO_AE_FILE = "toyav_audio_ae.safetensors"  # the audio autoencoder (python -m ccl_lab.train_autoencoders)
