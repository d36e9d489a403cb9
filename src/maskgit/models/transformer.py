"""The lab's bidirectional transformer (stage 2), nanoGPT-plain.

Module names (`tok_emb`, `blocks.N.Attention`, `Token_Prediction`, ...) are the lab's checkpoint
format. Attention is written out by hand as the lab requires; `fused=True` swaps in PyTorch's
scaled_dot_product_attention (flash / memory-efficient kernels on GPU) with the same weights.

`num_classes > 0` makes it class-conditional: one class token (label id, or `num_classes` for "no
class", which classifier-free guidance needs) is put in front of the image tokens and attended to
like them; its output position is dropped. With `num_classes=0` (the default) the model and its
state dict are the lab's, unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float, fused: bool):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.fused, self.dropout = num_heads, fused, dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(dropout)

    def _heads(self, x: Tensor) -> Tensor:  # (B, L, D) -> (B, H, L, D/H)
        b, length, d = x.shape
        return x.view(b, length, self.num_heads, d // self.num_heads).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        if self.fused:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            y = self.attn_drop(torch.softmax(att, dim=-1)) @ v
        return self.out(y.transpose(1, 2).reshape(x.shape))


class Encoder(nn.Module):
    """Post-norm block: x = LN1(x + drop(attn(x))); x = LN2(x + mlp(x))."""

    def __init__(self, dim: int, hidden_dim: int, num_heads: int, dropout: float, fused: bool):
        super().__init__()
        self.Attention = MultiHeadAttention(dim, num_heads, dropout, fused)
        self.dropout = nn.Dropout(dropout)
        self.LayerNorm1 = nn.LayerNorm(dim)
        self.MLP = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, dim), nn.Dropout(dropout))
        self.LayerNorm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.LayerNorm1(x + self.dropout(self.Attention(x)))
        return self.LayerNorm2(x + self.MLP(x))


class BidirectionalTransformer(nn.Module):
    """Tokens (B, num_image_tokens) with mask id = num_codebook_vectors -> logits over codes + mask."""

    def __init__(self, num_image_tokens: int = 256, num_codebook_vectors: int = 1024,
                 dim: int = 768, n_layers: int = 15, hidden_dim: int = 1536, num_heads: int = 16,
                 dropout: float = 0.1, fused_attention: bool = False, num_classes: int | None = 0):
        super().__init__()
        self.num_image_tokens = num_image_tokens
        self.num_classes = int(num_classes or 0)
        self.null_class = self.num_classes  # the "no class" id of a conditional model
        self.num_codebook_vectors = num_codebook_vectors
        self.mask_token_id = num_codebook_vectors
        vocab = num_codebook_vectors + 1
        self.tok_emb = nn.Embedding(vocab, dim)
        self.pos_emb = nn.Parameter(nn.init.trunc_normal_(torch.zeros(num_image_tokens, dim), 0.0, 0.02))
        if self.num_classes:
            self.class_emb = nn.Embedding(self.num_classes + 1, dim)
            self.class_pos = nn.Parameter(nn.init.trunc_normal_(torch.zeros(dim), 0.0, 0.02))
        self.blocks = nn.Sequential(*[Encoder(dim, hidden_dim, num_heads, dropout, fused_attention)
                                      for _ in range(n_layers)])
        self.Token_Prediction = nn.Sequential(nn.Linear(dim, dim), nn.GELU(),
                                              nn.LayerNorm(dim, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(num_image_tokens, vocab))
        self.LN = nn.LayerNorm(dim, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def set_fused_attention(self, fused: bool) -> None:
        for block in self.blocks:
            block.Attention.fused = fused

    def forward(self, tokens: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits (B, L, codes + 1) of `tokens` (B, L); `labels` (B,): class ids, `null_class` for
        none (a conditional model given no labels gets none; an unconditional one takes none)."""
        x = self.tok_emb(tokens) + self.pos_emb
        if self.num_classes:
            if labels is None:
                labels = torch.full(tokens.shape[:1], self.null_class, dtype=torch.long, device=tokens.device)
            cls = (self.class_emb(labels.long()) + self.class_pos).unsqueeze(1)
            x = torch.cat([cls, x], dim=1)
        elif labels is not None:
            raise ValueError("this transformer is unconditional (num_classes=0): it takes no labels")
        h = self.Token_Prediction(self.blocks(self.drop(self.LN(x))))
        if self.num_classes:
            h = h[:, 1:]
        return h @ self.tok_emb.weight.t() + self.bias  # weights tied to the token embedding
