"""Stub of comfy/model_management.py: CPU devices and the interrupt flag."""
import torch


class InterruptProcessingException(Exception):
    pass


_interrupted = False


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def dtype_size(dtype):
    return torch.empty((), dtype=dtype).element_size()


def xformers_enabled():
    return False


def pytorch_attention_flash_attention():
    return False


def get_free_memory(dev=None):
    return 16 * 2**30


def interrupt_current_processing(value=True):
    global _interrupted
    _interrupted = value


def processing_interrupted():
    return _interrupted


def throw_exception_if_processing_interrupted():
    global _interrupted
    if _interrupted:
        _interrupted = False
        raise InterruptProcessingException()


def unet_manual_cast(weight_dtype, inference_device, supported_dtypes=(torch.float16, torch.bfloat16, torch.float32)):
    """On the CPU: no cast for float32 weights, float32 compute for anything else."""
    return None if weight_dtype in (torch.float32, torch.float64) else torch.float32


def unet_dtype(device=None, model_params=0, supported_dtypes=(torch.float16, torch.bfloat16, torch.float32),
               weight_dtype=None):
    """On the CPU: float32 (no fp16 / bf16 compute)."""
    return torch.float32
