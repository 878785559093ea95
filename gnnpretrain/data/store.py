"""A compact, memory-mappable store for many small graphs, with vectorised batch assembly.

Why not a list of ``Data`` objects: two million molecules as Python objects take minutes to unpickle and
gigabytes of RAM, and ``Batch.from_data_list`` spends most of its time in per-graph Python code. Here a
whole corpus is a handful of flat arrays plus offsets:

* ``x``            ``[N_total, F]``  node features of all graphs, concatenated;
* ``edge_index``   ``[2, E_total]``  edges with **graph-local** node numbers (so narrow dtypes suffice);
* ``edge_attr``    ``[E_total, D]``  (optional);
* ``y``            ``[G, T]``        (optional, float; one row per graph);
* ``node_ptr`` / ``edge_ptr`` ``[G + 1]`` offsets: graph ``g`` owns nodes ``node_ptr[g]:node_ptr[g+1]``.

Integer arrays are stored in the narrowest signed dtype that holds their values (molecules need
``int8``) and are cast back to the original dtype (``torch.long``) when a batch is assembled. On disk each
array is one ``.npy`` file, loaded with ``np.load(mmap_mode="r")``: opening a store is instant and the OS
pages in only what batches touch. ``store.collate(idx)`` gathers the graphs' node and edge ranges with
``repeat_interleave`` arithmetic (no per-graph Python loop) and returns a ``torch_geometric`` ``Batch``
identical to ``Batch.from_data_list([store[i] for i in idx])``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from gnnpretrain.errors import CorruptFileError

FORMAT_VERSION = 1
_ARRAYS = ("x", "edge_index", "edge_attr", "y", "node_ptr", "edge_ptr", "source_index")

_TORCH_TO_NAME = {
    torch.int8: "int8", torch.int16: "int16", torch.int32: "int32", torch.int64: "int64",
    torch.uint8: "uint8", torch.bool: "bool", torch.float16: "float16", torch.float32: "float32",
    torch.float64: "float64", torch.bfloat16: "bfloat16",
}
_NAME_TO_TORCH = {v: k for k, v in _TORCH_TO_NAME.items()}


def narrowest_int_dtype(t: torch.Tensor) -> torch.dtype:
    """The narrowest signed integer dtype that holds every value of ``t`` (``int8`` for molecules)."""
    if t.numel() == 0:
        return torch.int8
    lo, hi = int(t.min()), int(t.max())
    for dt in (torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    return torch.int64


def _compact(t: torch.Tensor) -> torch.Tensor:
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        return t.contiguous()
    return t.to(narrowest_int_dtype(t)).contiguous()


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate ``arange(s, s + c)`` for every (start, count) without a Python loop.

    Returns the gathered positions and the exclusive cumulative sum of ``counts`` (the output offsets).
    """
    out_ptr = torch.zeros(counts.numel() + 1, dtype=torch.long, device=counts.device)
    torch.cumsum(counts, 0, out=out_ptr[1:])
    total = int(out_ptr[-1])
    # position p in the output belongs to segment s: starts[s] + (p - out_ptr[s])
    delta = starts - out_ptr[:-1]
    pos = torch.arange(total, dtype=torch.long, device=counts.device)
    pos += torch.repeat_interleave(delta, counts, output_size=total)
    return pos, out_ptr


