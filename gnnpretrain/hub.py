"""Published pre-trained encoders by name, and any encoder file by path, in one call.

``hub.load("gin_supervised_contextpred")`` returns a ready :class:`gnnpretrain.nn.GNN` (eval mode) built
with the architecture the weights were trained with; ``hub.load("path/to/model.pth")`` does the same for
a local file. ``hub.list()`` lists the registry.

The registry holds the weights released with the paper's code (snap-stanford/pretrain-gnns, MIT):
``chem/model_gin/*.pth`` (GIN, 9 strategies), ``chem/model_architecture/*.pth`` (GCN/GraphSAGE/GAT),
``bio/model_gin/*.pth`` and ``bio/model_architecture/*.pth``. Bio names start with ``bio_``.

Where a named file comes from, in order:

1. the reference-checkpoint folder (:func:`gnnpretrain.paths.checkpoints_root`: ``$GNNPRETRAIN_CHECKPOINTS``
   or ``../shared/reference-checkpoints`` beside the checkout), as ``<domain>/<file name>`` — offline;
2. the cache (``<cache>/hub/<domain>/<file name>``), from an earlier download;
3. a download from the reference repository (progress bar), checked against the SHA-256 in the registry.
   For files whose hash is not in the registry, the hash seen at the first download is recorded in
   ``<cache>/hub/sha256.json`` and every later download is compared with it. A mismatch is refused and
   the file removed. Without a network the error names the address and the folder to put the file in.

Safety: files are read with ``torch.load(weights_only=True)`` only — never unpickled beyond tensors — so a
file that needs full unpickling is refused here (as everywhere in the library: ``gnnpretrain.safeload``;
``load_encoder_state(..., trust_pickle=True)`` is the explicit opt-in for files you trust).

Metadata for local files (so ``load(path)`` needs no flags): a ``.safetensors`` file's metadata
(``encoder`` / ``config`` JSON entries), else the ``config.json`` that ``scripts/pretrain.py`` writes
beside ``model.pth``, else the architecture is read from the state dict's keys and shapes
(:func:`gnnpretrain.nn.describe_state_dict`) with the file name settling GCN vs GraphSAGE.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from gnnpretrain.errors import CorruptFileError, UserError
from gnnpretrain.paths import CHECKPOINTS_ENV, cache_dir, checkpoints_root
from gnnpretrain.utils import sha256_file

__all__ = [
    "HubEntry",
    "REGISTRY",
    "BASE_URL",
    "CheckpointUnavailableError",
    "ChecksumMismatchError",
    "list_models",
    "list",
    "get_entry",
    "resolve",
    "load",
    "load_state_dict",
    "read_metadata",
    "architecture_of",
]

BASE_URL = "https://raw.githubusercontent.com/snap-stanford/pretrain-gnns/master"
HASHES_FILE = "sha256.json"


class CheckpointUnavailableError(FileNotFoundError):
    """A registered checkpoint is neither on disk nor downloadable (offline, address gone)."""


class ChecksumMismatchError(ValueError):
    """A file's SHA-256 differs from the registry's (or from the one recorded at its first download)."""


@dataclass(frozen=True)
class HubEntry:
    """One published encoder: what it is, where it lives, how to build the network that loads it."""

    name: str
    domain: str
    gnn_type: str
    strategy: str
    path: str  # inside the reference repository, e.g. "chem/model_gin/contextpred.pth"
    description: str
    size: int | None = None
    sha256: str | None = None
    num_layer: int = 5
    emb_dim: int = 300
    featurizer: str = "reference"
    architecture_extra: dict[str, Any] = field(default_factory=dict)
    base_url: str = BASE_URL  # a mirror (or a local server in tests) may stand in for the repository

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.path}"

    @property
    def filename(self) -> str:
        """The name in a local folder: ``<domain>/<filename>`` (GIN files get their ``gin_`` prefix)."""
        base = self.path.rsplit("/", 1)[-1]
        return base if base.startswith(f"{self.gnn_type}_") else f"{self.gnn_type}_{base}"

    @property
    def architecture(self) -> dict[str, Any]:
        """Keyword arguments of :class:`gnnpretrain.nn.GNN` that build the matching encoder."""
        return {
            "num_layer": self.num_layer, "emb_dim": self.emb_dim, "JK": "last", "drop_ratio": 0.0,
            "gnn_type": self.gnn_type, "input": "bio" if self.domain == "bio" else self.featurizer,
            **self.architecture_extra,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "url": self.url, "filename": self.filename, "architecture": self.architecture}


_STRATEGY_TEXT = {
    "contextpred": "context prediction (self-supervised, node level)",
    "infomax": "deep graph infomax (self-supervised, node level)",
    "edgepred": "edge prediction (self-supervised, node level)",
    "masking": "attribute masking (self-supervised, node level)",
    "supervised": "graph-level supervised pre-training only",
}


def _describe(domain: str, gnn_type: str, strategy: str) -> str:
    corpus = (
        "ZINC15 2M molecules (self-supervised) / ChEMBL 456K molecules x 1,310 tasks (supervised)"
        if domain == "chem" else "395K unlabelled PPI ego-networks / 88K labelled (40 GO tasks, supervised)"
    )
    if strategy.startswith("supervised_"):
        text = f"{_STRATEGY_TEXT[strategy[len('supervised_'):]]}, then graph-level supervised"
    else:
        text = _STRATEGY_TEXT[strategy]
    return f"{domain} {gnn_type.upper() if gnn_type != 'graphsage' else 'GraphSAGE'}, 5x300: {text}; {corpus} (Hu et al. 2020)"


# SHA-256 and sizes measured on the copies in ../shared/reference-checkpoints (the files of the reference
# repository); files not available there have no hash yet and are pinned at their first download.
_KNOWN: dict[str, tuple[int, str]] = {
    "chem/gat_contextpred.pth": (3931687, "de030068b3cb8b5d2d4da09fd377fac0a111f401904d3806104874e058bc4af8"),
    "chem/gat_supervised.pth": (3931687, "62edee2aaf82c82e24236fe0124d93d975c4cb7b5e01280bc63050c606f64541"),
    "chem/gat_supervised_contextpred.pth": (3931687, "ad433c867915b166fbc98154d763eaa83fa53cd60bf3a3b0c2086a0ef7dc684e"),
    "chem/gcn_contextpred.pth": (2040025, "ff1d9c5e5c198b8faf8af576c303808853e3f55a52aed7ae27964e3c8635a81a"),
    "chem/gcn_supervised.pth": (2040025, "8fb73bcce4991d6778e7309474505fcf2e5ff69f5debf166a5e6b91edf3f1493"),
    "chem/gcn_supervised_contextpred.pth": (2040025, "49cf0465e623c14fc802cdc67b47cbb78326f43fc7991afe6a14e1ff471755d5"),
    "chem/graphsage_contextpred.pth": (2040025, "63976e7795ae3ab46fc97c40a047ce1c4b13e243c2f8ef9125e78c7fabee9279"),
    "chem/graphsage_supervised.pth": (2040025, "9e2572f66e4e3c6a21b1e897c642b545abc8c6cbab1d56888c37f963b0c6da4b"),
    "chem/graphsage_supervised_contextpred.pth": (2040025, "aca7caa7c15a0e478b57d5d2cca84d8bda6d4500614bd96486b84739bff3929b"),
    "bio/gat_masking.pth": (3769706, "e66e1a7b3dee10643f94fab3a6c4d95cde5158b21996474157cbfbb4cf73ed33"),
    "bio/gat_supervised_masking.pth": (3769706, "ff64776c575aa57eaf4e13b5ac6f1a2724ef2feef9815cbe9430ca488b31ce78"),
    "bio/gcn_masking.pth": (1872071, "8eafe626642a8edd59f8455f9ba15666390fd20eb08206cdcec007f37e035a82"),
    "bio/gcn_supervised_masking.pth": (1872071, "0335e9ec597c0c96f666400b01ba6c0095d5168734187f3196a48a1ab03bfba4"),
    "bio/graphsage_masking.pth": (1872071, "662f87cbbd38fae3db538df8bc9b61160278c669545baf70faa1a6d0737cde91"),
    "bio/graphsage_supervised_masking.pth": (1872071, "d03101b1a88838eb1be4715f41a4871a4460615bc58976d78cca7a04d69e55ff"),
}

_GIN_STRATEGIES = (
    "contextpred", "infomax", "edgepred", "masking", "supervised",
    "supervised_contextpred", "supervised_infomax", "supervised_edgepred", "supervised_masking",
)
_ARCH_STRATEGIES = {"chem": ("contextpred", "supervised", "supervised_contextpred"), "bio": ("masking", "supervised_masking")}


def _build_registry() -> dict[str, HubEntry]:
    entries: builtins.list[HubEntry] = []
    for domain in ("chem", "bio"):
        prefix = "" if domain == "chem" else "bio_"
        for strategy in _GIN_STRATEGIES:
            entries.append(HubEntry(
                name=f"{prefix}gin_{strategy}", domain=domain, gnn_type="gin", strategy=strategy,
                path=f"{domain}/model_gin/{strategy}.pth", description=_describe(domain, "gin", strategy),
            ))
        for gnn_type in ("gcn", "graphsage", "gat"):
            for strategy in _ARCH_STRATEGIES[domain]:
                size, sha = _KNOWN.get(f"{domain}/{gnn_type}_{strategy}.pth", (None, None))
                entries.append(HubEntry(
                    name=f"{prefix}{gnn_type}_{strategy}", domain=domain, gnn_type=gnn_type, strategy=strategy,
                    path=f"{domain}/model_architecture/{gnn_type}_{strategy}.pth",
                    description=_describe(domain, gnn_type, strategy), size=size, sha256=sha,
                ))
    return {e.name: e for e in entries}


REGISTRY: dict[str, HubEntry] = _build_registry()

# Later methods' released GIN 5x300 chem encoders (the pretrain-gnns architecture and key names), from
# their own repositories. SHA-256 not recorded yet (the files were not available here): pinned at the
# first download; the git blob ids below identify the published bytes (`git ls-tree` of those repositories).
_FOLLOW_UP_RELEASES = (
    HubEntry(
        name="gin_graphcl", domain="chem", gnn_type="gin", strategy="graphcl",
        path="transferLearning_MoleculeNet_PPI/chem/models_graphcl/graphcl_80.pth",
        base_url="https://raw.githubusercontent.com/Shen-Lab/GraphCL/master",
        description="chem GIN, 5x300: GraphCL contrastive pre-training (random dropN/subgraph views, ratio 0.2, "
                    "NT-Xent T 0.1), epoch 80 of the official run, the checkpoint its fine-tuning script uses; "
                    "ZINC15 2M molecules (You et al. 2020; git blob 72522e83)",
    ),
    HubEntry(
        name="gin_graphmae", domain="chem", gnn_type="gin", strategy="graphmae",
        path="chem/init_weights/pretrained.pth",
        base_url="https://raw.githubusercontent.com/THUDM/GraphMAE/main",
        description="chem GIN, 5x300: GraphMAE masked-autoencoder pre-training (mask 25%, re-masked GIN decoder, "
                    "scaled cosine error); ZINC15 2M molecules (Hou et al. 2022; the repository's "
                    "init_weights/pretrained.pth, local name gin_pretrained.pth; git blob 4a5ead96)",
    ),
    HubEntry(
        name="gin_molebert", domain="chem", gnn_type="gin", strategy="supervised_masking",
        path="model_gin/Mole-BERT.pth",
        base_url="https://raw.githubusercontent.com/junxia97/Mole-BERT/main",
        description="NOT a Mole-BERT model: the file junxia97/Mole-BERT publishes as model_gin/Mole-BERT.pth has "
                    "the same git blob id (1f8de843) as pretrain-gnns' chem/model_gin/supervised_masking.pth, i.e. "
                    "it is byte for byte gin_supervised_masking (attribute masking, then graph-level supervised; "
                    "Hu et al. 2020). Listed so that the name resolves to what it really is",
    ),
)
REGISTRY.update({e.name: e for e in _FOLLOW_UP_RELEASES})


def list_models(domain: str | None = None) -> builtins.list[HubEntry]:
    """Registered encoders (optionally of one domain), in registry order."""
    return [e for e in REGISTRY.values() if domain is None or e.domain == domain]


def get_entry(name: str) -> HubEntry:
    """The registry entry of ``name``; a clear error listing the names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown pre-trained model {name!r}; known names: {', '.join(REGISTRY)} (or pass a file path)")
    return REGISTRY[name]


