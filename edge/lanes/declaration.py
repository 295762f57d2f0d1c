"""Declared cargo: one pydantic model for a scanned waybill, the API and the inspector's form."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.lanes.errors import DeclarationError
from edge.lanes.watchlist import norm_code

_ISO6346 = re.compile(r"^[A-Z]{3}[UJZR][0-9]{7}$")


def container_check_digit_ok(code: str) -> bool:
    """ISO 6346 check digit (letters valued 10.. skipping multiples of 11)."""
    code = norm_code(code)
    if not _ISO6346.match(code):
        return False
    values = {}
    v = 10
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if v % 11 == 0:
            v += 1
        values[ch] = v
        v += 1
    total = sum((values[c] if c.isalpha() else int(c)) * (2**i) for i, c in enumerate(code[:10]))
    return total % 11 % 10 == int(code[10])


class GoodsLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(min_length=1, max_length=500, description="What the goods are.")
    hs_code: str | None = Field(None, pattern=r"^[0-9]{4,10}$", description="Harmonized System code.")
    quantity: float | None = Field(None, gt=0, description="Number of units.")
    weight_kg: float | None = Field(None, gt=0, le=200000, description="Weight of this line.")


class Declaration(BaseModel):
    """What the carrier declares; at least one way to find the session is required by the service."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    session_id: str | None = Field(None, max_length=64, description="The session to attach to.")
    lane_id: str | None = Field(None, max_length=64, description="Attach to this lane's active session.")
    plate: str | None = Field(None, min_length=4, max_length=16, description="Vehicle plate, to find its session.")
    waybill: str | None = Field(None, min_length=1, max_length=64, description="Waybill / consignment number.")
    declared_weight_kg: float | None = Field(None, gt=0, le=200000, description="Declared gross weight, kg.")
    goods: list[GoodsLine] = Field(default_factory=list, max_length=200, description="Goods lines.")
    containers: list[str] = Field(default_factory=list, max_length=20, description="ISO 6346 container codes.")
    seals: list[str] = Field(default_factory=list, max_length=50, description="Seal / e-seal ids.")
    shipper: str | None = Field(None, max_length=200)
    consignee: str | None = Field(None, max_length=200)
    source: Literal["api", "inspector", "waybill"] = Field("api", description="Where the declaration came from.")

    @field_validator("containers")
    @classmethod
    def _containers(cls, value: list[str]) -> list[str]:
        out = []
        for code in value:
            c = norm_code(code)
            if not _ISO6346.match(c):
                raise ValueError(f"{code!r} is not an ISO 6346 container code (4 letters, 7 digits)")
            out.append(c)  # a wrong check digit is kept: the rules report it, it is evidence
        return out

    @field_validator("seals")
    @classmethod
    def _seals(cls, value: list[str]) -> list[str]:
        out = []
        for seal in value:
            s = norm_code(seal)
            if not re.fullmatch(r"[0-9A-Z]{4,32}", s):
                raise ValueError(f"seal id {seal!r} must be 4-32 letters or digits")
            out.append(s)
        return out


def parse_declaration(data: Any) -> Declaration:
    """Validate ``data``; ``DeclarationError`` names the first bad field in one line."""
    if not isinstance(data, dict):
        raise DeclarationError(f"a declaration is a JSON object, not {type(data).__name__}")
    try:
        return Declaration.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "declaration"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DeclarationError(f"{where}: {first['msg'].removeprefix('Value error, ')}{more}") from None


def declaration_body(d: Declaration) -> dict[str, Any]:
    """The stored form: cargo only (targeting fields dropped), JSON-ready."""
    return d.model_dump(mode="json", exclude={"session_id", "lane_id"})
