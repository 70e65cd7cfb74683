"""The edit spec: a versioned JSON description of edits, so that edits are scriptable and reproducible.

>>> spec = load_spec("edit.json")                       # path, JSON text, or dict
>>> edited = apply_spec(el, spec)                       # ImageElements -> ImageElements

Format (version 1; JSON Schema in ``elements/spec_schema.json``)::

    {"version": 1, "prompt": "a beach", "seed": 0,
     "edits": [{"op": "move",    "elements": [3, 4], "dx": 40, "dy": -10},
               {"op": "scale",   "points": [[120, 88]], "factor": 1.5},
               {"op": "delete",  "rect": [0, 0, 50, 60]},
               {"op": "compose", "source": "other.png", "elements": [7, 8], "at": [200, 150], "factor": 1.0}]}

Every coordinate is in **input-image pixels** (origin top-left, x right, y down). Each edit
selects elements with exactly one of ``elements`` (ids), ``points`` (the element currently
under each point) or ``rect`` (elements whose current centre is inside ``[x0, y0, x1, y1]``).
Edits apply in order, so later edits see earlier ones (ids of composed elements continue after
the last id). Problems raise :class:`~elements.errors.UserError` with one sentence, e.g.
``Edit 2 (move): Unknown element id 300: the image has 256 elements (ids 0-255).``

The same spec, input image, partition backend, decoder and seed give the same output.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from elements import edit as ops
from elements.errors import UserError
from elements.types import ImageElements

SPEC_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("spec_schema.json")
OPS = ("move", "scale", "delete", "compose")
SELECTORS = ("elements", "points", "rect")


@dataclass(frozen=True)
class EditSpec:
    """A validated spec. ``edits`` are plain dicts in the JSON form (immutable by convention)."""

    edits: tuple[dict, ...] = ()
    prompt: str = ""
    seed: int = 0
    decoder: str | None = None
    steps: int | None = None
    guidance: float | None = None
    version: int = SPEC_VERSION
    base_dir: str | None = field(default=None, compare=False)  # where relative compose sources are looked up

    def to_dict(self) -> dict:
        d = {"version": self.version, "prompt": self.prompt, "seed": self.seed}
        for k in ("decoder", "steps", "guidance"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d["edits"] = [dict(e) for e in self.edits]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save(self, path) -> Path:
        """Write the spec as JSON, atomically."""
        from elements.atomic import write_text

        return write_text(path, self.to_json() + "\n")

    def with_edits(self, edits) -> "EditSpec":
        return EditSpec(tuple(dict(e) for e in edits), self.prompt, self.seed, self.decoder, self.steps, self.guidance,
                        self.version, self.base_dir)


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema (draft 2020-12) shipped with the package."""
    return json.loads(SCHEMA_PATH.read_text())


def _reject_constant(name: str):
    raise UserError(f"The edit spec contains {name}; every number must be finite.")


def _parse_json(text: str, where: str) -> object:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise UserError(f"{where} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}).") from None


def _check_finite(obj, path: str = "spec") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise UserError(f"The edit spec contains {obj} at {path}; every number must be finite.")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite(v, f"{path}[{i}]")


def _where(path) -> str:
    out = "spec"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def validate_dict(d: object) -> None:
    """Schema check with friendly messages for the common mistakes; raises UserError."""
    import jsonschema

    if not isinstance(d, dict):
        raise UserError("An edit spec must be a JSON object with 'version' and 'edits'.")
    _check_finite(d)
    if "version" not in d:
        raise UserError("The edit spec has no 'version'; add \"version\": 1.")
    if d["version"] != SPEC_VERSION:
        raise UserError(f"Unsupported edit spec version {d['version']!r}; this program reads version {SPEC_VERSION}.")
    edits = d.get("edits")
    if isinstance(edits, list):
        for i, e in enumerate(edits, 1):
            if not isinstance(e, dict):
                raise UserError(f"Edit {i} must be a JSON object with an 'op'.")
            if "op" not in e:
                raise UserError(f"Edit {i} has no 'op'; choose one of {', '.join(OPS)}.")
            if e["op"] not in OPS:
                raise UserError(f"Edit {i} has unknown op {e['op']!r}; choose one of {', '.join(OPS)}.")
            given = [k for k in SELECTORS if k in e]
            if len(given) != 1:
                what = "none" if not given else " and ".join(given)
                raise UserError(f"Edit {i} ({e['op']}) must select elements with exactly one of elements, points or rect (got {what}).")
            if "factor" in e and isinstance(e["factor"], (int, float)) and not isinstance(e["factor"], bool) and e["factor"] <= 0:
                raise UserError(f"Edit {i} ({e['op']}) has factor {e['factor']}; a scale factor must be greater than 0.")
    validator = jsonschema.Draft202012Validator(schema())
    err = jsonschema.exceptions.best_match(validator.iter_errors(d))
    if err is not None:
        raise UserError(f"Invalid edit spec at {_where(err.absolute_path)}: {_short(err.message)}.")


