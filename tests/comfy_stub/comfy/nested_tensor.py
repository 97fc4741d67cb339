"""Stub of comfy/nested_tensor.py NestedTensor: a list of tensors with elementwise ops."""
import torch


class NestedTensor:
    def __init__(self, tensors):
        self.tensors = list(tensors)
        self.is_nested = True

    def _op(self, other, op):
        if isinstance(other, NestedTensor):
            return NestedTensor([op(a, b) for a, b in zip(self.tensors, other.tensors)])
        return NestedTensor([op(a, other) for a in self.tensors])

    __add__ = lambda self, o: self._op(o, torch.add)
    __sub__ = lambda self, o: self._op(o, torch.sub)
    __mul__ = lambda self, o: self._op(o, torch.mul)

    def unbind(self):
        return self.tensors

    def to(self, *args, **kwargs):
        return NestedTensor([t.to(*args, **kwargs) for t in self.tensors])

    @property
    def shape(self):
        return self.tensors[0].shape

    @property
    def device(self):
        return self.tensors[0].device

    @property
    def dtype(self):
        return self.tensors[0].dtype
