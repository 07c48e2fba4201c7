"""Classification heads over the 5x5 grid of tile embeddings (centre tile = index 12).

``SpiderContextHead`` mirrors SPIDER's one-layer BERT head and uses transformers' BERT
submodule names, so a BERT-named checkpoint maps onto it key for key.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn

GRID = 5
NUM_TILES = GRID * GRID
CENTRE = NUM_TILES // 2  # row-major (row 2, col 2)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a faster mask on the CPU, same distribution and scaling.

    torch's CPU ``bernoulli_`` is slow: measured on the 2-core machine (torch 2.14), dropout
    of a (256, 25, 128) batch took 9 ms, a 128x128 linear layer over it 1 ms, and dropout was
    a third of a head's training step. Comparing uniform draws with ``p`` takes 1.7 ms. On
    other devices (and in eval) it is ``nn.Dropout`` unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            out: torch.Tensor = super().forward(x)
            return out
        if self.p == 1.0:
            return x * 0.0
        scale = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))  # 0 or 1/(1-p)
        return x * scale


def _centre(x: torch.Tensor) -> torch.Tensor:
    """(B, 25, D) -> (B, D) centre embedding; (B, D) passes through."""
    if x.dim() == 3:
        return x[:, CENTRE]
    if x.dim() == 2:
        return x
    raise ValueError(f"expected (B, {NUM_TILES}, D) or (B, D) embeddings, got {tuple(x.shape)}")


class _Embeddings(nn.Module):
    def __init__(
        self, num_positions: int, hidden: int, eps: float, dropout: float, type_vocab_size: int
    ) -> None:
        super().__init__()
        self.position_embeddings = nn.Embedding(num_positions, hidden)
        # transformers' BertModel adds token-type row 0 when called with inputs_embeds; kept
        # only when a loaded checkpoint has it, so such a checkpoint gives the same numbers.
        self.token_type_embeddings = (
            nn.Embedding(type_vocab_size, hidden) if type_vocab_size else None
        )
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.position_embeddings.weight[: x.shape[1]]
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings.weight[0]
        out: torch.Tensor = self.dropout(self.LayerNorm(x))  # nn.Module calls return Any
        return out


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor | None,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``queries`` (default: every token of ``x``) to every token of ``x``."""
        b, _, d = x.shape
        h = self.num_heads
        queries = x if queries is None else queries

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, t.shape[1], h, d // h).transpose(1, 2)

        q, k, v = split(self.query(queries)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        if additive_mask is not None:
            scores = scores + additive_mask
        attn: torch.Tensor = self.dropout(scores.softmax(dim=-1))
        return (attn @ v).transpose(1, 2).reshape(b, queries.shape[1], d)


class _DenseLayerNorm(nn.Module):
    """BERT's ``dense -> dropout -> LayerNorm(x + residual)`` (post-LN)."""

    def __init__(self, in_dim: int, hidden: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dim, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.LayerNorm(self.dropout(self.dense(x)) + residual)
        return out


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float, attn_drop: float, drop: float) -> None:
        super().__init__()
        self.self = _SelfAttention(hidden, heads, attn_drop)
        self.output = _DenseLayerNorm(hidden, hidden, eps, drop)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor | None,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        queries = x if queries is None else queries
        out: torch.Tensor = self.output(self.self(x, additive_mask, queries), queries)
        return out


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)
        self.act = nn.GELU()  # BERT's exact (erf) GELU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.dense(x))
        return out


class _BertLayer(nn.Module):
    def __init__(
        self, hidden: int, heads: int, intermediate: int, eps: float, attn_drop: float, drop: float
    ) -> None:
        super().__init__()
        self.attention = _Attention(hidden, heads, eps, attn_drop, drop)
        self.intermediate = _Intermediate(hidden, intermediate)
        self.output = _DenseLayerNorm(intermediate, hidden, eps, drop)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor | None,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs for ``queries`` (default: every token); keys and values are all of ``x``."""
        x = self.attention(x, additive_mask, queries)
        out: torch.Tensor = self.output(self.intermediate(x), x)
        return out


class _Encoder(nn.Module):
    def __init__(self, layers: list[_BertLayer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, 1, hidden): the centre token's output.

        Only the centre token is classified, so the last layer computes only its row: its
        query, attention output and feed-forward (keys and values still come from all 25
        tokens). Post-LN BERT treats tokens independently outside attention, so this is the
        full layer's centre row exactly, at about 40% of the layer's work.
        """
        if not len(self.layer):
            return x[:, CENTRE : CENTRE + 1]
        *inner, last = self.layer
        for layer in inner:
            x = layer(x, additive_mask)
        out: torch.Tensor = last(x, additive_mask, x[:, CENTRE : CENTRE + 1])
        return out


