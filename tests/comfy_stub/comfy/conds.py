"""Stub of comfy/conds.py: CONDRegular, CONDCrossAttn, CONDConstant (process_cond, can_concat, concat)."""
import math

import torch

import comfy.utils


class CONDRegular:
    def __init__(self, cond):
        self.cond = cond

    def _copy_with(self, cond):
        return self.__class__(cond)

    def process_cond(self, batch_size, **kwargs):
        return self._copy_with(comfy.utils.repeat_to_batch_size(self.cond, batch_size))

    def can_concat(self, other):
        return self.cond.shape == other.cond.shape

    def concat(self, others):
        return torch.cat([self.cond] + [o.cond for o in others])

    def size(self):
        return list(self.cond.size())


class CONDCrossAttn(CONDRegular):
    def can_concat(self, other):
        s1, s2 = self.cond.shape, other.cond.shape
        if s1 != s2:
            if s1[0] != s2[0] or s1[2] != s2[2]:
                return False
            if math.lcm(s1[1], s2[1]) // min(s1[1], s2[1]) > 4:
                return False
        return True

    def concat(self, others):  # ComfyUI pads by repeating the tokens up to the lcm of the lengths
        conds = [self.cond] + [o.cond for o in others]
        n = math.lcm(*[c.shape[1] for c in conds])
        return torch.cat([c.repeat(1, n // c.shape[1], 1) for c in conds])


class CONDConstant(CONDRegular):
    def process_cond(self, batch_size, **kwargs):
        return self._copy_with(self.cond)

    def can_concat(self, other):
        return self.cond == other.cond

    def concat(self, others):
        return self.cond

    def size(self):
        return [1]
