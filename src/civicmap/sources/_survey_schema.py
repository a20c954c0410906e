"""XLSForm -> :class:`FormSchema`, through pyxform (the reference converter ODK Central runs).

Internals of :mod:`civicmap.sources.survey`; the conventions are documented there.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyxform.builder import create_survey_element_from_dict
from pyxform.errors import PyXFormError
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from civicmap.errors import FormError, NotFoundError

__all__ = ["GEO_TYPES", "Choice", "FormField", "FormSchema", "read_form"]

log = logging.getLogger(__name__)

GEO_TYPES = ("geopoint", "geotrace", "geoshape")
NO_VALUE_TYPES = frozenset({"note", "group", "repeat"})
_PYXFORM_TYPES = {
    "select one": "select_one",
    "select all that apply": "select_multiple",
    "select one external": "select_one_external",
    "photo": "image",
}
_PERSONAL_METADATA = frozenset({"deviceid", "phonenumber", "username", "email", "subscriberid", "simserial"})
_TRUE = frozenset({"yes", "true", "true()", "1", "y"})
_FALSE = frozenset({"", "no", "false", "false()", "0", "n", "none"})
_CONTACT = re.compile(r"phone|telephone|mobile|email|nationalid|idnumber|idcard|passport")
_PERSON = re.compile(r"respondent|owner|interviewee|informant|householder|headofhousehold|hhhead|tenant|landlord")
_BOUND = re.compile(r"^\s*\.\s*(>=|>|<=|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Choice:
    """One answer of a select list: ``name`` is the stored value, ``label`` what people see."""

    name: str
    label: str | None = None


@dataclass(frozen=True)
class FormField:
    """One question of a form (groups are flattened into ``path``).

    ``path`` is the enclosing group path (``"household/occupants"`` for a field inside the
    ``occupants`` group of ``household``; ``""`` at the top). ``relevant`` combines the
    field's own relevance with that of its enclosing groups. ``min_value``/``max_value``
    come from simple constraints such as ``. >= 0 and . <= 30`` (``*_exclusive`` for ``>``,
    ``<``). ``column`` is the column the field gets in a submissions frame: its name, or its
    full path when the name is used twice in the form. ``repeat`` names the enclosing repeat
    group (such fields are not read into the one-row-per-submission frame).
    """

    name: str
    path: str
    type: str
    label: str | None = None
    required: bool = False
    choice_list: str | None = None
    constraint: str | None = None
    relevant: str | None = None
    private: bool = False
    private_reason: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    column: str = ""
    repeat: str | None = None

    @property
    def key(self) -> str:
        """Full slash path: ``"household/occupants/age"``."""
        return f"{self.path}/{self.name}" if self.path else self.name

    @property
    def has_value(self) -> bool:
        """Whether submissions carry a value for this field (not a note, nor inside a repeat)."""
        return self.type not in NO_VALUE_TYPES and self.repeat is None


@dataclass(frozen=True)
class FormSchema:
    """An XLSForm as civicmap reads it: identity, questions, select lists and the XForm.

    ``choices`` maps list names to their choices; ``xform_xml`` is the XForm pyxform
    compiled (what ODK Collect downloads); ``source`` is the file read.
    """

    form_id: str
    version: str | None
    title: str | None
    fields: tuple[FormField, ...]
    choices: Mapping[str, tuple[Choice, ...]] = dc_field(default_factory=lambda: MappingProxyType({}))
    xform_xml: str | None = None
    source: str | None = None
    warnings: tuple[str, ...] = ()

    def field(self, name: str) -> FormField:
        """The field with this name, full path or column; :class:`NotFoundError` otherwise."""
        for f in self.fields:
            if name in (f.name, f.key, f.column):
                return f
        raise NotFoundError(
            f"form {self.form_id!r} has no field {name!r}; its fields are: " + ", ".join(f.key for f in self.fields)
        )

    @property
    def geo_fields(self) -> tuple[FormField, ...]:
        """Geopoint, geotrace and geoshape questions, in form order (the first gives geometry)."""
        return tuple(f for f in self.fields if f.type in GEO_TYPES)

    @property
    def private_fields(self) -> tuple[FormField, ...]:
        """Fields holding personal data (``private`` column, personal metadata or a name pattern)."""
        return tuple(f for f in self.fields if f.private)


def read_form(path: str | Path) -> FormSchema:
    """Read an XLSForm (``.xls``/``.xlsx``) into a :class:`FormSchema` using pyxform.

    Raises :class:`NotFoundError` if the file is missing and :class:`FormError` (with
    pyxform's own message and the sheet row, where known) if pyxform rejects the form or a
    ``private`` cell is not yes/no.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"XLSForm {path} does not exist")
    if path.suffix.lower() not in (".xls", ".xlsx"):
        raise FormError(
            f"{path.name}: expected an XLSForm spreadsheet (.xls or .xlsx), got {path.suffix or 'no suffix'!r}"
        )
    data, xform, warnings = _convert(path)
    for w in warnings:
        log.info("pyxform: %s: %s", path.name, w)
    fields = _with_columns(list(_walk(data.get("children", []), path=path)))
    return FormSchema(
        form_id=str(data.get("id_string") or data.get("name") or path.stem),
        version=_opt_str(data.get("version")),
        title=_label(data.get("title")),
        fields=tuple(fields),
        choices=MappingProxyType(_choices(data.get("choices", {}))),
        xform_xml=xform,
        source=str(path),
        warnings=tuple(warnings),
    )


