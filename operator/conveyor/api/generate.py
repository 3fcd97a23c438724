"""`python -m conveyor.api.generate <crds-dir>` (what `make crds` runs): write the CRDs, their
kustomize copies and the API reference, all from the models in `v1alpha1/`.

It sits above both generators (`crd`, `reference`), so neither imports the other's caller.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .crd import render_crds
from .reference import render_reference

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m conveyor.api.generate <crds-dir>"
            "  (also writes ../manifests/crd/bases and ../docs/api.md)",
            file=sys.stderr,
        )
        return 2
    out = Path(args[0])
    # kustomize loads files only below a kustomization, so manifests/crd/bases holds copies.
    bases = out.parent / "manifests" / "crd" / "bases"
    for directory in (out, bases):
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in render_crds().items():
            (directory / name).write_text(text)
            print(f"wrote {directory / name}")
    docs = out.parent / "docs" / "api.md"
    docs.parent.mkdir(exist_ok=True)
    docs.write_text(render_reference())
    print(f"wrote {docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
