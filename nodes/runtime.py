"""What every node shares with the running ComfyUI: the menu category, warnings in the UI, interruption."""

from __future__ import annotations

import logging

CATEGORY = "CCL"


def show_warning(text: str, node_id=None) -> None:
    """A warning in the log and, inside a running ComfyUI, as the node's progress text in the UI."""
    logging.getLogger("ccl").warning("CCL: %s", text)
    try:
        from server import PromptServer
        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # outside a server (tests, scripts) or a ComfyUI without progress text: the log has it
        pass


def check_interrupt() -> None:
    import comfy.model_management
    comfy.model_management.throw_exception_if_processing_interrupted()
