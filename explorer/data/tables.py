"""Arrow tables: Parquet, Arrow/Feather (IPC file or stream) and a Hugging Face ``datasets``
folder saved with ``save_to_disk`` (one split, or a ``DatasetDict`` with ``dataset_dict.json``).

Needs pyarrow (``pip install embedding-explorer[tables]``). Each column is read by its type:

* a list / large list / fixed-size list of numbers -> the **vectors** (all rows the same length);
* a struct with a ``bytes`` field (how ``datasets`` stores an ``Image`` feature; ``path`` is used
  when the bytes are missing) -> **images** decoded from those bytes;
* a string column whose values are image file names (.png, .jpg...) -> **images** read from
  those paths (relative ones from the table's folder);
* another string column -> **text** (one named text / sentence / caption... first);
* a label column (label / labels / class, or the ``label_column`` option) -> labels; a
  ``datasets`` ``ClassLabel`` gives the class names;
* an id-like column with unique values (id / filenames / path...; ``id_column``) -> the ids;
* every other column of numbers, strings or booleans -> metadata (nested values are left out).

When several columns could be the items, vectors win over images and images over text; the
``column`` option names the one to use. Options: ``column``, ``label_column``, ``id_column``
and, for a ``DatasetDict`` folder, ``split`` (default ``train``, else the first split).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.data._common import (LABEL_NAMES, chosen_column, column_array, encode_labels, find_column,
                                   fingerprint_files, fingerprint_stat, str_array, to_rgb_array)
from explorer.data.base import Dataset
from explorer.data.images import IMAGE_EXTENSIONS, ImageFolderDataset
from explorer.data.registry import DATASETS
from explorer.data.text import TEXT_NAMES, TextDataset
from explorer.data.vector_table import ID_NAMES, VectorTableDataset
from explorer.core.errors import InputError

OPTIONS = ("column", "label_column", "id_column", "split")
VECTOR_NAMES = ("embedding", "embeddings", "vector", "vectors", "features", "feature", "emb")
IMAGE_NAMES = ("image", "img", "images", "picture", "photo")


def _pyarrow():
    try:
        import pyarrow as pa
    except ImportError:
        raise InputError("Reading Parquet, Arrow and Hugging Face datasets needs pyarrow; "
                         "install it with `pip install embedding-explorer[tables]`.") from None
    return pa


# -- reading the files ---------------------------------------------------------------------------
def _read_ipc(path: Path):
    """An Arrow IPC file (Feather v2), an IPC stream (how ``datasets`` saves) or Feather v1."""
    pa = _pyarrow()
    import pyarrow.ipc as ipc

    source = pa.memory_map(str(path), "r")
    try:
        return ipc.open_file(source).read_all()
    except pa.ArrowInvalid:
        pass
    source.seek(0)
    try:
        return ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        import pyarrow.feather as feather

        return feather.read_table(str(path))


def _hf_folder(path: Path, split: Optional[str]) -> tuple[Path, list[Path]]:
    """(the split's folder, its .arrow files in order) of a ``save_to_disk`` folder."""
    dd = path / "dataset_dict.json"
    if dd.is_file():
        try:
            splits = list(json.loads(dd.read_text(encoding="utf-8")).get("splits", []))
        except (ValueError, OSError) as exc:
            raise InputError(f"{dd}: cannot be read ({exc}).") from None
        if not splits:
            raise InputError(f"{dd}: lists no splits.")
        if split is None:
            split = "train" if "train" in splits else splits[0]
        if split not in splits:
            raise InputError(f"{path}: no split {split!r} (splits: {', '.join(splits)}).")
        path = path / split
    elif split not in (None, ""):
        raise InputError(f"{path}: a single-split dataset folder; the split option does not apply.")
    files: list[Path] = []
    state = path / "state.json"
    if state.is_file():
        try:
            names = [d["filename"] for d in json.loads(state.read_text(encoding="utf-8")).get("_data_files", [])]
        except (ValueError, OSError, KeyError, TypeError) as exc:
            raise InputError(f"{state}: cannot be read ({exc}).") from None
        files = [path / n for n in names]
    if not files:
        files = sorted(path.glob("*.arrow"))
    if not files:
        raise InputError(f"{path}: no .arrow data files in this dataset folder.")
    return path, files


def _hf_class_names(schema) -> dict:
    """column -> class names, from the ``huggingface`` schema metadata (ClassLabel features)."""
    meta = schema.metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return {}
    try:
        feats = json.loads(raw).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return {}
    return {k: [str(n) for n in f["names"]] for k, f in feats.items()
            if isinstance(f, dict) and f.get("_type") == "ClassLabel" and isinstance(f.get("names"), list)}


# -- column kinds --------------------------------------------------------------------------------
def _is_vector(t) -> bool:
    import pyarrow.types as T

    if T.is_list(t) or T.is_large_list(t) or T.is_fixed_size_list(t):
        v = t.value_type
        return T.is_floating(v) or T.is_integer(v)
    return False


def _is_image_struct(t) -> bool:
    import pyarrow.types as T

    if not T.is_struct(t):
        return False
    names = [t.field(k).name for k in range(t.num_fields)]
    return "bytes" in names and (T.is_binary(t.field("bytes").type) or T.is_large_binary(t.field("bytes").type))


def _is_string(t) -> bool:
    import pyarrow.types as T

    return T.is_string(t) or T.is_large_string(t)


def _is_image_paths(values: list) -> bool:
    present = [v for v in values if v]
    return bool(present) and all(str(v).lower().endswith(IMAGE_EXTENSIONS) for v in present)


def _vectors(path: Path, name: str, col) -> np.ndarray:
    import pyarrow.compute as pc

    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    if col.null_count:
        bad = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise InputError(f"{path}: row {bad} of the vector column {name!r} is empty.")
    lengths = np.asarray(pc.list_value_length(col), dtype=np.int64)
    if len(lengths) == 0:
        raise InputError(f"{path}: the table has no rows.")
    if (lengths != lengths[0]).any():
        bad = int(np.flatnonzero(lengths != lengths[0])[0])
        raise InputError(f"{path}: the vectors in column {name!r} differ in length (row 0 has "
                         f"{lengths[0]}, row {bad} has {lengths[bad]}).")
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(len(lengths), int(lengths[0]))


class _TableImages(ImageFolderDataset):
    """Images from a table: encoded bytes held in memory or paths to files."""

    def __init__(self, path: Path, fmt: str, files: list, encoded: Optional[list],
                 paths: Optional[list], ids, labels, label_names, metadata, options,
                 table_files) -> None:
        root = path if path.is_dir() else path.parent
        super().__init__(root, [str(i) for i in ids], options)
        self.name = path.stem if path.is_file() else path.name
        self.source = path
        self.format = fmt
        self.labels, self.label_names, self.metadata = labels, label_names, metadata
        self._encoded = encoded  # list of bytes or None per row
        self._paths = paths  # list of str or None per row
        self._table_files = tuple(table_files)

    def _open(self, i: int, size: Optional[int]) -> np.ndarray:
        from PIL import Image

        data = self._encoded[i] if self._encoded is not None else None
        where = self.ids[i]
        try:
            if data is not None:
                src = io.BytesIO(data)
            else:
                p = self._paths[i] if self._paths is not None else None
                if not p:
                    raise InputError(f"{where}: the row holds no image.")
                src = Path(p) if Path(p).is_absolute() else self.root / p
                where = str(src)
            with Image.open(src) as im:
                if size:
                    im.draft("RGB", (size, size))
                im.load()
                return to_rgb_array(im)
        except InputError:
            raise
        except FileNotFoundError:
            raise InputError(f"{where}: the image file is missing.") from None
        except Exception as exc:
            reason = str(exc).rstrip(".") or type(exc).__name__
            raise InputError(f"{where}: cannot read image ({reason}).") from None

    def fingerprint(self) -> str:
        """The table files (contents up to 64 MiB) and, for images given by path, each file's
        path, size and mtime."""
        fp = fingerprint_files(self.format, self.options, self.root, self._table_files)
        if self._paths is None or self._encoded is not None and all(e is not None for e in self._encoded):
            return fp
        rel = [p for p in self._paths if p and not Path(p).is_absolute()]
        absolute = [Path(p) for p in self._paths if p and Path(p).is_absolute()]
        return fingerprint_files(self.format, {"table": fp}, self.root, absolute, contents=False,
                                 extra=[fingerprint_stat(self.format, {}, self.root, rel)])


class _TableTexts(TextDataset):
    def __init__(self, *args, table_files=(), **kw) -> None:
        super().__init__(*args, **kw)
        self._table_files = tuple(table_files)

    def fingerprint(self) -> str:
        root = self.source if self.source.is_dir() else self.source.parent
        return fingerprint_files(self.format, self.options, root, self._table_files)


# -- the opener ----------------------------------------------------------------------------------
def dataset_from_table(path: Path, fmt: str, table, options: dict, files: list) -> Dataset:
    """Interpret an Arrow ``table`` read from ``files`` (see the module docstring)."""
    bad = [k for k in options if k not in OPTIONS]
    if bad:
        raise InputError(f"{path}: unknown option(s) {', '.join(bad)} for tables "
                         f"(known: {', '.join(OPTIONS)}).")
    n = table.num_rows
    if n == 0:
        raise InputError(f"{path}: the table has no rows.")
    names = list(table.column_names)
    types = {c: table.schema.field(c).type for c in names}


    strings = {c: table.column(c).to_pylist() for c in names if _is_string(types[c])}
    vec_cols = [c for c in names if _is_vector(types[c])]
    img_cols = [c for c in names if _is_image_struct(types[c])] + \
               [c for c in strings if _is_image_paths(strings[c])]
    label_col = chosen_column(path, options, "label_column", names, find_column(names, LABEL_NAMES))
    text_cols = [c for c in strings if c not in img_cols and c != label_col]

    def first(cols: list, preferred) -> Optional[str]:
        return (find_column(cols, preferred) or cols[0]) if cols else None

    item = chosen_column(path, options, "column", names,
                         first(vec_cols, VECTOR_NAMES) or first(img_cols, IMAGE_NAMES)
                         or find_column(text_cols, TEXT_NAMES)
                         or next((c for c in text_cols if _words(strings[c])), None))
    if item is None:
        desc = ", ".join(f"{c} ({types[c]})" for c in names)
        raise InputError(f"{path}: no column of vectors, images or texts (columns: {desc}); "
                         f"choose one with the column option.")
    if item == label_col:
        label_col = None
    id_default = find_column([c for c in names if c not in (item, label_col)], ID_NAMES)
    if id_default is not None and (_is_vector(types[id_default]) or _is_image_struct(types[id_default])
                                   or len(set(map(str, table.column(id_default).to_pylist()))) != n):
        id_default = None
    id_col = chosen_column(path, options, "id_column", names, id_default)

    labels, label_names = None, []
    if label_col is not None:
        values = table.column(label_col).to_pylist()
        classes = _hf_class_names(table.schema).get(label_col)
        if classes and all(v is None or (isinstance(v, int) and -1 <= v < len(classes)) for v in values):
            labels = np.array([-1 if v is None else v for v in values], dtype=np.int64)
            label_names = classes
        else:
            numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                          for v in values)
            arr = (np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                   if numeric else str_array(values))
            labels, label_names = encode_labels(arr, str(path))
    ids = str_array(table.column(id_col).to_pylist()) if id_col else str_array(range(n))

    metadata = {}
    import pyarrow.types as T

    for c in names:
        if c in (item, label_col):
            continue
        t = types[c]
        if T.is_integer(t) or T.is_floating(t) or T.is_boolean(t):
            metadata[c] = np.array([np.nan if v is None else float(v) for v in table.column(c).to_pylist()])
        elif _is_string(t) or T.is_dictionary(t) or T.is_temporal(t):
            metadata[c] = column_array(table.column(c).to_pylist())
    opts = {**{k: v for k, v in options.items() if k == "split"}, "column": item,
            "label_column": label_col or "", "id_column": id_col or ""}

    t = types[item]
    if _is_vector(t):
        data = _vectors(path, item, table.column(item))
        return VectorTableDataset(path, fmt, data, ids, labels, label_names, metadata, opts,
                                  files=files, name=path.stem if path.is_file() else path.name)
    if _is_image_struct(t):
        rows = table.column(item).to_pylist()
        encoded = [r.get("bytes") if r else None for r in rows]
        paths = [r.get("path") if r else None for r in rows]
        return _TableImages(path, fmt, files, encoded, paths, ids, labels, label_names, metadata,
                            opts, files)
    if item in img_cols:
        return _TableImages(path, fmt, files, None, strings[item], ids, labels, label_names,
                            metadata, opts, files)
    if not _is_string(t):
        raise InputError(f"{path}: column {item!r} holds {t}, not vectors, images or text.")
    texts = ["" if v is None else str(v) for v in strings[item]]
    return _TableTexts(path, fmt, texts, ids, labels, label_names, metadata, opts, table_files=files)


