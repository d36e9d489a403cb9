"""The LightningModules: stage-2 training (MaskGIT), stage-1 training (VQGANTraining), and the
evaluation modules the eval tasks run (InpaintingEvaluator, SampleGenerator)."""

from maskgit.modules.generation import SampleGenerator
from maskgit.modules.inpainting import InpaintingEvaluator
from maskgit.modules.maskgit import MaskGIT
from maskgit.modules.vqgan_training import VQGANTraining

__all__ = ["MaskGIT", "VQGANTraining", "InpaintingEvaluator", "SampleGenerator"]