def _convert(path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """Run pyxform's conversion steps, turning its errors into :class:`FormError`."""
    warnings: list[str] = []
    workbook = None
    try:
        workbook = get_xlsform(xlsform=str(path))
        data = workbook_to_json(
            workbook_dict=workbook,
            form_name=None,
            fallback_form_name=workbook.fallback_form_name,
            warnings=warnings,
        )
        survey = create_survey_element_from_dict(data)
        xform = survey.to_xml(validate=False, pretty_print=False, warnings=warnings)
    except PyXFormError as exc:
        raise FormError(_form_error_message(path, str(exc), workbook)) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise FormError(f"{path.name}: not a readable XLSForm spreadsheet ({exc}); save it again as .xlsx") from exc
    return data, xform, warnings


def _form_error_message(path: Path, text: str, workbook: Any) -> str:
    """Pyxform's message plus, where pyxform gives no row, the row we can find, and the fix."""
    text = text.strip()
    fix = "fix the form (see https://xlsform.org/en/) and read it again"
    unknown = re.search(r"Unknown question type '([^']*)'", text)
    if unknown and workbook is not None:
        for i, row in enumerate(getattr(workbook, "survey", []) or []):
            if str(row.get("type", "")).strip() == unknown.group(1):
                return (
                    f"{path.name}: sheet 'survey', row {i + 2}: pyxform says: {text} "
                    f"Use a type listed at https://xlsform.org/en/#question-types (is {unknown.group(1)!r} misspelt?)"
                )
    if "sheet named 'survey'" in text:
        fix = "add a sheet named 'survey' with columns type, name and label"
    elif "not in choices sheet" in text:
        fix = "add the list to the 'choices' sheet (columns list_name, name, label) or fix the list name"
    elif "must be unique" in text:
        fix = "give the question a name not used elsewhere in the same group"
    return f"{path.name}: pyxform says: {text} ({fix})"


def _walk(
    children: list[dict[str, Any]], *, path: Path, parents: tuple[str, ...] = (), relevant: str | None = None
) -> Iterator[FormField]:
    """Yield the questions of a pyxform JSON tree, depth first, in form order."""
    for child in children:
        ctype = _type_of(child)
        own = (child.get("bind") or {}).get("relevant")
        rel = " and ".join(f"({r})" for r in (relevant, own) if r) or None
        if ctype in ("group", "repeat"):
            inner = (*parents, str(child["name"]))
            fields = _walk(child.get("children", []), path=path, parents=inner, relevant=rel)
            for inner_field in fields:
                if ctype == "repeat" and inner_field.repeat is None:
                    inner_field = replace(inner_field, repeat="/".join(inner))  # noqa: PLW2901
                yield inner_field
            continue
        yield _field(child, ctype, parents=parents, relevant=rel, path=path)


def _field(
    child: dict[str, Any], ctype: str, *, parents: tuple[str, ...], relevant: str | None, path: Path
) -> FormField:
    bind = child.get("bind") or {}
    name = str(child["name"])
    private, reason = _privacy(child, name, ctype, path=path)
    constraint = _opt_str(bind.get("constraint"))
    bounds = _bounds(constraint) if ctype in ("integer", "decimal", "range") else {}
    return FormField(
        name=name,
        path="/".join(parents),
        type=ctype,
        label=_label(child.get("label")),
        required=str(bind.get("required", "")).strip().lower() in _TRUE,
        choice_list=_opt_str(child.get("list_name")),
        constraint=constraint,
        relevant=relevant,
        private=private,
        private_reason=reason,
        **bounds,
    )


def _type_of(child: dict[str, Any]) -> str:
    """XLSForm type name (``select_one`` ...) for a pyxform JSON element."""
    raw = str(child.get("type", "")).strip()
    ctype = _PYXFORM_TYPES.get(raw, raw.replace(" ", "_"))
    itemset = str(child.get("itemset") or "")
    if ctype in ("select_one", "select_multiple") and not child.get("list_name") and "." in itemset:
        ctype += "_from_file"
    return ctype


def _privacy(child: dict[str, Any], name: str, ctype: str, *, path: Path) -> tuple[bool, str | None]:
    """The ``private`` column first, then personal metadata types, then the name patterns."""
    cell = next((v for k, v in child.items() if str(k).strip().lower() == "private"), None)
    text = "" if cell is None else str(cell).strip().lower()
    if text in _TRUE:
        return True, "private column"
    if text not in _FALSE:
        raise FormError(
            f"{path.name}: sheet 'survey', question {name!r}: 'private' is {cell!r}; "
            "expected yes/no (also true/false, 1/0, TRUE()/FALSE())"
        )
    if ctype in _PERSONAL_METADATA:
        return True, f"personal metadata ({ctype})"
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    if _CONTACT.search(compact) or (_PERSON.search(compact) and "name" in compact):
        return True, "name pattern"
    return False, None


def _bounds(constraint: str | None) -> dict[str, Any]:
    """Bounds from a constraint made only of ``. op number`` clauses joined by ``and``."""
    if not constraint or re.search(r"\bor\b", constraint):
        return {}
    out: dict[str, Any] = {}
    for clause in re.split(r"\band\b", constraint):
        m = _BOUND.match(clause)
        if not m:
            continue
        op, num = m.group(1), float(m.group(2))
        side = "min" if op.startswith(">") else "max"
        out[f"{side}_value"] = num
        out[f"{side}_exclusive"] = op in (">", "<")
    return out


def _with_columns(fields: list[FormField]) -> list[FormField]:
    """Give each value-bearing field its frame column: its name, or its path if the name repeats."""
    counts = Counter(f.name for f in fields if f.has_value)
    return [replace(f, column=f.name if counts[f.name] <= 1 else f.key) for f in fields]


def _choices(raw: Mapping[str, Any]) -> dict[str, tuple[Choice, ...]]:
    return {
        str(name): tuple(Choice(str(c.get("name")), _label(c.get("label"))) for c in items if c.get("name") is not None)
        for name, items in raw.items()
    }


def _label(value: Any) -> str | None:
    """A label; for translated labels, the first language's text."""
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    return _opt_str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value)