def _short(msg: str) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= 160 else msg[:157] + "..."


def load_spec(source) -> EditSpec:
    """Read and validate a spec from an :class:`EditSpec`, a dict, JSON text, or a path to a JSON file.

    Relative ``compose`` sources are resolved against the spec file's folder (for a path) or
    the working directory. Raises UserError with one sentence on any problem.
    """
    if isinstance(source, EditSpec):
        return source
    base_dir = None
    if isinstance(source, dict):
        d = source
    elif isinstance(source, str) and source.lstrip().startswith(("{", "[")):
        d = _parse_json(source, "The edit spec")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise UserError(f"Edit spec file '{path}' does not exist.")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"Edit spec file '{path}' could not be read ({type(err).__name__}).") from None
        d = _parse_json(text, f"Edit spec file '{path}'")
        base_dir = str(path.resolve().parent)
    else:
        raise UserError(f"An edit spec must be a path, JSON text or a dict, not {type(source).__name__}.")
    validate_dict(d)
    return EditSpec(
        edits=tuple(dict(e) for e in d.get("edits", [])),
        prompt=d.get("prompt", ""),
        seed=int(d.get("seed", 0)),
        decoder=d.get("decoder"),
        steps=d.get("steps"),
        guidance=None if d.get("guidance") is None else float(d["guidance"]),
        base_dir=base_dir,
    )


# --- applying ------------------------------------------------------------------------------------
def select(el: ImageElements, e: dict, *, allow_deleted: bool = False):
    """The element ids an edit dict selects (``elements`` / ``points`` / ``rect``)."""
    if "elements" in e:
        return ops.select_ids(el, e["elements"], allow_deleted=allow_deleted)
    if "points" in e:
        return ops.select_points(el, e["points"])
    return ops.select_rect(el, e["rect"])


def default_loader(partitioner=None, base_dir=None, like: ImageElements | None = None) -> Callable[[str], ImageElements]:
    """``source -> ImageElements`` for compose: a folder saved by ``ImageElements.save`` or an image to partition.

    Images are partitioned with ``partitioner`` or, by default, with the backend and element
    count recorded in ``like.meta["partition"]`` so both images are cut the same way.
    """
    cache: dict[str, ImageElements] = {}

    def load(source: str) -> ImageElements:
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = Path(base_dir or ".") / path
        key = str(path.resolve())
        if key in cache:
            return cache[key]
        if path.is_dir():
            try:
                other = ImageElements.load(path)
            except ValueError as err:
                raise UserError(f"Compose source '{source}': {err}.") from None
        else:
            if not path.exists():
                raise UserError(f"Compose source '{source}' does not exist (looked for {path}).")
            part = partitioner
            if part is None:
                from elements.partition import Partitioner

                info = (like.meta.get("partition", {}) if like is not None else {})
                backend = info.get("backend", "auto")
                part = Partitioner(backend if backend in ("sam", "slic", "grid") else "auto",
                                   num_elements=int(info.get("num_elements", 256)))
            other = part(path)
        cache[key] = other
        return other

    return load


def apply_edit(el: ImageElements, e: dict, *, load_other: Callable[[str], ImageElements] | None = None) -> ImageElements:
    """Apply one validated edit dict; raises UserError (without the edit number)."""
    op, collide = e["op"], bool(e.get("collide", True))
    if op == "move":
        return ops.move(el, select(el, e), float(e["dx"]), float(e["dy"]), collide=collide)
    if op == "scale":
        return ops.scale(el, select(el, e), float(e["factor"]), collide=collide)
    if op == "delete":
        return ops.delete(el, select(el, e, allow_deleted=True))
    if op == "compose":
        load_other = load_other or default_loader(like=el)
        other = load_other(e["source"])
        return ops.compose(el, other, select(other, e), e["at"], float(e.get("factor", 1.0)), collide=collide)
    raise UserError(f"Unknown op {op!r}; choose one of {', '.join(OPS)}.")


def apply_spec(el: ImageElements, spec, *, partitioner=None, base_dir=None,
               load_other: Callable[[str], ImageElements] | None = None) -> ImageElements:
    """Apply every edit of ``spec`` (anything :func:`load_spec` takes) to ``el``, in order.

    ``partitioner`` cuts compose sources (default: the backend recorded in ``el.meta``);
    ``base_dir`` overrides where relative compose sources are found. An empty edit list
    returns ``el`` itself (reconstruction).
    """
    spec = load_spec(spec)
    load_other = load_other or default_loader(partitioner, base_dir or spec.base_dir, like=el)
    for i, e in enumerate(spec.edits, 1):
        try:
            el = apply_edit(el, e, load_other=load_other)
        except UserError as err:
            raise UserError(f"Edit {i} ({e['op']}): {err}") from None
    return el


__all__ = ["EditSpec", "OPS", "SCHEMA_PATH", "SPEC_VERSION", "apply_edit", "apply_spec", "default_loader", "load_spec",
           "schema", "select", "validate_dict"]