# ------------------------------------------------------------------------------------------ files
def _hub_cache(cache: str | os.PathLike | None) -> Path:
    return cache_dir(cache) / "hub"


def _recorded_hashes(cache: str | os.PathLike | None) -> dict[str, str]:
    path = _hub_cache(cache) / HASHES_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError, TypeError):
        raise ValueError(f"{path} is not a valid hash record (JSON object url -> sha256); fix or delete it") from None


def _record_hash(cache: str | os.PathLike | None, url: str, sha: str) -> None:
    from gnnpretrain.utils import atomic_write_json

    hashes = _recorded_hashes(cache)
    hashes[url] = sha
    atomic_write_json(_hub_cache(cache) / HASHES_FILE, dict(sorted(hashes.items())))


def expected_sha256(entry: HubEntry, cache: str | os.PathLike | None = None) -> str | None:
    """The registry's hash, else the one recorded at the first download, else ``None``."""
    return entry.sha256 or _recorded_hashes(cache).get(entry.url)


def _local_candidates(entry: HubEntry, root: Path) -> builtins.list[Path]:
    # <root>/<domain>/<filename> is the shared layout; the reference repository's own layout also works
    return [root / entry.domain / entry.filename, root / entry.path]


def _download(entry: HubEntry, dest: Path, cache: str | os.PathLike | None, progress: bool, timeout: float,
              root: Path) -> None:
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    folder = root / entry.domain
    try:
        with urllib.request.urlopen(entry.url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or entry.size
            h = hashlib.sha256()
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.filename, disable=not progress,
                      leave=False, dynamic_ncols=True) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        tmp.unlink(missing_ok=True)
        reason = getattr(err, "reason", err)
        raise CheckpointUnavailableError(
            f"cannot download pre-trained model {entry.name!r} from {entry.url} ({reason}). Without network "
            f"access, download that file elsewhere and put it at {folder / entry.filename} (or set "
            f"${CHECKPOINTS_ENV} to a folder holding {entry.domain}/{entry.filename})."
        ) from None
    got = h.hexdigest()
    want = expected_sha256(entry, cache)
    if want is not None and got != want:
        tmp.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"download of {entry.url} has SHA-256 {got}, expected {want}; the file was removed. The address "
            f"may serve another file now; check it, or put a verified copy at {folder / entry.filename}."
        )
    if want is None:
        _record_hash(cache, entry.url, got)
    os.replace(tmp, dest)


