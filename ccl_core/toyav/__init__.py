"""ToyAV at run time: the embedded model's pipeline and its parts (docs/TOYAV.md).

`clip` is the clip format and prompt vocabulary, `text` the text encoder, `autoencoders` the video
and audio autoencoders, `embedded` the model's config and `load_pipeline`. The files they load are
named in ccl_core.assets. The ToyAV world's generator, metrics, data and training entry points are
research tooling in the sibling package ccl_lab, which the pack never imports.
"""
