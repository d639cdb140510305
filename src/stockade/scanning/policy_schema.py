"""pydantic models of the ignore file and of OpenVEX documents (imported only when one is read)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class IgnoreEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1)
    package: str | None = None
    reason: str = Field(min_length=1)
    expires: date | None = None

    @field_validator("id", "package", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        if isinstance(v, (int, float)):
            raise ValueError("must be a string")
        return v


class IgnoreFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    ignore: list[IgnoreEntry] = Field(default_factory=list)


VexStatus = Literal["not_affected", "affected", "fixed", "under_investigation"]
VexJustification = Literal[
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
]


class VexVuln(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = Field(default=None, alias="@id")
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class VexSub(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(alias="@id", min_length=1)


class VexProductModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(alias="@id", min_length=1)
    subcomponents: list[VexSub] = Field(default_factory=list)


class VexStatementModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    vulnerability: VexVuln
    products: list[VexProductModel] = Field(min_length=1)
    status: VexStatus
    justification: VexJustification | None = None
    impact_statement: str | None = None
    action_statement: str | None = None
    timestamp: datetime | None = None

    @field_validator("vulnerability", mode="before")
    @classmethod
    def _vuln_string(cls, v: Any) -> Any:
        # OpenVEX 0.0.x wrote the vulnerability as a bare string.
        return {"name": v} if isinstance(v, str) else v

    @field_validator("products", mode="before")
    @classmethod
    def _product_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"@id": p} if isinstance(p, str) else p for p in v]
        return v

    @model_validator(mode="after")
    def _not_affected_needs_why(self) -> VexStatementModel:
        if self.status == "not_affected" and not (self.justification or self.impact_statement):
            raise ValueError(
                "a not_affected statement needs a justification or an impact_statement"
            )
        return self


class VexDocument(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    context: str = Field(alias="@context")
    id: str | None = Field(default=None, alias="@id")
    author: str | None = None
    timestamp: datetime | None = None
    version: int | None = None
    statements: list[VexStatementModel]

    @field_validator("context")
    @classmethod
    def _openvex(cls, v: str) -> str:
        if not v.startswith("https://openvex.dev/ns"):
            raise ValueError(f"not an OpenVEX document (@context {v!r})")
        return v
