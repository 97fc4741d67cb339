"""ComfyUI adapters over ccl_core (one file per node family)."""
