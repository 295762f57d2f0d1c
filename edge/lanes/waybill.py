"""Declarations carried by a scanned waybill barcode (pure).

Two encodings are understood:

* GS1 element strings with a consignment or shipment id, AI 401 (GINC) or 402 (GSIN),
  optionally AI 330n (gross weight, kg, n decimals);
* the text form ``WAYBILL;NO=KZ-2026-0042;KG=24000;GOODS=steel pipes;CONT=CSQU3054383;SEALS=0A1B2C3D4E5F``
  (keys in any order, lists separated by commas).
"""

from __future__ import annotations

from typing import Any

_TEXT_KEYS = {"NO": "waybill", "KG": "declared_weight_kg", "GOODS": "goods", "CONT": "containers",
              "SEALS": "seals", "PLATE": "plate", "SHIPPER": "shipper", "CONSIGNEE": "consignee"}


def waybill_from_fields(kind: str | None, fields: dict[str, Any]) -> dict[str, Any] | None:
    """A raw declaration dict from a barcode reading's fields, or None when it is not a waybill."""
    if kind == "gs1":
        out: dict[str, Any] = {}
        for el in fields.get("elements") or []:
            ai, data = str(el.get("ai", "")), str(el.get("data", ""))
            if ai in ("401", "402"):
                out["waybill"] = data
            elif len(ai) == 4 and ai.startswith("330") and data.isdigit():
                out["declared_weight_kg"] = int(data) / 10 ** int(ai[3])
        return out if "waybill" in out else None
    text = str(fields.get("text") or fields.get("data") or "")
    if kind == "text" and text.upper().startswith("WAYBILL;"):
        out = {}
        for part in text.split(";")[1:]:
            key, _, value = part.partition("=")
            name = _TEXT_KEYS.get(key.strip().upper())
            if name is None or not value.strip():
                continue
            value = value.strip()
            if name in ("containers", "seals"):
                out[name] = [v.strip() for v in value.split(",") if v.strip()]
            elif name == "goods":
                out[name] = [{"description": value}]
            else:
                out[name] = value
        return out if "waybill" in out else None
    return None
