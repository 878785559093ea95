"""Loading encoder checkpoints: the reference's published ``.pth`` files and our own pre-training output.

What is accepted (by :func:`load_encoder_state`, ``GNNGraphPred.load_encoder`` / ``from_pretrained``):

* a path to a file written by ``torch.save`` (read with ``weights_only=True`` through
  :func:`gnnpretrain.safeload.load_torch`: only tensors and plain containers; anything else is
  refused unless ``trust_pickle=True``), a ``.safetensors`` file, or an already-loaded object;
* a plain encoder state dict — the reference's files (``chem/*.pth``, ``bio/*.pth``) and our
  ``model.pth`` are this;
* a container dict holding the state dict under ``"encoder"``, ``"model"``, ``"state_dict"``,
  ``"model_state_dict"`` or ``"strategy"`` (our ``checkpoint.pth`` keeps the whole strategy under
  ``"strategy"``, its encoder under the prefix ``gnn.``), optionally with a ``"config"`` dict whose
  ``"encoder"`` entry (or itself) names ``gnn_type``;
* a state dict of a larger module that contains the encoder under a prefix (``gnn.`` for a
  ``GNNGraphPred``, ``module.`` for DistributedDataParallel, ``encoder.``/``model.``).

The reference's key names are ours, so no renaming is needed; :func:`convert_reference_state_dict`
only unwraps containers, strips prefixes, drops non-encoder entries and adds the BatchNorm
``num_batches_tracked`` counters that files from PyTorch < 0.4.1 lack.

The architecture is read from keys and shapes (:func:`describe_state_dict`). One limit: GCN and
GraphSAGE have identical parameters, so a bare state dict cannot tell them apart. The type is then
taken from checkpoint metadata (``config``) if any, else from the file name when it names exactly one
type as a separate word (``graphsage_contextpred.pth``); failing both, either type is accepted.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from gnnpretrain.errors import CorruptFileError
from gnnpretrain.nn.conv import GNN_TYPES
from gnnpretrain.safeload import load_torch

_CONTAINER_KEYS = ("encoder", "model", "state_dict", "model_state_dict", "strategy")
_PREFERRED_PREFIXES = ("", "gnn.", "encoder.", "model.", "module.", "module.gnn.", "model.gnn.", "module.encoder.")
_ENCODER_ROOTS = ("x_embedding1", "x_embedding2", "atom_encoder", "gnns", "batch_norms")
_PREFIX_RE = re.compile(r"^(.*?)gnns\.\d+\.")


# ---------------------------------------------------------------------------------------------
# reading and unwrapping
# ---------------------------------------------------------------------------------------------
DAMAGED_ADVICE = "recreate or re-download it"


def _damaged(path: Path, kind: str, reason: str) -> CorruptFileError:
    """The one-line error every loader gives for a file it cannot read: file, format, why, what to do."""
    reason = (reason.splitlines() or [""])[0][:160]
    return CorruptFileError(f"{path} is a truncated or damaged {kind} ({reason}); {DAMAGED_ADVICE}")


def _safetensors_error(path: Path, exc: BaseException) -> CorruptFileError:
    """A safetensors reader failure as one line; says so when the file is really a torch file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        size = path.stat().st_size
    except OSError:
        head, size = b"", -1
    if size == 0:
        return CorruptFileError(f"{path} is empty (0 bytes): an interrupted write or copy; {DAMAGED_ADVICE}")
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return CorruptFileError(
            f"{path} is a torch file (zip archive or pickle), not safetensors; rename it to .pth to load it as one"
        )
    return _damaged(path, "safetensors file", str(exc) or type(exc).__name__)


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file's header (``{}`` if none).

    Why a function of its own: the hub reads metadata before (or without) the tensors, and a garbage
    header must end in the same one-line :class:`~gnnpretrain.errors.CorruptFileError` as a damaged
    tensor section, not in the safetensors library's own exception type.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own (Rust) error types
        raise _safetensors_error(path, exc) from None


