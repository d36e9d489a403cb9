"""The networks, plain `torch.nn.Module`s (no Lightning, no Hydra: `lint-imports` keeps it so)."""

from maskgit.models.checkpoint import build_vqgan, load_strict, read_weights_file
from maskgit.models.discriminator import NLayerDiscriminator
from maskgit.models.perceptual import PerceptualLoss
from maskgit.models.transformer import BidirectionalTransformer
from maskgit.models.vqgan import VQGAN

__all__ = ["VQGAN", "BidirectionalTransformer", "NLayerDiscriminator", "PerceptualLoss", "build_vqgan",
           "load_strict", "read_weights_file"]
