"""Stub of comfy/model_patcher.py ModelPatcher: holds the BaseModel, its devices and model_options."""


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.model_options = {"transformer_options": {}}
        if getattr(model, "device", None) is None:
            model.device = offload_device

    def model_dtype(self):
        return self.model.get_dtype()

    def clone(self):
        n = ModelPatcher(self.model, self.load_device, self.offload_device)
        n.model_options = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.model_options.items()}
        return n

    def get_model_object(self, name):
        return getattr(self.model, name)