def _words(values: list) -> bool:
    from explorer.data._common import is_text_column

    return is_text_column(values[:1000])


@DATASETS.register("parquet", label="Parquet table", extensions=(".parquet", ".pq"), priority=10)
def open_parquet(path, **options) -> Dataset:
    """A Parquet table: a list column is vectors, image bytes or paths images, strings text."""
    path = Path(path)
    _pyarrow()
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}).") from None
    return dataset_from_table(path, "parquet", table, options, [path])


@DATASETS.register("arrow", label="Arrow / Feather table", extensions=(".arrow", ".feather", ".ipc"),
                   priority=10)
def open_arrow(path, **options) -> Dataset:
    """An Arrow IPC / Feather table: a list column is vectors, image bytes or paths images, strings text."""
    path = Path(path)
    _pyarrow()
    try:
        table = _read_ipc(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable Arrow or Feather file ({str(exc).splitlines()[0]}).") from None
    return dataset_from_table(path, "arrow", table, options, [path])


def _sniff_hf(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and any(path.glob("*.arrow")))


@DATASETS.register("hf-datasets", label="Hugging Face dataset folder (save_to_disk)", directory=True,
                   priority=30, sniff=_sniff_hf)
def open_hf_datasets(path, **options) -> Dataset:
    """A folder written by datasets' save_to_disk (choose the split of a DatasetDict)."""
    path = Path(path)
    pa = _pyarrow()
    options = dict(options)
    folder, files = _hf_folder(path, options.get("split"))
    try:
        tables = [_read_ipc(f) for f in files]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except FileNotFoundError as exc:
        raise InputError(f"{path}: a data file is missing ({exc.filename}).") from None
    except Exception as exc:
        raise InputError(f"{path}: the dataset's Arrow files cannot be read ({str(exc).splitlines()[0]}).") from None
    if folder != path and "split" not in options:
        options["split"] = folder.name
    return dataset_from_table(path, "hf-datasets", table, options, files)
