#!/usr/bin/env python3
"""Writes MMFuse model files from PyTorch models.

A model file is a safetensors file: the model's state dict under PyTorch's names, and its architecture as
JSON in the metadata under "mmfuse.model" (the form of org.mmfuse.nn.ModelSpec). Java loads it with
Model.load(ops, path); `./mmfuse describe` prints it.

    from export_model import export, spec_for
    spec = spec_for(model, inputs=[("image", 2048, True), ("text", 768, False)])
    export("model.safetensors", spec, model.state_dict())

`model` is laid out as MMFuse expects: `encoders` (an nn.ModuleDict of nn.Sequential, one per input
that has one), `fusion` (a block.bootstrap.pytorch fusion: ConcatMLP, LinearSum, MLB, MFB, MFH, Mutan,
Tucker, Block, BlockTucker, MCB), `head` (an nn.Sequential, optional), and `output` ("none", "softmax" or
"sigmoid", optional). Sequential steps: nn.Linear, nn.LayerNorm, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU
(exact form), nn.Softmax(dim=-1), nn.Dropout, block.bootstrap's MLP, and any module with a `pool_mode` attribute ("mean",
"sum", "max", "first"), which MMFuse runs as its masked pooling. Other fusions (tfn, lmf, gmu,
cross_attention, co_attention, late, bilinear_pool) have no block.bootstrap class: pass their spec
dict as `fusion=`. Only the standard library and torch are needed (no safetensors package).
"""
import json
import struct
import sys

import torch
from torch import nn

_FLOATS = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}
_INTS = {torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> torch.Tensor (floats, or integers such as compact-bilinear hashes)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dtype = _FLOATS.get(t.dtype) or _INTS.get(t.dtype)
        if dtype is None:
            raise ValueError(f"{name}: dtype {t.dtype} has no safetensors name here")
        if t.dtype == torch.bfloat16:
            data = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def _activation_name(a):
    return "none" if not a else a


def fusion_spec(fusion):
    """The spec dict of a block.bootstrap fusion module, from the attributes its constructor keeps."""
    kind = type(fusion).__name__
    f = fusion
    if kind == "ConcatMLP":
        return {"type": "concat_mlp", "output_dim": f.output_dim, "dimensions": list(f.dimensions[:-1]),
                "activation": f.activation}
    if kind in ("LinearSum", "MLB"):
        return {"type": kind.lower().replace("linearsum", "linear_sum"), "output_dim": f.output_dim, "mm_dim": f.mm_dim,
                "activ_input": _activation_name(f.activ_input), "activ_output": _activation_name(f.activ_output),
                "normalize": bool(f.normalize)}
    if kind in ("MFB", "MFH"):
        return {"type": kind.lower(), "output_dim": f.output_dim, "mm_dim": f.mm_dim, "factor": f.factor,
                "activ_input": _activation_name(f.activ_input), "activ_output": _activation_name(f.activ_output),
                "normalize": bool(f.normalize)}
    if kind == "Mutan":
        return {"type": "mutan", "output_dim": f.output_dim, "mm_dim": f.mm_dim, "rank": f.rank, "shared": bool(f.shared),
                "normalize": bool(f.normalize)}
    if kind == "Tucker":
        return {"type": "tucker", "output_dim": f.output_dim, "mm_dim": f.mm_dim, "normalize": bool(f.normalize)}
    if kind == "Block":
        return {"type": "block", "output_dim": f.output_dim, "mm_dim": f.mm_dim, "chunks": f.chunks, "rank": f.rank,
                "shared": bool(f.shared), "pos_norm": f.pos_norm}
    if kind == "BlockTucker":
        return {"type": "block_tucker", "output_dim": f.output_dim, "mm_dim": f.mm_dim, "chunks": f.chunks,
                "shared": bool(f.shared), "pos_norm": f.pos_norm}
    if kind == "MCB":
        return {"type": "mcb", "output_dim": f.output_dim, "mm_dim": f.mm_dim,
                "activ_output": _activation_name(f.activ_output)}
    raise ValueError(f"no spec for a fusion of class {kind}: pass fusion={{...}} to spec_for")


def step_spec(m):
    """The spec dict of one nn.Sequential entry."""
    if isinstance(m, nn.Linear):
        return {"type": "linear", "out": m.out_features, "bias": m.bias is not None}
    if isinstance(m, nn.LayerNorm):
        if len(m.normalized_shape) != 1:
            raise ValueError("only LayerNorm over the last dimension is supported")
        return {"type": "layer_norm", "eps": m.eps, "elementwise_affine": m.elementwise_affine}
    if isinstance(m, nn.GELU):
        if getattr(m, "approximate", "none") != "none":
            raise ValueError("only the exact (erf) GELU is supported")
        return {"type": "gelu"}
    for cls, name in ((nn.ReLU, "relu"), (nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid")):
        if isinstance(m, cls):
            return {"type": name}
    if isinstance(m, nn.Softmax):
        if m.dim not in (-1, None):
            raise ValueError("only a softmax over the last dimension is supported")
        return {"type": "softmax"}
    if isinstance(m, nn.Dropout):
        return {"type": "dropout", "p": m.p}
    if hasattr(m, "pool_mode"):
        return {"type": "pool", "mode": m.pool_mode}
    if type(m).__name__ == "MLP" and hasattr(m, "linears"):
        return {"type": "mlp", "dimensions": [l.out_features for l in m.linears], "activation": m.activation}
    raise ValueError(f"no MMFuse step for {type(m).__name__}")


def spec_for(model, inputs, fusion=None, output=None):
    """The architecture dict of `model`; inputs: (name, dim, is_sequence) in the fusion's input order."""
    spec = {"format": "mmfuse.model", "version": 1,
            "inputs": [{"name": n, "dim": int(d), **({"sequence": True} if s else {})} for n, d, s in inputs]}
    encoders = getattr(model, "encoders", None)
    if encoders is not None and len(encoders) > 0:
        spec["encoders"] = {name: [step_spec(m) for m in seq] for name, seq in encoders.items()}
    spec["fusion"] = fusion if fusion is not None else fusion_spec(model.fusion)
    head = getattr(model, "head", None)
    if head is not None and len(head) > 0:
        spec["head"] = [step_spec(m) for m in head]
    spec["output"] = output or getattr(model, "output", "none")
    return spec


def export(path, spec, state_dict):
    """Writes the model file. Tensors shared under two names (a `shared=True` fusion) are kept once, under
    the first name, as MMFuse expects; non-persistent entries are already absent from a state dict."""
    seen, tensors = set(), {}
    for name, t in state_dict.items():
        key = (t.data_ptr(), t.shape, t.dtype) if t.numel() > 0 else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        tensors[name] = t
    write_safetensors(path, tensors, {"mmfuse.model": json.dumps(spec)})


if __name__ == "__main__":
    sys.exit("import this module: see its docstring")
