"""Stub of comfy/model_patcher.py ModelPatcher: holds the BaseModel, its devices, model_options and
callbacks (add_callback_with_key / remove_callbacks_with_key / get_all_callbacks; clone copies them)."""


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.model_options = {"transformer_options": {}}
        self.callbacks = {}
        if getattr(model, "device", None) is None:
            model.device = offload_device

    def model_dtype(self):
        return self.model.get_dtype()

    def clone(self):
        n = ModelPatcher(self.model, self.load_device, self.offload_device)
        n.model_options = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.model_options.items()}
        n.callbacks = {t: {k: list(v) for k, v in by_key.items()} for t, by_key in self.callbacks.items()}
        return n

    def add_callback_with_key(self, call_type, key, callback):
        self.callbacks.setdefault(call_type, {}).setdefault(key, []).append(callback)

    def remove_callbacks_with_key(self, call_type, key):
        self.callbacks.get(call_type, {}).pop(key, None)

    def get_all_callbacks(self, call_type):
        return [c for cs in self.callbacks.get(call_type, {}).values() for c in cs]

    def get_model_object(self, name):
        return getattr(self.model, name)
