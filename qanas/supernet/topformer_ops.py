"""Elastic modules of the `efficient-topformer` supernet (Once-for-All / AutoFormer slicing).

* `ElasticMBConv`: an inverted residual with elastic input/output width, kernel
  (centre of the max kernel) and expansion (first hidden channels), built on
  `dynamic_ops.DynamicConv2d` / `DynamicBatchNorm2d`.
* `IndexedConvBN`: a 1×1 conv-BN whose active input and output channels are index
  tensors into its max-size weight. The transformer needs it because its channels
  are not prefixes: the token width is the concatenation of four elastic stage
  widths (each a prefix of its own segment of the max layout), and the q/k/v
  channels are per head (head i keeps ``[i*max_dim, i*max_dim + dim)``), so a head
  keeps its weights whatever the key or value dim (AutoFormer keeps the first heads,
  each head the first dims).
* `ElasticAttention`, `ElasticMlp`: the TopFormer blocks over those; the MLP's
  hidden channels are a prefix.
* `ElasticInjection`: the injection module with an elastic input width.

Every module has `to_static()` returning the `topformer_blocks` (or `blocks`) module
of its active path with the weights copied, whose output equals its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qanas.supernet.blocks import ConvBNAct, InvertedResidual, upsample_to
from qanas.supernet.dynamic_ops import DynamicBatchNorm2d, DynamicConv2d, count_batch
from qanas.supernet.topformer_blocks import Attention, Injection, MatMul, Mlp, attention_core


def copy_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, weight: torch.Tensor,
                  src_bn: nn.BatchNorm2d, index: torch.Tensor | None = None) -> None:
    """Copies a weight and the (indexed) statistics and affine parameters of `src_bn`."""
    with torch.no_grad():
        conv.weight.copy_(weight)
        pick = (lambda t: t[index]) if index is not None else (lambda t: t[:bn.num_features])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(pick(getattr(src_bn, name)))
        bn.num_batches_tracked.copy_(src_bn.num_batches_tracked)


class ElasticMBConv(nn.Module):
    """Inverted residual with elastic widths, kernel and expansion (no expansion conv if max is 1)."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int, max_expand: int):
        super().__init__()
        self.has_expand = max_expand > 1
        max_hidden = max_in * max_expand
        if self.has_expand:
            self.expand = DynamicConv2d(max_in, max_hidden, 1)
            self.expand_bn = DynamicBatchNorm2d(max_hidden)
        self.dw = DynamicConv2d(max_hidden, max_hidden, max_kernel, depthwise=True)
        self.dw_bn = DynamicBatchNorm2d(max_hidden)
        self.project = DynamicConv2d(max_hidden, max_out, 1)
        self.project_bn = DynamicBatchNorm2d(max_out)
        self.act = nn.ReLU6()
        self.configure(max_in, max_out, max_kernel, max_expand, 1)

    def configure(self, in_ch: int, out_ch: int, kernel: int, expand: int, stride: int) -> None:
        """Activates one path."""
        if (expand > 1) != self.has_expand:
            raise ValueError(f"this block {'has' if self.has_expand else 'has no'} expansion conv; "
                             f"expansion {expand} does not fit it")
        self.in_ch, self.out_ch, self.kernel, self.expand_ratio, self.stride = (
            in_ch, out_ch, kernel, expand, stride)
        self.hidden = in_ch * expand
        self.use_res = stride == 1 and in_ch == out_ch
        if self.has_expand:
            self.expand.configure(self.hidden, 1)
        self.dw.configure(None, kernel, stride)
        self.project.configure(out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The active inverted residual."""
        y = self.act(self.expand_bn(self.expand(x))) if self.has_expand else x
        y = self.project_bn(self.project(self.act(self.dw_bn(self.dw(y)))))
        return x + y if self.use_res else y

    def to_static(self) -> InvertedResidual:
        """`blocks.InvertedResidual` of the active path with copied weights."""
        block = InvertedResidual(self.in_ch, self.out_ch, self.kernel, self.expand_ratio, self.stride)
        layers = list(block.conv)
        if self.has_expand:
            expand = layers.pop(0)
            copy_conv_bn(expand[0], expand[1], self.expand.active_weight(self.in_ch), self.expand_bn)
        dw, project, project_bn = layers
        copy_conv_bn(dw[0], dw[1], self.dw.active_weight(self.hidden), self.dw_bn)
        copy_conv_bn(project, project_bn, self.project.active_weight(self.hidden), self.project_bn)
        return block.train(self.training)


class ElasticStage(nn.Module):
    """`max_depth` elastic blocks of which the first `depth` run."""

    def __init__(self, blocks: list[ElasticMBConv]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.depth = len(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The first `depth` blocks in order."""
        for block in self.blocks[:self.depth]:
            x = block(x)
        return x

    def to_static(self) -> nn.Sequential:
        """The active blocks as static inverted residuals."""
        return nn.Sequential(*(b.to_static() for b in self.blocks[:self.depth]))


class IndexedConvBN(nn.Module):
    """1×1 conv + BN over index-selected input and output channels of max-size weights."""

    def __init__(self, max_in: int, max_out: int, bn_weight_init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bn = nn.BatchNorm2d(max_out)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        self.register_buffer("in_index", torch.arange(max_in), persistent=False)
        self.register_buffer("out_index", torch.arange(max_out), persistent=False)

    def configure(self, in_index: torch.Tensor, out_index: torch.Tensor) -> None:
        """Sets the active channels (int64 index tensors into the max layout)."""
        self.in_index = in_index.to(self.weight.device)
        self.out_index = out_index.to(self.weight.device)

    def active_weight(self) -> torch.Tensor:
        """The (out, in, 1, 1) weight of the active channels."""
        return self.weight.index_select(0, self.out_index).index_select(1, self.in_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv then BN on the active channels; BN running statistics are written back."""
        y = F.conv2d(x, self.active_weight())
        bn, idx = self.bn, self.out_index
        mean, var = bn.running_mean[idx], bn.running_var[idx]  # copies: written back below
        y = F.batch_norm(y, mean, var, bn.weight[idx], bn.bias[idx], bn.training,
                         count_batch(bn), bn.eps)
        if bn.training:
            with torch.no_grad():
                bn.running_mean.index_copy_(0, idx, mean)
                bn.running_var.index_copy_(0, idx, var)
        return y

    def to_static(self) -> ConvBNAct:
        """A `ConvBNAct` (no activation) of the active channels with copied weights."""
        module = ConvBNAct(len(self.in_index), len(self.out_index), 1, act=None)
        copy_conv_bn(module[0], module[1], self.active_weight(), self.bn, self.out_index)
        return module.train(self.training)


def head_index(heads: int, dim: int, max_dim: int) -> torch.Tensor:
    """Channels ``[i*max_dim, i*max_dim + dim)`` of heads ``i < heads``."""
    return (torch.arange(heads)[:, None] * max_dim + torch.arange(dim)[None, :]).reshape(-1)


class ElasticAttention(nn.Module):
    """TopFormer attention with elastic token width, heads, key dim and value dim."""

    def __init__(self, max_dim: int, max_heads: int, max_key_dim: int, max_value_dim: int):
        super().__init__()
        self.max_key_dim, self.max_value_dim = max_key_dim, max_value_dim
        self.to_q = IndexedConvBN(max_dim, max_heads * max_key_dim)
        self.to_k = IndexedConvBN(max_dim, max_heads * max_key_dim)
        self.to_v = IndexedConvBN(max_dim, max_heads * max_value_dim)
        self.qk, self.softmax, self.av = MatMul(), nn.Softmax(dim=-1), MatMul()
        self.act = nn.ReLU6()
        self.proj = IndexedConvBN(max_heads * max_value_dim, max_dim, bn_weight_init=0.0)
        self.heads = max_heads
        self.key_dim, self.value_dim = max_key_dim, max_value_dim

    def configure(self, dim_index: torch.Tensor, heads: int, key_dim: int, value_dim: int) -> None:
        """Activates `heads` heads of `key_dim` / `value_dim` on the token channels `dim_index`."""
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        qk_index = head_index(heads, key_dim, self.max_key_dim)
        v_index = head_index(heads, value_dim, self.max_value_dim)
        self.to_q.configure(dim_index, qk_index)
        self.to_k.configure(dim_index, qk_index)
        self.to_v.configure(dim_index, v_index)
        self.proj.configure(v_index, dim_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output on the active channels."""
        out = attention_core(self.to_q(x), self.to_k(x), self.to_v(x), self.heads, self.key_dim,
                             self.value_dim, self.qk, self.softmax, self.av)
        return self.proj(self.act(out))

    def to_static(self) -> Attention:
        """The active path as `topformer_blocks.Attention` with copied weights."""
        dim = len(self.to_q.in_index)
        module = Attention(dim, self.heads, self.key_dim, self.value_dim)
        for name in ("to_q", "to_k", "to_v", "proj"):
            setattr(module, name, getattr(self, name).to_static())
        return module.train(self.training)


class ElasticMlp(nn.Module):
    """TopFormer MLP with elastic token width and hidden width (a prefix)."""

    def __init__(self, max_dim: int, max_hidden: int):
        super().__init__()
        self.fc1 = IndexedConvBN(max_dim, max_hidden)
        self.dw = DynamicConv2d(max_hidden, max_hidden, 3, depthwise=True)
        self.dw_bn = DynamicBatchNorm2d(max_hidden)
        self.act = nn.ReLU6()
        self.fc2 = IndexedConvBN(max_hidden, max_dim)
        self.hidden = max_hidden

    def configure(self, dim_index: torch.Tensor, hidden: int) -> None:
        """Activates `hidden` hidden channels on the token channels `dim_index`."""
        self.hidden = hidden
        self.fc1.configure(dim_index, torch.arange(hidden))
        self.fc2.configure(torch.arange(hidden), dim_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """MLP output on the active channels."""
        return self.fc2(self.act(self.dw_bn(self.dw(self.fc1(x)))))

    def to_static(self) -> Mlp:
        """The active path as `topformer_blocks.Mlp` with copied weights."""
        module = Mlp(len(self.fc1.in_index), self.hidden)
        module.fc1, module.fc2 = self.fc1.to_static(), self.fc2.to_static()
        copy_conv_bn(module.dw[0], module.dw[1], self.dw.active_weight(self.hidden), self.dw_bn)
        return module.train(self.training)


class ElasticInjection(nn.Module):
    """`topformer_blocks.Injection` whose input width follows its inputs (a prefix)."""

    def __init__(self, max_in: int, out_ch: int):
        super().__init__()
        self.out_ch = out_ch
        for name in ("local", "gate", "embed"):
            setattr(self, name, DynamicConv2d(max_in, out_ch, 1))
            setattr(self, f"{name}_bn", DynamicBatchNorm2d(out_ch))
        self.act = nn.Hardsigmoid()
        self.in_ch = max_in

    def forward(self, local: torch.Tensor, global_tokens: torch.Tensor) -> torch.Tensor:
        """Injected features at the resolution of `local`."""
        feat = self.local_bn(self.local(local))
        gate = upsample_to(self.act(self.gate_bn(self.gate(global_tokens))), feat)
        return feat * gate + upsample_to(self.embed_bn(self.embed(global_tokens)), feat)

    def to_static(self, in_ch: int) -> Injection:
        """`Injection` for `in_ch` input channels with copied weights."""
        module = Injection(in_ch, self.out_ch)
        for name in ("local", "gate", "embed"):
            conv_bn = getattr(module, name)
            copy_conv_bn(conv_bn[0], conv_bn[1], getattr(self, name).active_weight(in_ch),
                          getattr(self, f"{name}_bn"))
        return module.train(self.training)


__all__ = ["ElasticAttention", "ElasticInjection", "ElasticMBConv", "ElasticMlp", "ElasticStage", "copy_conv_bn",
           "IndexedConvBN", "head_index"]