class SpiderContextHead(nn.Module):
    """SPIDER's context head: project 25 tile embeddings to 128-d, one BERT layer, classify
    the centre token.

    Defaults are SPIDER's published config (hidden 128, 1 head, intermediate 128, dropouts
    0.5 hidden / 0.3 attention / 0.3 classifier). Which token is pooled and whether a linear
    projection precedes BERT are UNCONFIRMED for the published weights; we use the centre token.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        hidden_size: int = 128,
        num_positions: int = NUM_TILES,
        num_attention_heads: int = 1,
        intermediate_size: int = 128,
        num_layers: int = 1,
        hidden_dropout: float = 0.5,
        attention_dropout: float = 0.3,
        classifier_dropout: float = 0.3,
        layer_norm_eps: float = 1e-12,
        type_vocab_size: int = 0,
    ) -> None:
        super().__init__()
        self.in_dim, self.num_classes = in_dim, num_classes
        # Constructor arguments, saved next to the weights so a stored head can be rebuilt.
        self.hparams: dict[str, Any] = {
            "in_dim": in_dim, "num_classes": num_classes, "hidden_size": hidden_size,
            "num_positions": num_positions, "num_attention_heads": num_attention_heads,
            "intermediate_size": intermediate_size, "num_layers": num_layers,
            "hidden_dropout": hidden_dropout, "attention_dropout": attention_dropout,
            "classifier_dropout": classifier_dropout, "layer_norm_eps": layer_norm_eps,
            "type_vocab_size": type_vocab_size,
        }
        self.projection = nn.Linear(in_dim, hidden_size)
        self.embeddings = _Embeddings(
            num_positions, hidden_size, layer_norm_eps, hidden_dropout, type_vocab_size
        )
        self.encoder = _Encoder(
            [
                _BertLayer(
                    hidden_size,
                    num_attention_heads,
                    intermediate_size,
                    layer_norm_eps,
                    attention_dropout,
                    hidden_dropout,
                )
                for _ in range(num_layers)
            ]
        )
        self.classifier_dropout = Dropout(classifier_dropout)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor, blank: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 25, D) embeddings; blank (B, 25) bool, True where the tile is missing.

        Blank tiles are masked out as attention keys, so their (zero) embeddings never
        influence the centre token. Returns (B, num_classes) logits.
        """
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected (B, T, {self.in_dim}) embeddings, got {tuple(x.shape)}")
        h = self.embeddings(self.projection(x.to(self.projection.weight.dtype)))
        additive = None
        if blank is not None:
            if blank.shape != x.shape[:2]:
                raise ValueError(f"blank mask {tuple(blank.shape)} != {tuple(x.shape[:2])}")
            additive = torch.zeros(blank.shape, dtype=h.dtype, device=h.device)
            additive = additive.masked_fill(blank.to(h.device), torch.finfo(h.dtype).min)
            additive = additive[:, None, None, :]  # (B, heads, queries, keys)
        centre = self.encoder(h, additive)[:, 0]
        logits: torch.Tensor = self.classifier(self.classifier_dropout(centre))
        return logits

    @torch.no_grad()
    def reorder_classes(self, permutation: list[int]) -> None:
        """Make output i be old output ``permutation[i]`` (e.g. to follow a project's order)."""
        _reorder_linear(self.classifier, permutation)


class CentreLinearHead(nn.Module):
    """A linear probe on the centre tile only, for projects without context tiles."""

    def __init__(self, in_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim, self.num_classes = in_dim, num_classes
        self.hparams: dict[str, Any] = {
            "in_dim": in_dim, "num_classes": num_classes, "dropout": dropout,
        }
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor, blank: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 25, D) or (B, D); ``blank`` is accepted for a uniform interface and ignored."""
        centre = _centre(x).to(self.classifier.weight.dtype)
        logits: torch.Tensor = self.classifier(self.dropout(centre))
        return logits

    @torch.no_grad()
    def reorder_classes(self, permutation: list[int]) -> None:
        _reorder_linear(self.classifier, permutation)


def _reorder_linear(linear: nn.Linear, permutation: list[int]) -> None:
    if sorted(permutation) != list(range(linear.out_features)):
        raise ValueError(f"not a permutation of {linear.out_features} classes: {permutation}")
    index = torch.as_tensor(permutation, device=linear.weight.device)
    linear.weight.copy_(linear.weight[index])
    if linear.bias is not None:
        linear.bias.copy_(linear.bias[index])


Head = SpiderContextHead | CentreLinearHead

HEAD_CLASSES: dict[str, type[Head]] = {
    "context": SpiderContextHead,
    "centre": CentreLinearHead,
}


def head_config(head: nn.Module) -> dict[str, Any]:
    """JSON-able description from which :func:`head_from_config` rebuilds ``head``'s shape."""
    for kind, cls in HEAD_CLASSES.items():
        if type(head) is cls:  # exactly a Head class (mypy does not narrow on this)
            return {"kind": kind, **cast(Head, head).hparams}
    raise TypeError(f"not a head this project can store: {type(head).__name__}")


def head_from_config(config: dict[str, Any]) -> Head:
    """A fresh (untrained) head of the shape ``config`` describes; load weights into it."""
    params = dict(config)
    kind = params.pop("kind", None)
    if kind not in HEAD_CLASSES:
        raise ValueError(f"unknown head kind {kind!r}; known: {', '.join(HEAD_CLASSES)}")
    return HEAD_CLASSES[kind](**params)
