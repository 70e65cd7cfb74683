"""The edit spec: a versioned JSON description of edits, so that edits are scriptable and reproducible.

>>> spec = load_spec("edit.json")                       # path, JSON text, or dict -> EditSpec
>>> edited = apply_spec(el, spec)                       # elements.apply: ImageElements -> ImageElements

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
the last id); :mod:`elements.apply` applies them. Problems raise
:class:`~elements.errors.UserError` with one sentence, e.g.
``Edit 2 (move): Unknown element id 300: the image has 256 elements (ids 0-255).``

This module only reads and checks specs. It also owns the limits of the decoder settings a spec
carries (:data:`SEED_RANGE`, :data:`STEPS_RANGE`, :data:`GUIDANCE_RANGE`, read from the schema):
the CLI flags, the ``/edit`` endpoint and the demo's controls check against them with
:func:`check_setting`.

The same spec, input image, partition backend, decoder and seed give the same output.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from elements.errors import UserError, excerpt

SPEC_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("spec_schema.json")
OPS = ("move", "scale", "delete", "compose")
SELECTORS = ("elements", "points", "rect")


@dataclass(frozen=True)
class EditSpec:
    """A validated spec. ``edits`` are plain dicts in the JSON form (immutable by convention).

    ``steps`` / ``guidance`` None = the decoder's own default; ``seed`` 0 unless given.
    """

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

    def override(self, *, labels: dict | None = None, **given) -> EditSpec:
        """This spec with each setting in ``given`` that is not None replacing the spec's own.

        ``given``: any of ``prompt``, ``seed``, ``steps``, ``guidance`` (e.g. command-line flags, where
        None = not given: ``--steps 0`` is 0, and refused). Each is checked against the schema's
        limits (:func:`check_setting`, :data:`MAX_PROMPT_CHARS`); ``labels`` names them in the error
        sentence (``{"steps": "--steps"}``).
        """
        labels = labels or {}
        changes = {}
        for name, value in given.items():
            if value is None:
                continue
            if name in LIMITS:
                value = check_setting(name, value, label=labels.get(name))
            elif name == "prompt":
                value = check_prompt(value, label=labels.get(name))
            else:
                raise TypeError(f"EditSpec.override() got an unexpected setting {name!r}")
            changes[name] = value
        return dataclasses.replace(self, **changes)


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema (draft 2020-12) shipped with the package."""
    return json.loads(SCHEMA_PATH.read_text())


def _range(name: str) -> tuple:
    prop = schema()["properties"][name]
    return prop["minimum"], prop["maximum"]


#: Inclusive limits of the decoder settings, read from the schema (their one owner): the seed
#: (``int``), denoising steps (``int``) and the classifier-free guidance scale (``float``).
SEED_RANGE: tuple[int, int] = _range("seed")
STEPS_RANGE: tuple[int, int] = _range("steps")
GUIDANCE_RANGE: tuple[float, float] = tuple(float(v) for v in _range("guidance"))
LIMITS = {"seed": SEED_RANGE, "steps": STEPS_RANGE, "guidance": GUIDANCE_RANGE}
#: Longest prompt a spec (and so the demo) takes, in characters: the schema's.
MAX_PROMPT_CHARS: int = schema()["properties"]["prompt"]["maxLength"]
_LABELS = {"seed": "The seed", "steps": "The number of steps", "guidance": "The guidance scale"}


def check_setting(name: str, value, *, label: str | None = None) -> int | float:
    """``value`` of setting ``name`` ("seed", "steps" or "guidance") within :data:`LIMITS`, as ``int``
    (seed, steps) or ``float`` (guidance); otherwise UserError with one sentence naming ``label``.

    Numbers written as text ("7") are accepted, as a form field sends them; ``True`` is not a number.
    """
    lo, hi = LIMITS[name]
    whole = name != "guidance"
    label = label or _LABELS[name]
    kind = "an integer" if whole else "a number"
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
        ok = math.isfinite(v) and lo <= v <= hi and (v.is_integer() or not whole)
    except (TypeError, ValueError, OverflowError):  # text, a list, an integer too big for a float
        ok = False
    if not ok:
        shown = (lo, hi) if whole else (f"{lo:g}", f"{hi:g}")
        raise UserError(f"{label} must be {kind} between {shown[0]} and {shown[1]}, got {excerpt(value)}.")
    return int(v) if whole else v


