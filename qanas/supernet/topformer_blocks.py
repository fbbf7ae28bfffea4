"""Static TopFormer modules (the extracted subnets of `efficient-topformer`).

Attention is written with ops the int8 flow and the QDQ export keep visible:
1×1 conv-BN projections, ``torch.flatten`` / ``torch.reshape`` / ``torch.transpose``,
two `MatMul` modules (so the quantizer can put int8 operands and a requantizer around
each) and ``nn.Softmax``. The network is `TopFormerNet`; the supernet runs the same
class with elastic modules in its slots. Their analytic layer descriptors are the space's
(`qanas.space.efficient_topformer.topformer_specs`), whose MAC and parameter totals equal
a hook count (`qanas.supernet.count`), a tested invariant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qanas.space.efficient_topformer import (
    INJECT_CHANNELS,
    INJECT_STAGES,
    POOL_WINDOWS,
    TOKEN_STAGES,
    TopFormerPlan,
)
from qanas.supernet.blocks import ConvBNAct, InvertedResidual, upsample_to


class MatMul(nn.Module):
    """``torch.matmul(a, b)`` as a module, so quantizers and MAC counters can find it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The batched matrix product."""
        return torch.matmul(a, b)

    @staticmethod
    def macs_of_call(inputs, output: torch.Tensor) -> int:
        """MACs of one call per sample: reduction length × output elements."""
        return inputs[0].shape[-1] * output[0].numel()


def attention_core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, key_dim: int,
                   value_dim: int, qk: nn.Module, softmax: nn.Module, av: nn.Module) -> torch.Tensor:
    """Multi-head attention over projected (B, C, H, W) maps; returns (B, heads*value_dim, H, W).

    Head i reads channels ``[i*key_dim, (i+1)*key_dim)`` of `q` and `k` and
    ``[i*value_dim, (i+1)*value_dim)`` of `v` (TopFormer's layout).
    """
    batch, height, width = v.shape[0], v.shape[2], v.shape[3]
    q = torch.flatten(q, 2)
    tokens = q.shape[2]
    q = torch.transpose(torch.reshape(q, (batch, heads, key_dim, tokens)), 2, 3)
    k = torch.reshape(torch.flatten(k, 2), (batch, heads, key_dim, tokens))
    v = torch.transpose(torch.reshape(torch.flatten(v, 2), (batch, heads, value_dim, tokens)), 2, 3)
    out = av(softmax(qk(q, k)), v)  # (B, heads, tokens, value_dim)
    return torch.reshape(torch.transpose(out, 2, 3), (batch, heads * value_dim, height, width))


class Attention(nn.Module):
    """TopFormer attention: q/k/v 1×1 conv-BN, softmax(q kᵀ) v per head, ReLU6, 1×1 conv-BN."""

    def __init__(self, dim: int, heads: int, key_dim: int, value_dim: int):
        super().__init__()
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.to_q = ConvBNAct(dim, heads * key_dim, 1, act=None)
        self.to_k = ConvBNAct(dim, heads * key_dim, 1, act=None)
        self.to_v = ConvBNAct(dim, heads * value_dim, 1, act=None)
        self.qk, self.softmax, self.av = MatMul(), nn.Softmax(dim=-1), MatMul()
        self.act = nn.ReLU6()
        self.proj = ConvBNAct(heads * value_dim, dim, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output with the input's shape (the caller adds the residual)."""
        out = attention_core(self.to_q(x), self.to_k(x), self.to_v(x), self.heads, self.key_dim,
                             self.value_dim, self.qk, self.softmax, self.av)
        return self.proj(self.act(out))


class Mlp(nn.Module):
    """TopFormer MLP: 1×1 conv-BN → 3×3 depthwise conv-BN-ReLU6 → 1×1 conv-BN."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = ConvBNAct(dim, hidden, 1, act=None)
        self.dw = ConvBNAct(hidden, hidden, 3, groups=hidden, act="relu6")
        self.fc2 = ConvBNAct(hidden, dim, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """MLP output with the input's shape."""
        return self.fc2(self.dw(self.fc1(x)))


class TransformerBlock(nn.Module):
    """x + attention(x), then + mlp(.).

    A residual block (`use_residual`): differentiable search scales its change of the
    token stream, and zero-initialised residuals start it as the identity.
    """

    use_residual = True

    def __init__(self, attn: nn.Module, mlp: nn.Module):
        super().__init__()
        self.attn, self.mlp = attn, mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Both residual sub-blocks."""
        x = x + self.attn(x)
        return x + self.mlp(x)


class Injection(nn.Module):
    """Semantics injection: local(x) * resize(h-sigmoid(gate(g))) + resize(embed(g))."""

    def __init__(self, in_ch: int, out_ch: int = INJECT_CHANNELS):
        super().__init__()
        self.local = ConvBNAct(in_ch, out_ch, 1, act=None)
        self.gate = ConvBNAct(in_ch, out_ch, 1, act=None)
        self.act = nn.Hardsigmoid()
        self.embed = ConvBNAct(in_ch, out_ch, 1, act=None)

    def forward(self, local: torch.Tensor, global_tokens: torch.Tensor) -> torch.Tensor:
        """Injected features at the resolution of `local`."""
        feat = self.local(local)
        gate = upsample_to(self.act(self.gate(global_tokens)), feat)
        return feat * gate + upsample_to(self.embed(global_tokens), feat)


class SegHead(nn.Module):
    """TopFormer's simple head: resize to the first input, sum, 1×1 conv-BN-ReLU6, classifier."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.fuse = ConvBNAct(channels, channels, 1, act="relu6")
        self.classifier = nn.Conv2d(channels, num_classes, 1, bias=True)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits at the resolution of the first feature."""
        x = feats[0]
        for f in feats[1:]:
            x = x + upsample_to(f, feats[0])
        return self.classifier(self.fuse(x))


class TopFormerNet(nn.Module):
    """stem → stages → pooled tokens → transformer → injections → head → resize.

    Static when built by `build_topformer`; the supernet fills the same slots with
    elastic modules and updates `token_slices` when it changes subnet.
    """

    def __init__(self, stem: nn.Module, stages: nn.ModuleList, transformer: nn.Module,
                 injections: nn.ModuleList, head: nn.Module, token_slices: Sequence[tuple[int, int]]):
        super().__init__()
        self.stem, self.stages, self.transformer = stem, stages, transformer
        self.pools = nn.ModuleList(nn.AvgPool2d(w, w) for w in POOL_WINDOWS)
        self.injections, self.head = injections, head
        self.token_slices = tuple(tuple(s) for s in token_slices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W); H and W must be multiples of 64 (not checked here:
        the static network stays traceable; the supernet checks)."""
        feats = []
        y = self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        tokens = torch.cat([pool(feats[i]) for pool, i in zip(self.pools, TOKEN_STAGES, strict=True)],
                           dim=1)
        tokens = self.transformer(tokens)
        injected = [inj(feats[i], torch.narrow(tokens, 1, a, b - a)) for inj, i, (a, b)
                    in zip(self.injections, INJECT_STAGES, self.token_slices, strict=True)]
        return upsample_to(self.head(injected), x)


def build_topformer(plan: TopFormerPlan, num_classes: int) -> TopFormerNet:
    """A freshly initialised static network for `plan` (the supernet copies weights into it)."""
    stages = nn.ModuleList(
        nn.Sequential(*(InvertedResidual(b.in_ch, b.out_ch, b.kernel, b.expand, b.stride)
                        for b in blocks)) for blocks in plan.stages)
    transformer = nn.Sequential(*(
        TransformerBlock(Attention(v.dim, v.heads, v.key_dim, v.value_dim), Mlp(v.dim, v.mlp_hidden))
        for v in plan.vit))
    injections = nn.ModuleList(Injection(plan.widths[i]) for i in INJECT_STAGES)
    return TopFormerNet(ConvBNAct(3, plan.stem, 3, stride=2), stages, transformer, injections,
                        SegHead(INJECT_CHANNELS, num_classes), plan.token_slices())


__all__ = ["Attention", "Injection", "MatMul", "Mlp", "SegHead", "TopFormerNet", "TransformerBlock",
           "attention_core", "build_topformer"]
