"""Head shapes, BERT key names and the blank-tile mask."""

from __future__ import annotations

import pytest
import torch

from inference.modeling import CENTRE, CentreLinearHead, SpiderContextHead

BERT_KEYS = {
    "projection.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.0.attention.self.key.weight",
    "encoder.layer.0.attention.self.value.weight",
    "encoder.layer.0.attention.output.dense.weight",
    "encoder.layer.0.attention.output.LayerNorm.weight",
    "encoder.layer.0.intermediate.dense.weight",
    "encoder.layer.0.output.dense.weight",
    "encoder.layer.0.output.LayerNorm.weight",
    "classifier.weight",
}


def test_context_head_shapes_and_names() -> None:
    head = SpiderContextHead(in_dim=32, num_classes=5).eval()
    assert set(head.state_dict()) >= BERT_KEYS
    assert head.embeddings.position_embeddings.weight.shape == (25, 128)
    out = head(torch.randn(4, 25, 32, dtype=torch.float16))
    assert out.shape == (4, 5) and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(B, T, 32\)"):
        head(torch.randn(4, 32))


def test_blank_tiles_are_ignored() -> None:
    head = SpiderContextHead(in_dim=16, num_classes=3).eval()
    x = torch.randn(2, 25, 16)
    blank = torch.zeros(2, 25, dtype=torch.bool)
    blank[:, [0, 7, 24]] = True
    changed = x.clone()
    changed[:, [0, 7, 24]] = torch.randn(2, 3, 16) * 10
    with torch.inference_mode():
        torch.testing.assert_close(head(x, blank), head(changed, blank))
        assert not torch.allclose(head(x), head(changed))  # without the mask they matter
        # A blank tile is not the same as a zero tile.
        zeros = x.clone()
        zeros[:, [0, 7, 24]] = 0
        assert not torch.allclose(head(zeros), head(x, blank))


def test_blank_mask_shape_is_checked() -> None:
    head = SpiderContextHead(in_dim=8, num_classes=2)
    with pytest.raises(ValueError, match="blank mask"):
        head(torch.randn(2, 25, 8), torch.zeros(2, 24, dtype=torch.bool))


def test_centre_linear_head_uses_centre_only() -> None:
    head = CentreLinearHead(in_dim=8, num_classes=3).eval()
    x = torch.randn(4, 25, 8)
    other = torch.randn(4, 25, 8)
    other[:, CENTRE] = x[:, CENTRE]
    torch.testing.assert_close(head(x), head(other))
    torch.testing.assert_close(head(x), head(x[:, CENTRE]))


def test_reorder_classes_permutes_outputs() -> None:
    head = SpiderContextHead(in_dim=8, num_classes=3).eval()
    x = torch.randn(2, 25, 8)
    before = head(x)
    head.reorder_classes([2, 0, 1])
    torch.testing.assert_close(head(x), before[:, [2, 0, 1]])
    with pytest.raises(ValueError, match="permutation"):
        head.reorder_classes([0, 0, 1])


def _full_sequence_logits(head: SpiderContextHead, x: torch.Tensor,
                          blank: torch.Tensor) -> torch.Tensor:
    """BERT post-LN written out over all 25 tokens with the head's weights, then the centre."""
    f = torch.nn.functional
    eps = head.hparams["layer_norm_eps"]
    heads = head.hparams["num_attention_heads"]

    def norm(t: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
        return f.layer_norm(t, ln.normalized_shape, ln.weight, ln.bias, eps)

    h = f.linear(x, head.projection.weight, head.projection.bias)
    h = norm(h + head.embeddings.position_embeddings.weight, head.embeddings.LayerNorm)
    mask = torch.zeros(blank.shape).masked_fill(blank, torch.finfo(h.dtype).min)[:, None, None]
    b, n, d = h.shape
    for layer in head.encoder.layer:
        sa = layer.attention.self

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, heads, d // heads).transpose(1, 2)

        q, k, v = (split(f.linear(h, m.weight, m.bias)) for m in (sa.query, sa.key, sa.value))
        attn = ((q @ k.transpose(-1, -2)) / (d // heads) ** 0.5 + mask).softmax(-1)
        ctx = (attn @ v).transpose(1, 2).reshape(b, n, d)
        out = layer.attention.output
        h = norm(f.linear(ctx, out.dense.weight, out.dense.bias) + h, out.LayerNorm)
        mid = f.gelu(f.linear(h, layer.intermediate.dense.weight, layer.intermediate.dense.bias))
        h = norm(f.linear(mid, layer.output.dense.weight, layer.output.dense.bias) + h,
                 layer.output.LayerNorm)
    return f.linear(h[:, CENTRE], head.classifier.weight, head.classifier.bias)


@pytest.mark.parametrize(("layers", "heads"), [(1, 1), (2, 4)])
def test_centre_only_last_layer_equals_the_full_sequence(layers: int, heads: int) -> None:
    """The head computes only the centre token's row in its last layer; the logits must be
    those of the whole BERT layer stack computed over every token."""
    torch.manual_seed(0)
    head = SpiderContextHead(in_dim=24, num_classes=4, num_layers=layers,
                             num_attention_heads=heads).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    x = torch.randn(6, 25, 24)
    blank = torch.rand(6, 25) < 0.3
    blank[:, CENTRE] = False
    with torch.inference_mode():
        torch.testing.assert_close(head(x, blank), _full_sequence_logits(head, x, blank),
                                   rtol=1e-5, atol=1e-5)


def test_cpu_dropout_keeps_the_expected_share_scaled() -> None:
    from inference.modeling.heads import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.3).train()
    x = torch.ones(200, 25, 128, requires_grad=True)
    out = drop(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.7))
    out.sum().backward()  # the gradient flows through the kept entries only, scaled alike
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    torch.testing.assert_close(drop.eval()(x), x)
