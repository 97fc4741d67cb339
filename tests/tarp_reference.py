"""The dense-mask TARP reference, swapped into a whole model (tests and benchmarks/bench_gpu.py)."""

import contextlib


@contextlib.contextmanager
def dense_tarp():
    """Run the model's cross-modal attention on tarp.dense_cross_modal_attention (one dense
    [queries x keys] mask) instead of the partitioned fast path: the reference the fast path is
    checked against. The model's partition plan becomes (q_pos, k_pos, width), read by the reference."""
    from unittest import mock

    from ccl_core import attention as attention_module, tarp

    class Window:
        build = staticmethod(lambda q_pos, k_pos, width: (q_pos, k_pos, width))

    def dense(q, k, v, k_ctx, v_ctx, reads_other, ctx_bias=None, partition=None, attention=None):
        q_pos, k_pos, width = partition if partition is not None else (None, None, None)
        return tarp.dense_cross_modal_attention(q, k, v, k_ctx, v_ctx, reads_other, ctx_bias, q_pos, k_pos, width)

    with mock.patch.object(tarp, "Partition", Window), mock.patch.object(attention_module, "cross_modal_attention", dense):
        yield
