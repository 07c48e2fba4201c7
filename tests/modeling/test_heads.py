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