def check_prompt(prompt, *, label: str | None = None) -> str:
    """``prompt`` if it is text of at most :data:`MAX_PROMPT_CHARS` characters; else UserError naming ``label``."""
    label = label or "The prompt"
    if not isinstance(prompt, str):
        raise UserError(f"{label} must be text.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserError(f"{label} is longer than {MAX_PROMPT_CHARS} characters ({len(prompt)}).")
    return prompt


#: Deepest JSON nesting a valid spec needs is 5 (spec > edits > edit > points > point); deeper is refused.
MAX_DEPTH = 8
#: Longest spec text accepted (a 10,000-edit spec is about 0.8 MB).
MAX_SPEC_CHARS = 4_000_000
#: Largest magnitude of any number in a spec (beyond it a float loses whole pixels and ids overflow).
MAX_NUMBER = 1e12
#: Longest compose ``source`` (a path or a folder name; file systems allow 4096 bytes at most).
MAX_SOURCE_CHARS = 1024


def _reject_constant(name: str):
    raise UserError(f"The edit spec contains {name}; every number must be finite.")


def _nesting_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting of JSON ``text`` outside strings, counted without recursion."""
    depth = deepest = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse_json(text: str, where: str) -> object:
    if len(text) > MAX_SPEC_CHARS:
        raise UserError(f"{where} is too long ({len(text):,} characters; at most {MAX_SPEC_CHARS:,}).")
    if _nesting_depth(text) > MAX_DEPTH:
        raise UserError(f"{where} is nested more than {MAX_DEPTH} levels deep; a spec needs at most 5.")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise UserError(f"{where} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}).") from err
    except (ValueError, RecursionError) as err:  # an integer literal of more than 4300 digits
        raise UserError(
            f"{where} contains a number too long to read; every number must be at most {MAX_NUMBER:g}."
        ) from err


def _check_values(obj, path: str = "spec") -> None:
    """Every number finite and at most :data:`MAX_NUMBER` in magnitude; iterative (no recursion)."""
    stack = [(obj, path)]
    while stack:
        obj, path = stack.pop()
        if isinstance(obj, float) and not math.isfinite(obj):
            raise UserError(f"The edit spec contains {obj} at {path}; every number must be finite.")
        if isinstance(obj, (int, float)) and not isinstance(obj, bool) and abs(obj) > MAX_NUMBER:
            raise UserError(
                f"The edit spec contains {excerpt(obj)} at {path}; every number must be at most "
                f"{MAX_NUMBER:g} in magnitude."
            )
        if isinstance(obj, dict):
            stack.extend((v, f"{path}.{_key(k)}") for k, v in obj.items())
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(obj))


def _key(k) -> str:
    """A dict key as it may appear in an error sentence (sanitised, short)."""
    return excerpt(str(k), 20).strip("'")


def _where(path) -> str:
    out = "spec"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{_key(p)}"
    return out


def _schema_message(err) -> str:
    """jsonschema's error, reworded so that it quotes the input only through :func:`excerpt`."""
    kind, inst, val = err.validator, err.instance, err.validator_value
    if kind == "type":
        want = val if isinstance(val, str) else " or ".join(val)
        return f"{excerpt(inst)} is not of type '{want}'"
    if kind == "required":
        missing = [k for k in val if isinstance(inst, dict) and k not in inst]
        return f"'{missing[0] if missing else val[0]}' is a required property"
    if kind == "additionalProperties":
        extra = [k for k in inst if k not in err.schema.get("properties", {})][:3] if isinstance(inst, dict) else []
        names = ", ".join(excerpt(str(k), 20) for k in extra)
        return f"Additional properties are not allowed ({names} {'was' if len(extra) == 1 else 'were'} unexpected)"
    if kind in ("enum", "const"):
        allowed = val if kind == "enum" else [val]
        return f"{excerpt(inst)} is not one of {', '.join(map(str, allowed))}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        rel = {
            "minimum": "less than the minimum of",
            "maximum": "greater than the maximum of",
            "exclusiveMinimum": "less than or equal to the minimum of",
            "exclusiveMaximum": "greater than or equal to the maximum of",
        }[kind]
        return f"{excerpt(inst)} is {rel} {val}"
    if kind in ("minItems", "maxItems"):
        n = len(inst) if isinstance(inst, list) else 0
        return f"a list of {n} items has {'too few' if kind == 'minItems' else 'too many'} (the limit is {val})"
    if kind in ("minLength", "maxLength"):
        n = len(inst) if isinstance(inst, str) else 0
        return f"a text of {n} characters is too {'short' if kind == 'minLength' else 'long'} (the limit is {val})"
    if kind in ("oneOf", "anyOf"):
        return "select elements with exactly one of elements, points or rect"
    return f"{excerpt(inst)} does not fit the spec format ({kind})"


