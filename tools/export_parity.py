#!/usr/bin/env python3
"""Writes PyTorch fusion models through export_model.py, with inputs and PyTorch's outputs, for
PythonExportTest to load in Java and compare: usage `export_parity.py OUT_DIR`; writes OUT_DIR/cases.json.

The encoders and heads use real torch.nn modules (Linear, LayerNorm, GELU, Tanh, Dropout, Bilinear,
MultiheadAttention with kdim != embed_dim). block.bootstrap is not installed here, so each of its fusions
(LinearSum, MLB, MFB, MFH, Mutan, Tucker, Block, BlockTucker, MCB, ConcatMLP and its MLP) is stood in for
by a small module written from its published forward, with the same attribute and parameter names and
the same quirks (Mutan's and Block's rank-major sums, get_sizes_list's uneven chunks); the pooling step
is a module with a `pool_mode`.
"""
import json
import os
import sys

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_model import export, spec_for  # noqa: E402


class MaskedMean(nn.Module):
    """Mean over the positions a mask keeps: what an MMFuse pool step computes."""
    pool_mode = "mean"

    def forward(self, x, mask):
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp(min=1)


def signed_sqrt_l2(z):
    """block.bootstrap's power normalisation: signed square root, then L2 over the last dimension."""
    return F.normalize(torch.sqrt(F.relu(z)) - torch.sqrt(F.relu(-z)), p=2)


def activate(name, x):
    return getattr(F, name)(x) if name else x


class MFB(nn.Module):
    def __init__(self, input_dims, output_dim, mm_dim=1200, factor=2, activ_input="relu", activ_output="relu",
                 normalize=False):
        super().__init__()
        self.input_dims, self.output_dim, self.mm_dim, self.factor = input_dims, output_dim, mm_dim, factor
        self.activ_input, self.activ_output, self.normalize = activ_input, activ_output, normalize
        self.linear0 = nn.Linear(input_dims[0], mm_dim * factor)
        self.linear1 = nn.Linear(input_dims[1], mm_dim * factor)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def forward(self, x):
        x0, x1 = activate(self.activ_input, self.linear0(x[0])), activate(self.activ_input, self.linear1(x[1]))
        z = (x0 * x1).view(x0.size(0), self.mm_dim, self.factor).sum(2)
        if self.normalize:
            z = signed_sqrt_l2(z)
        return activate(self.activ_output, self.linear_out(z))


class Tucker(nn.Module):
    def __init__(self, input_dims, output_dim, mm_dim=1600, normalize=False):
        super().__init__()
        self.input_dims, self.output_dim, self.mm_dim, self.normalize = input_dims, output_dim, mm_dim, normalize
        self.linear0 = nn.Linear(input_dims[0], mm_dim)
        self.linear1 = nn.Linear(input_dims[1], mm_dim)
        self.bilinear = nn.Bilinear(mm_dim, mm_dim, mm_dim)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def forward(self, x):
        z = self.bilinear(self.linear0(x[0]), self.linear1(x[1]))
        if self.normalize:
            z = signed_sqrt_l2(z)
        return self.linear_out(z)


class LinearSum(nn.Module):
    def __init__(self, input_dims, output_dim, mm_dim=1200, activ_input="relu", activ_output="relu", normalize=False):
        super().__init__()
        self.input_dims, self.output_dim, self.mm_dim = input_dims, output_dim, mm_dim
        self.activ_input, self.activ_output, self.normalize = activ_input, activ_output, normalize
        self.linear0 = nn.Linear(input_dims[0], mm_dim)
        self.linear1 = nn.Linear(input_dims[1], mm_dim)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def combine(self, x0, x1):
        return x0 + x1

    def forward(self, x):
        z = self.combine(activate(self.activ_input, self.linear0(x[0])), activate(self.activ_input, self.linear1(x[1])))
        if self.normalize:
            z = signed_sqrt_l2(z)
        return activate(self.activ_output, self.linear_out(z))


class MLB(LinearSum):
    def combine(self, x0, x1):
        return x0 * x1


