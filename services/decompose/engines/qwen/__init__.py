"""The qwen engine (Qwen-Image-Layered through diffusers).

`engine` and `loading` need the `qwen` extra (torch, diffusers, transformers); `config`, `memory` and
`frames` do not, so the engine registry can read the configuration on a worker without them.
"""