def validate_dict(d: object) -> None:
    """Schema check with friendly messages for the common mistakes; raises UserError.

    Messages quote values of ``d`` only as short sanitised excerpts (:func:`elements.errors.excerpt`).
    """
    import jsonschema

    if not isinstance(d, dict):
        raise UserError("An edit spec must be a JSON object with 'version' and 'edits'.")
    _check_values(d)
    if "version" not in d:
        raise UserError("The edit spec has no 'version'; add \"version\": 1.")
    if d["version"] != SPEC_VERSION or isinstance(d["version"], bool):
        shown = f" {d['version']}" if isinstance(d["version"], int) and not isinstance(d["version"], bool) else ""
        raise UserError(f"Unsupported edit spec version{shown}; this program reads version {SPEC_VERSION}.")
    edits = d.get("edits")
    if isinstance(edits, list):
        for i, e in enumerate(edits, 1):
            if not isinstance(e, dict):
                raise UserError("Each edit must be a JSON object with an 'op'.", edit_index=i)
            if "op" not in e:
                raise UserError(f"Each edit needs an 'op'; choose one of {', '.join(OPS)}.", edit_index=i)
            if e["op"] not in OPS:
                raise UserError(
                    f"This edit has an unknown op {excerpt(e['op'])}; choose one of {', '.join(OPS)}.", edit_index=i
                )
            op = e["op"]
            given = [k for k in SELECTORS if k in e]
            if len(given) != 1:
                what = "none" if not given else " and ".join(given)
                raise UserError(
                    f"Select elements with exactly one of elements, points or rect (got {what}).", edit_index=i, op=op
                )
            if (
                "factor" in e
                and isinstance(e["factor"], (int, float))
                and not isinstance(e["factor"], bool)
                and e["factor"] <= 0
            ):
                raise UserError(
                    f"The {op} edit has factor {excerpt(e['factor'])}; a scale factor must be greater than 0.",
                    edit_index=i,
                    op=op,
                )
            src = e.get("source")
            if (
                op == "compose"
                and isinstance(src, str)
                and (len(src) > MAX_SOURCE_CHARS or any(ord(c) < 32 for c in src))
            ):
                raise UserError(
                    f"The compose source must be a file or folder name of at most {MAX_SOURCE_CHARS} "
                    "characters without control characters.",
                    edit_index=i,
                    op=op,
                )
    top, edit_validator = _validators()
    try:
        # the top level with its edit list emptied, then each *distinct* edit once (10,000 edits: ~1 s, not ~10 s)
        err = jsonschema.exceptions.best_match(top.iter_errors({**d, "edits": []} if isinstance(edits, list) else d))
        seen: set[str] = set()
        for i, e in enumerate(edits if isinstance(edits, list) and err is None else []):
            key = json.dumps(e, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            err = jsonschema.exceptions.best_match(edit_validator.iter_errors(e))
            if err is not None:
                raise UserError(
                    f"Invalid edit spec at {_where(['edits', i, *err.absolute_path])}: {_schema_message(err)}."
                )
    except RecursionError as err:  # unreachable after the depth check; kept so no input can crash validation
        raise UserError("The edit spec is nested too deeply.") from err
    if err is not None:
        raise UserError(f"Invalid edit spec at {_where(err.absolute_path)}: {_schema_message(err)}.")


@lru_cache(maxsize=1)
def _validators():
    """JSON Schema validators for a whole spec and for one edit (``$defs/edit``)."""
    import jsonschema

    full = schema()
    one = {"$schema": full["$schema"], "$ref": "#/$defs/edit", "$defs": full["$defs"]}
    return jsonschema.Draft202012Validator(full), jsonschema.Draft202012Validator(one)


def _short(msg: str) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= 160 else msg[:157] + "..."


def _to_spec(d: dict, base_dir: str | None) -> EditSpec:
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


def parse_spec(text: str) -> EditSpec:
    """Read and validate a spec from JSON **text only** — never a file name (for untrusted callers).

    The demo's ``/edit`` API uses this: whatever the text says, nothing on the server is read and
    error sentences quote the text only as short sanitised excerpts. Raises UserError.
    """
    if not isinstance(text, str):
        raise UserError(f"An edit spec must be JSON text, not {type(text).__name__}.")
    if not text.strip():
        raise UserError('The edit spec is empty; send JSON text such as {"version": 1, "edits": []}.')
    if not text.lstrip().startswith(("{", "[")):
        raise UserError("The edit spec must be JSON text starting with '{'; file names are not accepted here.")
    return _to_spec(_parse_json(text, "The edit spec"), None)


def load_spec(source) -> EditSpec:
    """Read and validate a spec from an :class:`EditSpec`, a dict, JSON text, or a path to a JSON file.

    For trusted callers (the CLI, Python code): text not starting with ``{`` or ``[`` is a path
    (``~`` is not expanded; the shell does that). Untrusted text goes through :func:`parse_spec`.
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
        try:
            path = Path(source)
            if not path.is_file():
                raise UserError(f"Edit spec file '{_short(str(path))}' does not exist.")
            if path.stat().st_size > MAX_SPEC_CHARS * 4:
                raise UserError(f"Edit spec file '{_short(str(path))}' is too large to be an edit spec.")
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError, UnicodeDecodeError) as err:  # name too long, NUL in the name, not UTF-8
            raise UserError(
                f"Edit spec file '{_short(str(source))}' could not be read ({type(err).__name__})."
            ) from err
        d = _parse_json(text, f"Edit spec file '{_short(str(path))}'")
        base_dir = str(path.resolve().parent)
    else:
        raise UserError(f"An edit spec must be a path, JSON text or a dict, not {type(source).__name__}.")
    return _to_spec(d, base_dir)


__all__ = [
    "GUIDANCE_RANGE",
    "LIMITS",
    "MAX_DEPTH",
    "MAX_NUMBER",
    "MAX_PROMPT_CHARS",
    "OPS",
    "SCHEMA_PATH",
    "SEED_RANGE",
    "SPEC_VERSION",
    "STEPS_RANGE",
    "EditSpec",
    "check_prompt",
    "check_setting",
    "load_spec",
    "parse_spec",
    "schema",
    "validate_dict",
]
