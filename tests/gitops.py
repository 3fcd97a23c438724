"""Argo CD's reading of Conveyor's objects, by the real Lua: `argo_health(kind, obj)`.

Argo CD runs a resource's health script under gopher-lua (Lua 5.1) with the live object as the
global `obj`, and takes the table the script returns (`hs.status`, `hs.message`). This module
does the same with the `lua5.1` interpreter on the scripts of `manifests/gitops/argocd/
argocd-cm.yaml` (the exact text Argo CD is given): the object becomes a Lua table literal
(every string escaped byte by byte, so any text is safe), the script becomes the body of a
function, and the result comes back hex-encoded, one `key=value` line per field.

`python -m tests.gitops` writes argocd-cm.yaml from health.lua (one entry per kind).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ARGOCD_CM",
    "HEALTH_LUA",
    "KINDS",
    "LuaError",
    "argo_health",
    "argocd_cm_text",
    "health_key",
    "lua",
    "lua_literal",
]

REPO = Path(__file__).resolve().parents[1]
ARGOCD = REPO / "manifests" / "gitops" / "argocd"
HEALTH_LUA = ARGOCD / "health.lua"
ARGOCD_CM = ARGOCD / "argocd-cm.yaml"
GROUP = "conveyor.dev"
KINDS = ("FeatureSet", "TrainingPipeline", "ModelVersion", "RetrainPolicy")
_PRINTABLE = {c for c in range(0x20, 0x7F)} - {ord('"'), ord("\\")}


class LuaError(RuntimeError):
    """The interpreter failed: Argo CD would show the resource's health as Unknown."""


def lua() -> str | None:
    """The Lua 5.1 interpreter, when installed (Debian: apt-get install lua5.1)."""
    return shutil.which("lua5.1")


def health_key(kind: str) -> str:
    return f"resource.customizations.health.{GROUP}_{kind}"


def argocd_cm_text() -> str:
    """argocd-cm.yaml as health.lua makes it."""
    script = HEALTH_LUA.read_text()
    lines = [
        "# Argo CD health checks for Conveyor's four kinds: merge into Argo CD's argocd-cm, e.g.",
        "#   kubectl -n argocd patch configmap argocd-cm --patch-file argocd-cm.yaml",
        "# GENERATED from health.lua by `python -m tests.gitops`; a test fails when they differ.",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  namespace: argocd",
        "  labels:",
        "    app.kubernetes.io/name: argocd-cm",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for kind in KINDS:
        lines.append(f"  {health_key(kind)}: |")
        lines += [f"    {line}" if line else "" for line in script.splitlines()]
    return "\n".join(lines) + "\n"


def _scripts() -> dict[str, str]:
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    return {kind: data[health_key(kind)] for kind in KINDS if health_key(kind) in data}


def _string(text: str) -> str:
    return '"' + "".join(chr(b) if b in _PRINTABLE else f"\\{b:03d}" for b in text.encode()) + '"'


def lua_literal(value: Any) -> str:
    """`value` (JSON-like data) as a Lua 5.1 expression, as Argo CD hands objects to Lua:
    mappings and lists become tables, None becomes nil."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 2**53 else repr(float(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "(0/0)"
        if math.isinf(value):
            return "math.huge" if value > 0 else "(-math.huge)"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = (f"[{_string(str(k))}] = {lua_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    return _string(str(value))


_RUNNER = """
obj = {obj}
local function health()
{script}
end
local hs = health()
local function hex(s)
  return (string.gsub(s, ".", function(c) return string.format("%02x", string.byte(c)) end))
end
if type(hs) ~= "table" then
  io.write("!", hex(type(hs)), "\\n")
else
  for key, value in pairs(hs) do
    io.write(hex(tostring(key)), "=", hex(type(value) .. ":" .. tostring(value)), "\\n")
  end
end
"""


def argo_health(kind: str, obj: Any) -> dict[str, str]:
    """What Argo CD's health check for `kind` says of `obj` (any JSON-like value): the keys the
    script's `hs` table has (status, message), as strings. Raises LuaError when the script
    fails or returns no table, as Argo CD would report an error."""
    interpreter = lua()
    if interpreter is None:
        raise LuaError("lua5.1 is not installed (Debian: apt-get install lua5.1)")
    script = _scripts().get(kind)
    if script is None:
        raise KeyError(f"argocd-cm.yaml has no health check {health_key(kind)}")
    program = _RUNNER.format(obj=lua_literal(obj), script=script)
    completed = subprocess.run(
        [interpreter, "-"], input=program.encode(), capture_output=True, timeout=30, check=False
    )
    if completed.returncode != 0:
        raise LuaError(f"the {kind} health check failed: {completed.stderr.decode().strip()}")
    result: dict[str, str] = {}
    for line in completed.stdout.decode().splitlines():
        if line.startswith("!"):
            got = bytes.fromhex(line[1:]).decode()
            raise LuaError(f"the {kind} health check returned a {got}, not a table")
        key_hex, _, value_hex = line.partition("=")
        key = bytes.fromhex(key_hex).decode(errors="replace")
        value = bytes.fromhex(value_hex).decode(errors="replace")
        type_, _, text = value.partition(":")
        if type_ != "string":
            raise LuaError(f"the {kind} health check set hs.{key} to a {type_}, not a string")
        result[key] = text
    return result


if __name__ == "__main__":
    ARGOCD_CM.write_text(argocd_cm_text())
    sys.stdout.write(f"Wrote {ARGOCD_CM.relative_to(REPO)}\n")
