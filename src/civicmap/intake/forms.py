"""Publishing XLSForms into an intake store, and what clients read about them.

* :func:`publish_form` reads an XLSForm with :func:`civicmap.sources.survey.read_form` (pyxform)
  and stores the spreadsheet bytes, the schema as JSON and the compiled XForm;
* :func:`form_schema` turns a stored record back into a :class:`FormSchema` (no pyxform run);
* :func:`schema_document` is what civicmap's web form renders: every question with type,
  label, required, choices, numeric bounds, which field gives the geometry, and which answers
  are private ("seen only by moderators");
* :func:`form_list_xml` is the OpenRosa form list (``/formList``) for ODK Collect / KoBoCollect.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from types import MappingProxyType
from typing import Any
from xml.sax.saxutils import escape

from civicmap.errors import FormError
from civicmap.intake.base import FormRecord, FormSettings, IntakeStore, utc_now
from civicmap.sources.survey import Choice, FormField, FormSchema, read_form

__all__ = ["form_list_xml", "form_metadata", "form_schema", "publish_form", "schema_document", "xform_md5"]

PRIVATE_NOTE = "seen only by moderators"


def publish_form(store: IntakeStore, xlsform_path: str | Path, *, settings: FormSettings | None = None) -> FormRecord:
    """Publish a version of the XLSForm at ``xlsform_path`` (idempotent for the same id and version).

    The version is the form's ``settings.version``, or a hash of the file when it has none.
    Raises :class:`FormError` when the settings name fields the form lacks or the form has no
    ``meta/instanceID`` (without it resubmissions cannot be recognised).
    """
    path = Path(xlsform_path)
    schema = read_form(path)
    settings = settings or FormSettings()
    _check_settings(schema, settings)
    data = path.read_bytes()
    if not schema.xform_xml:
        raise FormError(f"{path.name}: pyxform produced no XForm")
    record = FormRecord(
        form_id=schema.form_id,
        version=schema.version or hashlib.sha256(data).hexdigest()[:12],
        title=schema.title,
        schema=_schema_json(schema),
        xform_xml=schema.xform_xml,
        xlsform=data,
        published_at=utc_now(),
        settings=settings,
    )
    return store.publish_form(record)


def _check_settings(schema: FormSchema, settings: FormSettings) -> None:
    keys = {f.key for f in schema.fields} | {f.name for f in schema.fields}
    problems = []
    if "meta/instanceID" not in keys:
        problems.append("the form has no meta/instanceID (pyxform adds it unless the settings sheet removes it)")
    if settings.duplicate_field and settings.duplicate_field not in keys:
        problems.append(f"duplicate_field {settings.duplicate_field!r} is not a question of the form")
    images = {f.name for f in schema.fields if f.type == "image"} | {f.key for f in schema.fields if f.type == "image"}
    problems += [
        f"keep_exif_fields: {n!r} is not an image question" for n in settings.keep_exif_fields if n not in images
    ]
    if settings.coarsen_m < 0 or settings.duplicate_radius_m < 0 or settings.duplicate_window_h < 0:
        problems.append("coarsen_m, duplicate_radius_m and duplicate_window_h must not be negative")
    if problems:
        raise FormError(f"form {schema.form_id!r}: " + "; ".join(problems))


def _schema_json(schema: FormSchema) -> dict[str, Any]:
    return {
        "form_id": schema.form_id,
        "version": schema.version,
        "title": schema.title,
        "fields": [dataclasses.asdict(f) for f in schema.fields],
        "choices": {k: [dataclasses.asdict(c) for c in v] for k, v in schema.choices.items()},
    }


def form_schema(record: FormRecord) -> FormSchema:
    """The :class:`FormSchema` of a stored form version (rebuilt from its JSON; pyxform is not run)."""
    data = record.schema
    return FormSchema(
        form_id=record.form_id,
        version=data.get("version"),
        title=data.get("title"),
        fields=tuple(FormField(**f) for f in data["fields"]),
        choices=MappingProxyType({k: tuple(Choice(**c) for c in v) for k, v in data["choices"].items()}),
        xform_xml=record.xform_xml,
    )


def form_metadata(record: FormRecord, base_url: str) -> dict[str, Any]:
    """Public description of a form (no private answers exist here, only field names)."""
    return {
        "form_id": record.form_id,
        "version": record.version,
        "title": record.title,
        "open": record.open,
        "published_at": record.published_at,
        "anonymous_submissions": record.settings.anonymous,
        "links": {
            "schema": f"{base_url}/forms/{record.form_id}/schema.json",
            "xform": f"{base_url}/forms/{record.form_id}/form.xml",
            "submissions": f"{base_url}/forms/{record.form_id}/submissions",
        },
    }


def schema_document(record: FormRecord) -> dict[str, Any]:
    """What the web form renders (see the module docstring); private fields carry ``visibility``."""
    schema = form_schema(record)
    geo = schema.geo_fields[0].key if schema.geo_fields else None
    fields = []
    for f in schema.fields:
        if not f.has_value or f.type in ("start", "end", "today", "calculate") or f.key.startswith("meta/"):
            continue
        entry: dict[str, Any] = {"name": f.key, "type": f.type, "label": f.label, "required": f.required}
        if f.choice_list in schema.choices:
            entry["choices"] = [{"name": c.name, "label": c.label} for c in schema.choices[str(f.choice_list)]]
        if f.min_value is not None or f.max_value is not None:
            entry["constraint"] = {"min": f.min_value, "max": f.max_value}
            entry["constraint"] |= {"min_exclusive": f.min_exclusive, "max_exclusive": f.max_exclusive}
        if f.relevant:
            entry["relevant"] = f.relevant
        entry["visibility"] = PRIVATE_NOTE if f.private else "public after moderation"
        entry["private"] = f.private
        fields.append(entry)
    return {
        "form_id": record.form_id,
        "version": record.version,
        "title": record.title,
        "open": record.open,
        "geometry_field": geo,
        "coordinate_order": "GeoJSON [longitude, latitude] in 'location'; ODK text 'latitude longitude alt acc'",
        "fields": fields,
    }


def xform_md5(record: FormRecord) -> str:
    """``md5:<hex>`` of the XForm, as OpenRosa form lists give it."""
    return "md5:" + hashlib.md5(record.xform_xml.encode(), usedforsecurity=False).hexdigest()


def form_list_xml(records: list[FormRecord], base_url: str) -> str:
    """The OpenRosa ``<xforms>`` list of the open forms (latest version each)."""
    items = []
    for r in records:
        if not r.open:
            continue
        url = escape(f"{base_url}/forms/{r.form_id}/form.xml")
        items.append(
            f"<xform><formID>{escape(r.form_id)}</formID><name>{escape(r.title or r.form_id)}</name>"
            f"<version>{escape(r.version)}</version><hash>{xform_md5(r)}</hash>"
            f"<downloadUrl>{url}</downloadUrl></xform>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><xforms xmlns="http://openrosa.org/xforms/xformsList">'
        + "".join(items)
        + "</xforms>"
    )