class MFH(nn.Module):
    """Two MFB stages; the second multiplies in the first's product before its sum pooling."""

    def __init__(self, input_dims, output_dim, mm_dim=1200, factor=2, activ_input="relu", activ_output="relu",
                 normalize=False):
        super().__init__()
        self.input_dims, self.output_dim, self.mm_dim, self.factor = input_dims, output_dim, mm_dim, factor
        self.activ_input, self.activ_output, self.normalize = activ_input, activ_output, normalize
        self.linear0_0 = nn.Linear(input_dims[0], mm_dim * factor)
        self.linear1_0 = nn.Linear(input_dims[1], mm_dim * factor)
        self.linear0_1 = nn.Linear(input_dims[0], mm_dim * factor)
        self.linear1_1 = nn.Linear(input_dims[1], mm_dim * factor)
        self.linear_out = nn.Linear(2 * mm_dim, output_dim)

    def pool(self, product):
        z = product.view(product.size(0), self.mm_dim, self.factor).sum(2)
        return signed_sqrt_l2(z) if self.normalize else z

    def forward(self, x):
        skip = activate(self.activ_input, self.linear0_0(x[0])) * activate(self.activ_input, self.linear1_0(x[1]))
        second = activate(self.activ_input, self.linear0_1(x[0])) * activate(self.activ_input, self.linear1_1(x[1])) * skip
        z = torch.cat([self.pool(skip), self.pool(second)], 1)
        return activate(self.activ_output, self.linear_out(z))


class Mutan(nn.Module):
    def __init__(self, input_dims, output_dim, mm_dim=1600, rank=15, shared=False, normalize=False):
        super().__init__()
        self.input_dims, self.output_dim, self.mm_dim, self.rank = input_dims, output_dim, mm_dim, rank
        self.shared, self.normalize = shared, normalize
        self.linear0 = nn.Linear(input_dims[0], mm_dim)
        self.merge_linear0 = nn.Linear(mm_dim, mm_dim * rank)
        self.linear1 = self.linear0 if shared else nn.Linear(input_dims[1], mm_dim)
        self.merge_linear1 = self.merge_linear0 if shared else nn.Linear(mm_dim, mm_dim * rank)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def forward(self, x):
        m = self.merge_linear0(self.linear0(x[0])) * self.merge_linear1(self.linear1(x[1]))
        z = m.view(-1, self.rank, self.mm_dim).sum(1)  # rank-major: the rank copies are mm_dim apart
        if self.normalize:
            z = signed_sqrt_l2(z)
        return self.linear_out(z)


def chunk_sizes(dim, chunks):
    """Chunks of ceil(dim / chunks); when the last would be negative, it takes the size of the one before
    and each of the last ones gives up one (block.bootstrap's get_sizes_list)."""
    size = (dim + chunks - 1) // chunks
    sizes = [size] * chunks
    sizes[-1] -= sum(sizes) - dim
    if sizes[-1] < 0:
        missing = sizes[-2] - sizes[-1]
        sizes[-1] = sizes[-2]
        for j in range(missing):
            sizes[-j - 1] -= 1
    assert sum(sizes) == dim and min(sizes) > 0
    return sizes


class Block(nn.Module):
    def __init__(self, input_dims, output_dim, mm_dim=1600, chunks=20, rank=15, shared=False, pos_norm="before_cat"):
        super().__init__()
        self.input_dims, self.output_dim, self.mm_dim, self.chunks, self.rank = input_dims, output_dim, mm_dim, chunks, rank
        self.shared, self.pos_norm = shared, pos_norm
        self.linear0 = nn.Linear(input_dims[0], mm_dim)
        self.linear1 = self.linear0 if shared else nn.Linear(input_dims[1], mm_dim)
        self.sizes_list = chunk_sizes(mm_dim, chunks)
        self.merge_linears0 = nn.ModuleList(nn.Linear(s, s * rank) for s in self.sizes_list)
        self.merge_linears1 = self.merge_linears0 if shared else nn.ModuleList(nn.Linear(s, s * rank) for s in self.sizes_list)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def chunk(self, c, x0, x1):
        m = self.merge_linears0[c](x0) * self.merge_linears1[c](x1)
        return m.view(m.size(0), self.rank, -1).sum(1)

    def forward(self, x):
        x0, x1 = self.linear0(x[0]), self.linear1(x[1])
        zs = []
        for c, (a, b) in enumerate(zip(x0.split(self.sizes_list, 1), x1.split(self.sizes_list, 1))):
            z = self.chunk(c, a, b)
            zs.append(signed_sqrt_l2(z) if self.pos_norm == "before_cat" else z)
        z = torch.cat(zs, 1)
        if self.pos_norm == "after_cat":
            z = signed_sqrt_l2(z)
        return self.linear_out(z)