def resolve(
    name: str,
    cache: str | os.PathLike | None = None,
    checkpoints: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """The local path of registered model ``name``: shared folder, else cache, else downloaded now.

    Files with a known hash are verified wherever they come from (a corrupt or substituted file is
    refused with :class:`ChecksumMismatchError`; a refused download is deleted).
    """
    entry = get_entry(name)
    root = checkpoints_root(checkpoints)
    cached = _hub_cache(cache) / entry.domain / entry.filename
    for path in (*_local_candidates(entry, root), cached):
        if path.is_file():
            want = expected_sha256(entry, cache)
            if want is not None:
                got = sha256_file(path)
                if got != want:
                    raise ChecksumMismatchError(
                        f"{path} has SHA-256 {got}, but {entry.name} ({entry.url}) is {want}; "
                        "replace the file with the published one or delete it to download again."
                    )
            return path
    if not download:
        raise CheckpointUnavailableError(
            f"pre-trained model {entry.name!r} is not on disk; download {entry.url} and put it at "
            f"{root / entry.domain / entry.filename} (or allow the download)."
        )
    _download(entry, cached, cache, progress, timeout, root)
    return cached


# --------------------------------------------------------------------------------------- metadata
def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Architecture and provenance recorded with a local encoder file (``{}`` if there is none).

    Returns a dict with (when known) ``encoder`` (``GNN`` keyword arguments), ``strategy``, ``domain``,
    ``featurizer``, ``corpus`` (the ``data`` section of a pre-training run), ``epochs`` and ``source``
    (where the metadata was read from).
    """
    path = Path(path)
    raw: Mapping[str, Any] | None = None
    source = None
    if path.suffix == ".safetensors":
        from gnnpretrain.nn.checkpoint import read_safetensors_metadata

        meta = read_safetensors_metadata(path)  # a garbage header: one CorruptFileError line, as for the tensors
        parsed: dict[str, Any] = {}
        for key, value in meta.items():
            try:
                parsed[key] = json.loads(value)
            except (json.JSONDecodeError, TypeError):
                parsed[key] = value
        raw = parsed.get("config") if isinstance(parsed.get("config"), Mapping) else parsed
        source = f"{path} (safetensors metadata)"
    if not raw or "encoder" not in raw:
        sidecar = path.with_name("config.json")
        if sidecar.is_file():
            try:
                cfg = json.loads(sidecar.read_text())
            except json.JSONDecodeError:
                cfg = {}
            recorded = Path(str(cfg.get("output_model_file", ""))).name
            # the sidecar describes this file if pre-training wrote it here (its default name or the recorded one)
            if isinstance(cfg.get("encoder"), Mapping) and path.name in ("model.pth", recorded):
                raw, source = cfg, str(sidecar)
    if not raw:
        return {}
    encoder = raw.get("encoder") if isinstance(raw.get("encoder"), Mapping) else None
    training = raw.get("training") if isinstance(raw.get("training"), Mapping) else {}
    data = raw.get("data")
    featurizer = raw.get("featurizer") or (data.get("featurizer") if isinstance(data, Mapping) else None)
    if featurizer is None and encoder is not None and encoder.get("input") in ("reference", "ogb"):
        featurizer = encoder["input"]
    return {
        "encoder": dict(encoder) if encoder is not None else None,
        "strategy": raw.get("strategy"),
        "domain": raw.get("domain"),
        "featurizer": featurizer,
        "corpus": data,
        "epochs": raw.get("epochs", training.get("epochs")),
        "source": source,
    }


# ------------------------------------------------------------------------------------------ loading
def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of an encoder file, never unpickling anything but weights (``weights_only=True``).

    Damaged files of every accepted format (``.pth`` / ``.pt`` / ``.safetensors``: truncated, empty, a
    garbage header, integer or NaN weights) are one :class:`~gnnpretrain.errors.CorruptFileError` line.
    """
    from gnnpretrain.nn.checkpoint import check_weights_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder file not found: {path}")
    obj = check_weights_file(path, what="encoder file", trust_hint=(
        "The hub loads weights only and refuses to unpickle it: load the encoder state dict (model.pth or "
        "model.safetensors) instead of checkpoint.pth."))
    # our .safetensors files come back with their run config; the hub reads that metadata separately
    return obj["state_dict"] if path.suffix == ".safetensors" and "state_dict" in obj else obj


def _architecture_from_weights(sd: Any, path: Path | None) -> dict[str, Any]:
    from gnnpretrain.nn import describe_state_dict
    from gnnpretrain.nn.checkpoint import name_hint

    spec = describe_state_dict(sd)
    hint = name_hint(path)
    gnn_type = hint if hint in spec["gnn_types"] else spec["gnn_types"][0]
    return {"num_layer": spec["num_layer"], "emb_dim": spec["emb_dim"], "JK": "last", "drop_ratio": 0.0,
            "gnn_type": gnn_type, "input": spec["input"]}


def architecture_of(path: str | os.PathLike) -> dict[str, Any]:
    """``GNN`` keyword arguments of a local encoder file (metadata, else weights + file name); ``{}`` when the
    file cannot be read safely or is damaged (the caller then keeps its defaults, and loading the file
    reports the real problem as one line: :class:`~gnnpretrain.errors.UnsafeFileError` with the opt-in,
    or :class:`~gnnpretrain.errors.CorruptFileError`). Never raises the safetensors library's own errors."""
    path = Path(path)
    try:
        meta = read_metadata(path)
        if meta.get("encoder"):
            return dict(meta["encoder"])
        return _architecture_from_weights(load_state_dict(path), path)
    except (ValueError, KeyError, RuntimeError, OSError):
        return {}


def _build(arch: Mapping[str, Any], sd: Any, source: str) -> torch.nn.Module:
    from gnnpretrain.nn import GNN, load_encoder_state

    keys = ("num_layer", "emb_dim", "JK", "drop_ratio", "gnn_type", "input")
    gnn = GNN(**{k: arch[k] for k in keys if k in arch})
    try:
        load_encoder_state(gnn, sd)
    except UserError:  # damaged weights: the message already names the file and the fix
        raise
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    return gnn.eval()


def load(
    name_or_path: str | os.PathLike,
    cache: str | os.PathLike | None = None,
    checkpoints: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
) -> torch.nn.Module:
    """A pre-trained :class:`gnnpretrain.nn.GNN` (eval mode) from a registry name or a local file.

    The returned encoder carries ``.hub_info`` (name or path, domain, strategy, featurizer, file), which
    :func:`gnnpretrain.embed` uses to featurize molecules the way the encoder was trained.
    """
    key = os.fspath(name_or_path)
    if key in REGISTRY:
        entry = REGISTRY[key]
        path = resolve(key, cache=cache, checkpoints=checkpoints, download=download, progress=progress)
        try:
            sd = load_state_dict(path)
        except CorruptFileError as err:  # e.g. a cached download cut short, for a file with no recorded hash
            raise CorruptFileError(f"{err} (delete {path}: hub.load({entry.name!r}) then downloads it again)") from None
        gnn = _build(entry.architecture, sd, f"{entry.name} ({path})")
        gnn.hub_info = {"name": entry.name, "domain": entry.domain, "strategy": entry.strategy,
                        "featurizer": None if entry.domain == "bio" else entry.featurizer, "path": str(path),
                        "url": entry.url}
        return gnn
    path = Path(key).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{key!r} is neither a registered model nor an existing file. Registered: {', '.join(REGISTRY)}"
        )
    sd = load_state_dict(path)
    meta = read_metadata(path)
    arch = meta.get("encoder") or _architecture_from_weights(sd, path)
    gnn = _build(arch, sd, str(path))
    featurizer = meta.get("featurizer") or (gnn.input if gnn.input in ("reference", "ogb") else None)
    gnn.hub_info = {"name": None, "domain": meta.get("domain") or ("bio" if gnn.input == "bio" else "chem"),
                    "strategy": meta.get("strategy"), "featurizer": featurizer, "path": str(path),
                    "metadata_source": meta.get("source")}
    return gnn


# ``hub.list()`` reads naturally; defined last so the builtin stays usable above
list = list_models  # noqa: A001
