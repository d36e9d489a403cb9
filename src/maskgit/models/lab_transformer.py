"""Transformers trained with the lab's own code: map their attention names onto ours.

A lab transformer's state dict matches `BidirectionalTransformer` except inside each block's
attention, where every submission names its four linear layers its own way (`q/k/v/o`,
`W_q/W_k/W_v/W_o`, `query/key/value/out_proj`, `to_q/.../to_out`, ...). Each block must hold four
(dim x dim) linear layers with bias; their roles are read from the names (a query/key/value word wins
over a projection word: `q_proj` is the query), three found roles leave the fourth to the output, and
`attention_names` (query, key, value, output, in that order) settles any name no rule can read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import Tensor

from maskgit.errors import CheckpointError

ROLES = ("query", "key", "value", "out")
_WORDS = {
    "query": {"q", "query", "queries", "wq", "qlinear", "linearq"},
    "key": {"k", "key", "keys", "wk", "klinear", "lineark"},
    "value": {"v", "value", "values", "wv", "vlinear", "linearv"},
    "out": {"o", "out", "output", "proj", "projection", "wo", "fc", "dense", "olinear", "linearo"},
}
_OURS = ("LayerNorm1.", "LayerNorm2.", "MLP.", "dropout.")
_WRAPPERS = ("state_dict", "model_state_dict", "model", "transformer")


def _words(name: str) -> list[str]:
    """`fc_out` -> [fc, out]; `outProj` -> [out, proj]; `Wq` -> [wq]."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def role_of(name: str) -> str | None:
    """The role a layer's own name announces, or None."""
    words = set(_words(name))
    found = [r for r in ROLES[:3] if words & _WORDS[r]]  # query/key/value beat projection words
    if len(found) == 1:
        return found[0]
    if not found and words & _WORDS["out"]:
        return "out"
    return None


def lab_state_dict(obj: Mapping[str, object]) -> dict[str, Tensor]:
    """The transformer's tensors in a file: plain, wrapped, or inside the lab's whole MaskGit."""
    for key in _WRAPPERS:
        if isinstance(obj.get(key), Mapping):
            return lab_state_dict(obj[key])  # type: ignore[arg-type]
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if any(k.startswith("transformer.") for k in state):  # the lab's whole MaskGit module
        state = {k[len("transformer."):]: v for k, v in state.items() if k.startswith("transformer.")}
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _block_layers(state: Mapping[str, Tensor], block: str) -> dict[str, dict[str, Tensor]]:
    """Layer path (below `blocks.N.`) -> {weight, bias} for every tensor that is not ours."""
    layers: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        rest = key[len(block):]
        if not key.startswith(block) or rest.startswith(_OURS):
            continue
        path, _, kind = rest.rpartition(".")
        layers.setdefault(path, {})[kind] = value
    return layers


def _assign(paths: list[str], attention_names: Sequence[str] | None, where: str) -> dict[str, str]:
    """Our role for each of the four layer paths."""
    if attention_names:
        by_name = {p.rpartition(".")[2]: p for p in paths}
        if sorted(by_name) != sorted(attention_names):
            raise CheckpointError(f"attention_names {list(attention_names)} do not match the layers in "
                                  f"{where}: {', '.join(sorted(by_name))}")
        return {by_name[n]: r for n, r in zip(attention_names, ROLES, strict=True)}
    roles = {p: role_of(p.rpartition(".")[2]) for p in paths}
    named = [r for r in roles.values() if r]
    unknown = [p for p, r in roles.items() if r is None]
    if len(set(named)) == len(named) and len(unknown) == 1 and set(named) == set(ROLES[:3]):
        roles[unknown[0]] = "out"
    if sorted(r or "" for r in roles.values()) != sorted(ROLES):
        raise CheckpointError(
            f"cannot tell query/key/value/output apart in {where} ({', '.join(paths)}); name them in that "
            "order with lab_attention_names=[q,k,v,o]")
    return {p: r for p, r in roles.items() if r}


def convert_lab_state_dict(obj: Mapping[str, object], num_blocks: int,
                           attention_names: Sequence[str] | None = None, source: str = "file"
                           ) -> dict[str, Tensor]:
    """Our `BidirectionalTransformer` state dict from a lab transformer file's content."""
    state = lab_state_dict(obj)
    converted = {k: v for k, v in state.items() if not k.startswith("blocks.")}
    for i in range(num_blocks):
        block = f"blocks.{i}."
        converted.update({k: v for k, v in state.items() if k.startswith(block) and
                          k[len(block):].startswith(_OURS)})
        layers = _block_layers(state, block)
        if not layers:
            continue  # a missing block is reported by the strict load
        where = f"{source} block {i}"
        bad = [p for p, t in layers.items() if set(t) != {"weight", "bias"} or t["weight"].ndim != 2]
        if len(layers) != 4 or bad:
            found = ", ".join(f"{p}({'+'.join(sorted(t))})" for p, t in layers.items())
            raise CheckpointError(f"{where}: expected four linear attention layers (weight + bias), "
                                  f"found {found}")
        for path, role in _assign(sorted(layers), attention_names, where).items():
            for kind, tensor in layers[path].items():
                converted[f"{block}Attention.{role}.{kind}"] = tensor
    extra = re.compile(rf"blocks\.(?!(?:{'|'.join(map(str, range(num_blocks)))})\.)")
    converted.update({k: v for k, v in state.items() if extra.match(k)})  # reported by the strict load
    return converted