class BlockTucker(Block):
    def __init__(self, input_dims, output_dim, mm_dim=1600, chunks=20, shared=False, pos_norm="before_cat"):
        nn.Module.__init__(self)
        self.input_dims, self.output_dim, self.mm_dim, self.chunks = input_dims, output_dim, mm_dim, chunks
        self.shared, self.pos_norm = shared, pos_norm
        self.linear0 = nn.Linear(input_dims[0], mm_dim)
        self.linear1 = self.linear0 if shared else nn.Linear(input_dims[1], mm_dim)
        self.sizes_list = chunk_sizes(mm_dim, chunks)
        self.bilinears = nn.ModuleList(nn.Bilinear(s, s, s) for s in self.sizes_list)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def chunk(self, c, x0, x1):
        return self.bilinears[c](x0, x1)


class MLP(nn.Module):
    """block.bootstrap's MLP: linears.0 .. linears.n, the activation between them, none after the last."""

    def __init__(self, input_dim, dimensions, activation="relu"):
        super().__init__()
        self.input_dim, self.dimensions, self.activation = input_dim, dimensions, activation
        self.linears = nn.ModuleList(nn.Linear(i, o) for i, o in zip([input_dim] + dimensions[:-1], dimensions))

    def forward(self, x):
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i < len(self.linears) - 1:
                x = getattr(F, self.activation)(x)
        return x


class ConcatMLP(nn.Module):
    def __init__(self, input_dims, output_dim, dimensions=(500, 500), activation="relu"):
        super().__init__()
        self.input_dims, self.output_dim, self.activation = input_dims, output_dim, activation
        self.dimensions = list(dimensions) + [output_dim]
        self.mlp = MLP(sum(input_dims), self.dimensions, activation)

    def forward(self, x):
        return self.mlp(torch.cat(x, 1))


