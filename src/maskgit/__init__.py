"""MaskGIT image inpainting experiments: frozen VQGAN + bidirectional transformer."""

__version__ = "0.1.0"