class GraphStore:
    """Flat, optionally memory-mapped storage of many graphs; a PyG-style dataset (``len``, ``[i]``).

    Build it with :meth:`from_data_list` (tests, small sets) or :meth:`from_arrays` (corpus
    featurization), persist it with :meth:`save`, reopen it with :meth:`load`. ``store[i]`` returns one
    ``Data``; ``store[index_tensor]`` a sub-store view; :meth:`collate` a ``Batch``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        node_ptr: torch.Tensor,
        edge_ptr: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        source_index: torch.Tensor | None = None,
        dtypes: dict[str, torch.dtype] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        num_graphs = node_ptr.numel() - 1
        if node_ptr.dim() != 1 or edge_ptr.shape != node_ptr.shape:
            raise ValueError(
                f"node_ptr and edge_ptr must be 1-D of equal length G+1; got {tuple(node_ptr.shape)} and "
                f"{tuple(edge_ptr.shape)}"
            )
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E]; got {tuple(edge_index.shape)}")
        if x.size(0) != int(node_ptr[-1]):
            raise ValueError(f"x has {x.size(0)} rows but node_ptr ends at {int(node_ptr[-1])}")
        if edge_index.size(1) != int(edge_ptr[-1]):
            raise ValueError(f"edge_index has {edge_index.size(1)} columns but edge_ptr ends at {int(edge_ptr[-1])}")
        if edge_attr is not None and edge_attr.size(0) != edge_index.size(1):
            raise ValueError(f"edge_attr has {edge_attr.size(0)} rows for {edge_index.size(1)} edges")
        if y is not None and y.size(0) != num_graphs:
            raise ValueError(f"y has {y.size(0)} rows for {num_graphs} graphs")
        self.x = x
        self.edge_index = edge_index
        self.edge_attr = edge_attr
        self.y = y
        self.node_ptr = node_ptr.long()
        self.edge_ptr = edge_ptr.long()
        self.source_index = source_index
        self.dtypes = dict(dtypes or {})
        for name in ("x", "edge_attr", "y"):
            t = getattr(self, name)
            if t is not None:
                self.dtypes.setdefault(name, t.dtype)
        self.dtypes.setdefault("edge_index", torch.long)
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_data_list(cls, data_list: Sequence[Data], meta: dict[str, Any] | None = None) -> "GraphStore":
        """Pack ``Data`` objects (``x``, ``edge_index``, optional ``edge_attr`` and graph-level ``y``).

        Other attributes are not stored. ``y`` of each graph is flattened to one row (``[1, T]`` → ``[T]``).
        """
        if len(data_list) == 0:
            raise ValueError("GraphStore.from_data_list got an empty list; give it at least one graph")
        first = data_list[0]
        if getattr(first, "x", None) is None:
            raise ValueError("GraphStore needs node features `x` on every graph; the first graph has none")
        has_ea = getattr(first, "edge_attr", None) is not None
        has_y = getattr(first, "y", None) is not None
        xs, eis, eas, ys, n_nodes, n_edges = [], [], [], [], [], []
        for i, d in enumerate(data_list):
            if (getattr(d, "edge_attr", None) is not None) != has_ea or (getattr(d, "y", None) is not None) != has_y:
                raise ValueError(f"graph {i} differs from graph 0 in which of edge_attr / y it has")
            xs.append(d.x)
            eis.append(d.edge_index)
            n_nodes.append(d.x.size(0))
            n_edges.append(d.edge_index.size(1))
            if has_ea:
                eas.append(d.edge_attr)
            if has_y:
                ys.append(d.y.reshape(1, -1))
        node_ptr = torch.zeros(len(data_list) + 1, dtype=torch.long)
        node_ptr[1:] = torch.tensor(n_nodes).cumsum(0)
        edge_ptr = torch.zeros(len(data_list) + 1, dtype=torch.long)
        edge_ptr[1:] = torch.tensor(n_edges).cumsum(0)
        dtypes = {"x": first.x.dtype, "edge_index": first.edge_index.dtype}
        if has_ea:
            dtypes["edge_attr"] = first.edge_attr.dtype
        if has_y:
            dtypes["y"] = first.y.dtype
        return cls.from_arrays(
            x=torch.cat(xs, 0),
            edge_index_local=torch.cat(eis, 1) if eis else torch.empty(2, 0, dtype=torch.long),
            node_ptr=node_ptr,
            edge_ptr=edge_ptr,
            edge_attr=torch.cat(eas, 0) if has_ea else None,
            y=torch.cat(ys, 0) if has_y else None,
            dtypes=dtypes,
            meta=meta,
        )

    @classmethod
    def from_arrays(
        cls,
        x: torch.Tensor,
        edge_index_local: torch.Tensor,
        node_ptr: torch.Tensor,
        edge_ptr: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        source_index: torch.Tensor | None = None,
        dtypes: dict[str, torch.dtype] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> "GraphStore":
        """Build from flat arrays; ``edge_index_local`` uses graph-local node numbers. Compacts dtypes."""
        dtypes = dict(dtypes or {})
        dtypes.setdefault("x", x.dtype)
        dtypes.setdefault("edge_index", torch.long)
        if edge_attr is not None:
            dtypes.setdefault("edge_attr", edge_attr.dtype)
        if y is not None:
            dtypes.setdefault("y", y.dtype)
        if edge_index_local.numel():
            n_per_edge = torch.repeat_interleave(node_ptr[1:] - node_ptr[:-1], edge_ptr[1:] - edge_ptr[:-1])
            if int(edge_index_local.min()) < 0 or bool((edge_index_local >= n_per_edge).any()):
                raise ValueError("edge_index_local has node numbers outside their graph's node range")
        return cls(
            x=_compact(x),
            edge_index=_compact(edge_index_local),
            node_ptr=node_ptr.long(),
            edge_ptr=edge_ptr.long(),
            edge_attr=None if edge_attr is None else _compact(edge_attr),
            y=None if y is None else y.contiguous(),
            source_index=None if source_index is None else source_index.long(),
            dtypes=dtypes,
            meta=meta,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the store as ``.npy`` files + ``meta.json`` atomically (temp dir, then rename).

        An interrupted save never leaves a half-written store at ``directory``; an existing store there
        is replaced.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        from gnnpretrain.outputs import remove_stale_tmp

        remove_stale_tmp(directory.parent)  # leftovers of saves that were killed
        tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.{os.getpid()}.", suffix=".tmp"))
        try:
            arrays = {}
            for name in _ARRAYS:
                t = getattr(self, name)
                if t is None:
                    continue
                np.save(tmp / f"{name}.npy", t.detach().cpu().numpy(), allow_pickle=False)
                arrays[name] = True
            meta = {
                "format_version": FORMAT_VERSION,
                # manifest: byte size of every array file, checked on load (a cut file is rebuilt)
                "file_sizes": {f"{n}.npy": (tmp / f"{n}.npy").stat().st_size for n in arrays},
                "num_graphs": len(self),
                "num_nodes": int(self.node_ptr[-1]),
                "num_edges": int(self.edge_ptr[-1]),
                "arrays": sorted(arrays),
                "dtypes": {k: _TORCH_TO_NAME[v] for k, v in self.dtypes.items()},
                "meta": self.meta,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            if directory.exists():
                old = directory.parent / f".{directory.name}.old.{os.getpid()}"
                os.replace(directory, old)
                os.replace(tmp, directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, mmap: bool = True) -> "GraphStore":
        """Open a saved store; with ``mmap=True`` (default) arrays are memory-mapped, not read."""
        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no graph store at {directory} (meta.json missing); build one with GraphStore.save or load_corpus"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"{meta_path} is not valid JSON ({exc}); delete the folder to rebuild it") from None
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise CorruptFileError(
                f"graph store at {directory} has format version "
                f"{meta.get('format_version') if isinstance(meta, dict) else None}, this code reads "
                f"{FORMAT_VERSION}; delete the folder to rebuild it"
            )
        for fname, size in (meta.get("file_sizes") or {}).items():
            fpath = directory / fname
            actual = fpath.stat().st_size if fpath.is_file() else None
            if actual != size:
                raise CorruptFileError(
                    f"{fpath} is damaged ({'missing' if actual is None else f'{actual} bytes'}, the manifest says "
                    f"{size}); delete the folder to rebuild it"
                )
        tensors: dict[str, torch.Tensor | None] = {}
        mapped = []
        with warnings.catch_warnings():
            # read-only memmaps: torch warns that the tensor is not writable; the store never writes to them
            warnings.simplefilter("ignore", UserWarning)
            for name in _ARRAYS:
                path = directory / f"{name}.npy"
                if name in meta["arrays"]:
                    try:
                        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
                    except (OSError, ValueError, EOFError) as exc:  # cut or foreign array file
                        raise CorruptFileError(f"{path} is damaged ({exc}); delete the folder to rebuild it") from None
                    if isinstance(arr, np.memmap):
                        mapped.append(name)
                    tensors[name] = torch.from_numpy(arr) if arr.size else torch.from_numpy(np.array(arr))
                else:
                    tensors[name] = None
        store = cls(
            x=tensors["x"], edge_index=tensors["edge_index"], node_ptr=tensors["node_ptr"].long(),
            edge_ptr=tensors["edge_ptr"].long(), edge_attr=tensors["edge_attr"], y=tensors["y"],
            source_index=tensors["source_index"],
            dtypes={k: _NAME_TO_TORCH[v] for k, v in meta["dtypes"].items()}, meta=meta.get("meta", {}),
        )
        n_graphs, n_nodes, n_edges = meta.get("num_graphs"), meta.get("num_nodes"), meta.get("num_edges")
        if (n_graphs is not None and len(store) != n_graphs) or (n_nodes is not None and store.x.shape[0] != n_nodes) or (
            n_edges is not None and store.edge_index.shape[1] != n_edges
        ):
            raise CorruptFileError(f"graph store at {directory}: array sizes disagree with meta.json; delete the folder to rebuild it")
        store.path = directory
        store.memory_mapped = tuple(mapped)  # names of the arrays read lazily from disk
        return store

    # ------------------------------------------------------------------ dataset protocol
    def __len__(self) -> int:
        return self.node_ptr.numel() - 1

    @property
    def num_nodes_per_graph(self) -> torch.Tensor:
        cached = getattr(self, "_n_counts", None)
        if cached is None or cached.numel() != len(self):
            cached = self._n_counts = self.node_ptr[1:] - self.node_ptr[:-1]
        return cached

    @property
    def num_edges_per_graph(self) -> torch.Tensor:
        cached = getattr(self, "_e_counts", None)
        if cached is None or cached.numel() != len(self):
            cached = self._e_counts = self.edge_ptr[1:] - self.edge_ptr[:-1]
        return cached

    def __repr__(self) -> str:
        return (
            f"GraphStore(graphs={len(self)}, nodes={int(self.node_ptr[-1])}, edges={int(self.edge_ptr[-1])}, "
            f"x={tuple(self.x.shape[1:])}, edge_attr={None if self.edge_attr is None else tuple(self.edge_attr.shape[1:])}, "
            f"y={None if self.y is None else tuple(self.y.shape[1:])})"
        )

    def get(self, i: int) -> Data:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"graph index {i} out of range for a store of {n} graphs")
        i = i % n
        n0, n1 = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        e0, e1 = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        d = Data(
            x=self.x[n0:n1].to(self.dtypes["x"]),
            edge_index=self.edge_index[:, e0:e1].to(self.dtypes["edge_index"]),
        )
        if self.edge_attr is not None:
            d.edge_attr = self.edge_attr[e0:e1].to(self.dtypes["edge_attr"])
        if self.y is not None:
            d.y = self.y[i : i + 1].to(self.dtypes["y"])
        return d

    def __getitem__(self, idx: int | slice | Sequence[int] | torch.Tensor) -> "Data | GraphStore":
        if isinstance(idx, (int, np.integer)) or (isinstance(idx, torch.Tensor) and idx.dim() == 0):
            return self.get(int(idx))
        return self.subset(idx)

    def __iter__(self):
        for i in range(len(self)):
            yield self.get(i)

    def subset(self, idx: slice | Sequence[int] | torch.Tensor) -> "GraphStore":
        """A new in-memory store holding the selected graphs (in the given order)."""
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        idx = torch.as_tensor(idx)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().view(-1)
        idx = idx.long().view(-1)
        nodes, node_ptr = _ranges(self.node_ptr[idx], self.num_nodes_per_graph[idx])
        edges, edge_ptr = _ranges(self.edge_ptr[idx], self.num_edges_per_graph[idx])
        return GraphStore(
            x=self.x[nodes], edge_index=self.edge_index[:, edges], node_ptr=node_ptr, edge_ptr=edge_ptr,
            edge_attr=None if self.edge_attr is None else self.edge_attr[edges],
            y=None if self.y is None else self.y[idx],
            source_index=None if self.source_index is None else self.source_index[idx],
            dtypes=self.dtypes, meta=self.meta,
        )

    def to_data_list(self) -> list[Data]:
        return [self.get(i) for i in range(len(self))]

    # ------------------------------------------------------------------ batching
    def collate(self, index: torch.Tensor | Sequence[int]) -> Batch:
        """Assemble graphs ``index`` into one ``Batch`` (x, edge_index, edge_attr, y, batch, ptr).

        Equivalent to ``Batch.from_data_list([store[i] for i in index])`` (same tensors, same
        ``num_graphs``, ``to_data_list`` works) but vectorised: node and edge ranges are gathered with
        one indexing operation each and edge indices shifted by each graph's output node offset.
        """
        idx = torch.as_tensor(index, dtype=torch.long).view(-1)
        if idx.numel() == 0:
            raise ValueError("collate needs at least one graph index")
        n_counts = self.num_nodes_per_graph.index_select(0, idx)
        e_counts = self.num_edges_per_graph.index_select(0, idx)
        nodes, ptr = _ranges(self.node_ptr.index_select(0, idx), n_counts)
        edges, eptr = _ranges(self.edge_ptr.index_select(0, idx), e_counts)
        num_nodes, num_edges = int(ptr[-1]), int(eptr[-1])
        bsz = idx.numel()

        x = self.x.index_select(0, nodes).to(self.dtypes["x"])
        inc = ptr[:-1]
        edge_index = self.edge_index.index_select(1, edges).to(torch.long)
        edge_index += torch.repeat_interleave(inc, e_counts, output_size=num_edges)
        edge_index = edge_index.to(self.dtypes["edge_index"])
        batch_vec = torch.repeat_interleave(torch.arange(bsz), n_counts, output_size=num_nodes)

        out = Batch(x=x, edge_index=edge_index)
        slice_dict = {"x": ptr, "edge_index": eptr}
        inc_dict = {"x": torch.zeros(bsz, dtype=torch.long), "edge_index": inc}
        if self.edge_attr is not None:
            out.edge_attr = self.edge_attr.index_select(0, edges).to(self.dtypes["edge_attr"])
            slice_dict["edge_attr"] = eptr
            inc_dict["edge_attr"] = torch.zeros(bsz, dtype=torch.long)
        if self.y is not None:
            out.y = self.y.index_select(0, idx).to(self.dtypes["y"])
            slice_dict["y"] = torch.arange(bsz + 1)
            inc_dict["y"] = torch.zeros(bsz, dtype=torch.long)
        out.batch = batch_vec
        out.ptr = ptr
        out._num_graphs = bsz
        out._slice_dict = slice_dict
        out._inc_dict = inc_dict
        return out


def concat_stores(stores: Iterable[GraphStore]) -> GraphStore:
    """Concatenate stores (same feature layout) into one in-memory store."""
    stores = list(stores)
    if not stores:
        raise ValueError("concat_stores needs at least one store")

    def cat_ptr(ptrs: list[torch.Tensor]) -> torch.Tensor:
        out, off = [torch.zeros(1, dtype=torch.long)], 0
        for p in ptrs:
            out.append(p[1:] + off)
            off += int(p[-1])
        return torch.cat(out)

    def cat_opt(name: str, dim: int = 0):
        ts = [getattr(s, name) for s in stores]
        if any(t is None for t in ts):
            return None
        dt = max((t.dtype for t in ts), key=lambda d: torch.iinfo(d).bits if not d.is_floating_point and d != torch.bool else 64)
        return torch.cat([t.to(dt) for t in ts], dim)

    return GraphStore(
        x=cat_opt("x"), edge_index=cat_opt("edge_index", 1),
        node_ptr=cat_ptr([s.node_ptr for s in stores]), edge_ptr=cat_ptr([s.edge_ptr for s in stores]),
        edge_attr=cat_opt("edge_attr"), y=cat_opt("y"), source_index=cat_opt("source_index"),
        dtypes=stores[0].dtypes, meta=stores[0].meta,
    )