class CountSketch(nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.output_size = output_size
        self.register_buffer("h", torch.randint(0, output_size, (input_size,), dtype=torch.int64))
        self.register_buffer("s", (2 * torch.randint(0, 2, (input_size,)) - 1).float())

    def forward(self, x):
        out = x.new_zeros(x.shape[:-1] + (self.output_size,))
        return out.index_add(-1, self.h, x * self.s)


class CompactBilinearPooling(nn.Module):
    def __init__(self, in1, in2, d):
        super().__init__()
        self.sketch1, self.sketch2, self.d = CountSketch(in1, d), CountSketch(in2, d), d

    def forward(self, x, y):
        fx, fy = torch.fft.rfft(self.sketch1(x)), torch.fft.rfft(self.sketch2(y))
        return torch.fft.irfft(fx * fy, n=self.d)


class MCB(nn.Module):
    def __init__(self, input_dims, output_dim, mm_dim=16000, activ_output="relu"):
        super().__init__()
        self.input_dims, self.output_dim, self.mm_dim, self.activ_output = input_dims, output_dim, mm_dim, activ_output
        self.mcb = CompactBilinearPooling(input_dims[0], input_dims[1], mm_dim)
        self.linear_out = nn.Linear(mm_dim, output_dim)

    def forward(self, x):
        return activate(self.activ_output, self.linear_out(self.mcb(x[0], x[1])))


class MaskedMax(nn.Module):
    """Maximum over the positions a mask keeps (every sample here keeps one)."""
    pool_mode = "max"

    def forward(self, x, mask):
        return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values


def attend(attention, queries, context, context_mask):
    return attention(queries, context, context, key_padding_mask=~context_mask)[0]


class CrossAttention(nn.Module):
    """The cross_attention fusion: nn.MultiheadAttention, then a pooling over the querying positions."""

    def __init__(self, embed, context, heads, pool=MaskedMean):
        super().__init__()
        self.attention = nn.MultiheadAttention(embed, heads, kdim=context, vdim=context, batch_first=True)
        self.pool = pool()

    def forward(self, x, masks):
        return self.pool(attend(self.attention, x[0], x[1], masks[1]), masks[0])


class CoAttention(nn.Module):
    """The co_attention fusion: each input attends to the other (ViLBERT), both mean-pooled, concatenated."""

    def __init__(self, a, b, heads):
        super().__init__()
        self.a_to_b = nn.MultiheadAttention(a, heads, kdim=b, vdim=b, batch_first=True)
        self.b_to_a = nn.MultiheadAttention(b, heads, kdim=a, vdim=a, batch_first=True)

    def forward(self, x, masks):
        pool = MaskedMean()
        return torch.cat([pool(attend(self.a_to_b, x[0], x[1], masks[1]), masks[0]),
                          pool(attend(self.b_to_a, x[1], x[0], masks[0]), masks[1])], 1)


class FusionModel(nn.Module):
    def __init__(self, encoders, fusion, head, output="none"):
        super().__init__()
        self.encoders, self.fusion, self.head, self.output = nn.ModuleDict(encoders), fusion, head, output

    def forward(self, inputs, masks):
        xs = []
        for name, x in inputs.items():
            for m in self.encoders[name] if name in self.encoders else []:
                x = m(x, masks[name]) if hasattr(m, "pool_mode") else m(x)
            xs.append(x)
        reads_masks = isinstance(self.fusion, (CrossAttention, CoAttention))
        z = self.fusion(xs, [masks.get(n) for n in inputs]) if reads_masks else self.fusion(xs)
        z = self.head(z)
        return {"softmax": lambda t: t.softmax(-1), "sigmoid": torch.sigmoid}.get(self.output, lambda t: t)(z)


def main(out_dir):
    torch.manual_seed(7)
    batch, regions, words = 5, 7, 6
    cases = []

    def case(name, model, inputs, masks, dims, fusion=None):
        model.eval()
        with torch.no_grad():
            expected = model(inputs, masks)
        spec = spec_for(model, dims, fusion=fusion)
        export(os.path.join(out_dir, name + ".safetensors"), spec, model.state_dict())
        entry = {"name": name, "model": name + ".safetensors", "inputs": {}, "masks": {}, "expected": name + ".out.npy"}
        for n, x in inputs.items():
            np.save(os.path.join(out_dir, f"{name}.{n}.npy"), x.numpy().astype(np.float32))
            entry["inputs"][n] = f"{name}.{n}.npy"
        for n, m in masks.items():
            np.save(os.path.join(out_dir, f"{name}.{n}.mask.npy"), m.numpy().astype(np.float32))
            entry["masks"][n] = f"{name}.{n}.mask.npy"
        np.save(os.path.join(out_dir, name + ".out.npy"), expected.numpy().astype(np.float32))
        cases.append(entry)

    image = torch.randn(batch, regions, 12)
    text = torch.randn(batch, words, 10)
    image_mask = torch.ones(batch, regions, dtype=torch.bool)
    image_mask[1, 4:] = False
    image_mask[3, 1:] = False
    text_mask = torch.ones(batch, words, dtype=torch.bool)
    text_mask[2, 2:] = False

    mfb = FusionModel({"image": nn.Sequential(MaskedMean(), nn.Linear(12, 9), nn.GELU()),
                       "text": nn.Sequential(MaskedMean(), nn.LayerNorm(10), nn.Dropout(0.2))},
                      MFB([9, 10], 8, mm_dim=5, factor=3, normalize=True),
                      nn.Sequential(nn.Tanh(), nn.Linear(8, 4), nn.Softmax(dim=-1)), output="sigmoid")
    case("mfb", mfb, {"image": image, "text": text}, {"image": image_mask, "text": text_mask},
         [("image", 12, True), ("text", 10, True)])

    tucker = FusionModel({"image": nn.Sequential(MaskedMean())}, Tucker([12, 10], 6, mm_dim=7, normalize=True),
                         nn.Sequential(), output="sigmoid")
    case("tucker", tucker, {"image": image, "text": text[:, 0]}, {"image": image_mask},
         [("image", 12, True), ("text", 10, False)])

    mcb = FusionModel({}, MCB([10, 12], 5, mm_dim=23, activ_output="relu"), nn.Sequential())
    case("mcb", mcb, {"text": text[:, 1], "image": image[:, 2]}, {}, [("text", 10, False), ("image", 12, False)])

    attention = FusionModel({"text": nn.Sequential(nn.Linear(10, 8))}, CrossAttention(8, 12, heads=2),
                            nn.Sequential(nn.Linear(8, 3)), output="softmax")
    case("cross_attention", attention, {"text": text, "image": image}, {"text": text_mask, "image": image_mask},
         [("text", 10, True), ("image", 12, True)], fusion={"type": "cross_attention", "num_heads": 2})

    attention_max = FusionModel({}, CrossAttention(10, 12, heads=5, pool=MaskedMax), nn.Sequential())
    case("cross_attention_max", attention_max, {"text": text, "image": image}, {"text": text_mask, "image": image_mask},
         [("text", 10, True), ("image", 12, True)], fusion={"type": "cross_attention", "num_heads": 5, "pool": "max"})

    co_attention = FusionModel({}, CoAttention(10, 12, heads=2), nn.Sequential(nn.Linear(22, 3)))
    case("co_attention", co_attention, {"text": text, "image": image}, {"text": text_mask, "image": image_mask},
         [("text", 10, True), ("image", 12, True)], fusion={"type": "co_attention", "num_heads": 2})

    # Many narrow regions through one Linear encoder: the Vector backend folds that encoder into the
    # attention's projections (AttentionFusions.foldingPays), here with 40 regions of 6 widened to 16.
    regions_mask = torch.rand(batch, 40) < 0.7
    regions_mask[:, 0] = True
    folded = FusionModel({"text": nn.Sequential(nn.Linear(10, 8)), "image": nn.Sequential(nn.Linear(6, 16))},
                         CrossAttention(8, 16, heads=2), nn.Sequential())
    case("cross_attention_folded", folded, {"text": text, "image": torch.randn(batch, 40, 6)},
         {"text": text_mask, "image": regions_mask}, [("text", 10, True), ("image", 6, True)],
         fusion={"type": "cross_attention", "num_heads": 2})

    # vector inputs of two widths through each remaining block.bootstrap fusion, odd sizes throughout
    pair = {"image": image[:, 5], "text": text[:, 3]}
    pair_dims = [("image", 12, False), ("text", 10, False)]
    square = {"image": image[:, 5, :10], "text": text[:, 3]}  # shared weights need one width
    square_dims = [("image", 10, False), ("text", 10, False)]
    for name, fusion, inputs, dims in [
            ("linear_sum", LinearSum([12, 10], 5, mm_dim=7, activ_input="tanh", normalize=True), pair, pair_dims),
            ("mlb", MLB([12, 10], 5, mm_dim=7), pair, pair_dims),
            ("mfh", MFH([12, 10], 5, mm_dim=4, factor=3, normalize=True), pair, pair_dims),
            ("mutan", Mutan([12, 10], 5, mm_dim=6, rank=3, normalize=True), pair, pair_dims),
            ("mutan_shared", Mutan([10, 10], 5, mm_dim=6, rank=2, shared=True), square, square_dims),
            ("block", Block([12, 10], 5, mm_dim=7, chunks=5, rank=2), pair, pair_dims),  # chunks 2, 2, 1, 1, 1
            ("block_after_cat_shared", Block([10, 10], 5, mm_dim=10, chunks=3, rank=3, shared=True, pos_norm="after_cat"),
             square, square_dims),
            ("block_tucker", BlockTucker([12, 10], 5, mm_dim=9, chunks=2), pair, pair_dims),
            ("concat_mlp", ConcatMLP([12, 10], 5, dimensions=[9, 7], activation="tanh"), pair, pair_dims)]:
        case(name, FusionModel({}, fusion, nn.Sequential()), inputs, {}, dims)

    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main(sys.argv[1])