def read_checkpoint_file(path: Path, trust_pickle: bool = False, trust_hint: str | None = None) -> Any:
    """Read an encoder file safely: ``.safetensors``, or a torch file (``.pth`` / ``.pt`` / any other
    name) through :func:`gnnpretrain.safeload.load_torch` (``weights_only=True``; a file that needs full
    unpickling is refused unless ``trust_pickle``). A truncated, empty, garbage-headed or otherwise
    unreadable file of either format is one :class:`~gnnpretrain.errors.CorruptFileError` line.

    Public because every loader (fine-tuning, pre-training, the hub, embeddings) reads encoder files
    through it, so that they all accept the same formats and fail the same way.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"encoder checkpoint not found: {path}; pass the path of a model.pth written by pre-training "
            "or of a reference .pth file"
        )
    if path.suffix == ".safetensors":
        import json

        from safetensors.torch import load_file

        try:
            sd = load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise _safetensors_error(path, exc) from None
        meta = read_safetensors_metadata(path)
        try:  # our files carry the run config (encoder architecture) as JSON metadata
            config = json.loads(meta["config"]) if "config" in meta else None
        except ValueError:
            config = None
        return {"state_dict": sd, "config": config} if isinstance(config, dict) else sd
    hint = {"trust_hint": trust_hint} if trust_hint else {}
    try:
        return load_torch(path, trust_pickle=trust_pickle, what="checkpoint", **hint)
    except CorruptFileError:
        if _looks_like_safetensors(path):
            raise CorruptFileError(
                f"{path} is a safetensors file, not a torch file; rename it to .safetensors to load it as one"
            ) from None
        raise


def _looks_like_safetensors(path: Path) -> bool:
    """An 8-byte little-endian header length that fits the file, then a JSON object (``{``)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8


def check_encoder_tensors(sd: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights no training run can have written: integer or boolean tensors where an encoder
    has floating-point weights, and NaN / infinite values.

    Why: ``load_state_dict`` casts integer tensors into float parameters without a word, and NaN weights
    load fine and only surface epochs later as a NaN loss with advice about the learning rate. Both
    mean a damaged file (or a diverged run), so both are the loaders' one-line damaged-file error.
    ``sd`` is an encoder state dict (:func:`convert_reference_state_dict`); BatchNorm
    ``num_batches_tracked`` counters are integers by design and skipped.
    """
    not_float = [k for k, v in sd.items() if not k.endswith("num_batches_tracked") and not v.is_floating_point()]
    if not_float:
        k = not_float[0]
        raise CorruptFileError(
            f"{source}: {len(not_float)} weight tensor(s) are not floating point (e.g. {k} is {sd[k].dtype}), so "
            f"this is not an encoder's weights or the file is damaged; {DAMAGED_ADVICE}"
        )
    bad = [k for k, v in sd.items() if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CorruptFileError(
            f"{source}: {len(bad)} weight tensor(s) hold NaN or infinite values (e.g. {bad[0]}): the file is damaged "
            f"or the run that wrote it diverged; {DAMAGED_ADVICE} (or use an earlier checkpoint)"
        )


def check_weights_file(path: str | Path, trust_pickle: bool = False, what: str = "checkpoint",
                       trust_hint: str | None = None) -> Any:
    """Read an encoder file the way loading will and refuse it now if it is damaged, unsafe or holds
    impossible weights (:func:`check_encoder_tensors`); returns what was read.

    Scripts call it before any featurizing or training, so a bad ``--input-model-file`` (any format) is
    one line in the first second rather than after the data is built. A file that is readable but not
    an encoder checkpoint passes here; loading it into the model then names what it holds.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    obj = read_checkpoint_file(path, trust_pickle=trust_pickle, trust_hint=trust_hint)
    try:
        sd = convert_reference_state_dict(obj)
    except ValueError:
        return obj
    check_encoder_tensors(sd, str(path))
    return obj


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def _unwrap(obj: Any) -> tuple[Mapping[str, Tensor], dict[str, Any]]:
    """Return ``(tensor state dict, metadata)`` from a state dict or a container dict."""
    if _is_tensor_dict(obj):
        return obj, {}
    if isinstance(obj, Mapping):
        meta: dict[str, Any] = {}
        config = obj.get("config")
        if isinstance(config, Mapping):
            enc = config.get("encoder")
            meta = dict(enc) if isinstance(enc, Mapping) else dict(config)
        for key in _CONTAINER_KEYS:
            if _is_tensor_dict(obj.get(key)):
                return obj[key], meta
    found = sorted(obj.keys())[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(
        f"not an encoder checkpoint: expected a state dict (name → tensor) or a dict with one under "
        f"{list(_CONTAINER_KEYS)}, found {found}"
    )


def _encoder_prefix(sd: Mapping[str, Tensor]) -> str:
    prefixes = {m.group(1) for k in sd for m in [_PREFIX_RE.match(k)] if m}
    if not prefixes:
        raise ValueError(
            "no encoder layers ('gnns.<i>.…' keys) in this state dict; first keys: " + ", ".join(list(sd)[:8])
        )
    if len(prefixes) == 1:
        return next(iter(prefixes))
    for p in _PREFERRED_PREFIXES:
        if p in prefixes:
            return p
    raise ValueError(f"state dict holds several encoders (prefixes {sorted(prefixes)}); pass the one to load")


def convert_reference_state_dict(state_dict: Any) -> "OrderedDict[str, Tensor]":
    """Return the encoder-only state dict, in our (= the reference's) key names.

    Unwraps containers, strips a module prefix (``gnn.``, ``module.``, ...), drops non-encoder keys
    (heads, pooling), and fills in BatchNorm ``num_batches_tracked`` where an old file lacks it, so
    that ``GNN.load_state_dict(..., strict=True)`` accepts every reference checkpoint.
    """
    sd, _ = _unwrap(state_dict)
    prefix = _encoder_prefix(sd)
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name.split(".", 1)[0] in _ENCODER_ROOTS:
            out[name] = value
    for key in list(out):
        if key.endswith(".running_var"):
            counter = key[: -len("running_var")] + "num_batches_tracked"
            out.setdefault(counter, torch.tensor(0, dtype=torch.long))
    return out


# ---------------------------------------------------------------------------------------------
# describing
# ---------------------------------------------------------------------------------------------
def describe_state_dict(state_dict: Any) -> dict[str, Any]:
    """Infer the encoder architecture from keys and shapes.

    Returns ``{"gnn_type", "gnn_types", "num_layer", "emb_dim", "input", "heads"}`` where
    ``gnn_types`` lists every type the parameters fit (``("gcn", "graphsage")`` for those two, which
    share one layout) and ``gnn_type`` is that list joined by ``"/"``; ``heads`` is None except for GAT.
    Metadata in a container dict (``config["encoder"]["gnn_type"]``) settles the GCN/GraphSAGE case.
    """
    _, meta = _unwrap(state_dict)
    sd = convert_reference_state_dict(state_dict)

    if "x_embedding1.weight" in sd:
        input_kind = "reference"
    elif any(k.startswith("atom_encoder.") for k in sd):
        input_kind = "ogb"
    elif "gnns.0.input_node_embeddings.weight" in sd:
        input_kind = "bio"
    else:
        raise ValueError(
            "cannot tell the input encoder of this checkpoint (no x_embedding1, atom_encoder or "
            "gnns.0.input_node_embeddings keys)"
        )

    layers = {int(k.split(".")[1]) for k in sd if k.startswith("gnns.")}
    num_layer = max(layers) + 1
    if layers != set(range(num_layer)):
        raise ValueError(f"checkpoint has layers {sorted(layers)}; expected 0..{num_layer - 1}")

    heads = None
    if "gnns.0.mlp.0.weight" in sd:
        gnn_types: tuple[str, ...] = ("gin",)
        last = max(int(k.split(".")[3]) for k in sd if k.startswith("gnns.0.mlp.") and k.endswith(".weight"))
        emb_dim = int(sd[f"gnns.0.mlp.{last}.weight"].shape[0])
    elif "gnns.0.weight_linear.weight" in sd and "gnns.0.att" in sd:
        gnn_types = ("gat",)
        emb_dim = int(sd["gnns.0.bias"].shape[0])
        heads = int(sd["gnns.0.att"].shape[1])
    elif "gnns.0.linear.weight" in sd:
        gnn_types = ("gcn", "graphsage")
        emb_dim = int(sd["gnns.0.linear.weight"].shape[0])
    else:
        raise ValueError("cannot tell the layer type of this checkpoint: gnns.0 has keys " + ", ".join(k for k in sd if k.startswith("gnns.0.")))

    hinted = meta.get("gnn_type")
    if isinstance(hinted, str) and hinted in gnn_types:
        gnn_types = (hinted,)
    return {
        "gnn_type": "/".join(gnn_types),
        "gnn_types": gnn_types,
        "num_layer": num_layer,
        "emb_dim": emb_dim,
        "input": input_kind,
        "heads": heads,
    }


def name_hint(path: Path | None) -> str | None:
    """The one GNN type a file name mentions as a separate word, if exactly one (``graphsage_x.pth``).

    Public because the hub settles GCN vs GraphSAGE (identical parameter layouts) the same way."""
    if path is None:
        return None
    words = set(re.split(r"[^a-z0-9]+", path.stem.lower()))
    named = [t for t in GNN_TYPES if t in words]
    return named[0] if len(named) == 1 else None


def _model_spec(gnn: nn.Module) -> dict[str, Any]:
    conv0 = gnn.gnns[0]
    return {
        "gnn_type": gnn.gnn_type,
        "num_layer": gnn.num_layer,
        "emb_dim": gnn.emb_dim,
        "input": gnn.input,
        "heads": getattr(conv0, "heads", None),
    }


def _fmt(spec: Mapping[str, Any]) -> str:
    heads = f", {spec['heads']} heads" if spec.get("heads") else ""
    return f"a {spec['gnn_type']} encoder with emb_dim {spec['emb_dim']} / {spec['num_layer']} layers, input={spec['input']!r}{heads}"


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def load_encoder_state(
    gnn: nn.Module, state_dict_or_path: Any, strict: bool = True, trust_pickle: bool = False
) -> dict[str, Any]:
    """Load a checkpoint into a :class:`~gnnpretrain.nn.GNN`, checking the architecture first.

    Raises one ``ValueError`` naming both architectures when the checkpoint is another gnn_type,
    emb_dim, num_layer, input kind or head count (instead of PyTorch's long list of key/shape
    mismatches). Returns the checkpoint's description (see :func:`describe_state_dict`) plus
    ``missing_keys`` / ``unexpected_keys`` (empty when ``strict``).

    A path is read with ``weights_only=True``; a file holding other Python objects raises
    :class:`~gnnpretrain.errors.UnsafeFileError` unless ``trust_pickle=True`` (only for files you trust).
    """
    path = None
    obj = state_dict_or_path
    if isinstance(state_dict_or_path, (str, Path)):
        path = Path(state_dict_or_path)
        obj = read_checkpoint_file(path, trust_pickle=trust_pickle)
    source = str(path) if path is not None else "the given state dict"

    spec = describe_state_dict(obj)
    hint = name_hint(path)
    if len(spec["gnn_types"]) > 1 and hint in spec["gnn_types"]:
        spec["gnn_types"] = (hint,)
        spec["gnn_type"] = hint

    model = _model_spec(gnn)
    problems = []
    if model["gnn_type"] not in spec["gnn_types"]:
        problems.append("gnn_type")
    for field in ("emb_dim", "num_layer", "input", "heads"):
        if model[field] != spec[field]:
            problems.append(field)
    if problems:
        wanted = ", ".join(
            f"{f}={spec['gnn_types'][0] if f == 'gnn_type' else spec[f]!r}" for f in problems if f != "heads"
        )
        raise ValueError(
            f"checkpoint {source} is {_fmt(spec)}; this model is {_fmt(model)} "
            f"(mismatch in {', '.join(problems)}). Build the model with {wanted} to load it."
        )

    sd = convert_reference_state_dict(obj)
    check_encoder_tensors(sd, f"checkpoint {source}")
    try:
        result = gnn.load_state_dict(sd, strict=strict)
    except RuntimeError as err:  # same architecture by the checks above, but keys still differ
        raise ValueError(f"checkpoint {source} ({_fmt(spec)}) does not fit this model: {err}") from None
    spec["missing_keys"] = list(result.missing_keys)
    spec["unexpected_keys"] = list(result.unexpected_keys)
    return spec
