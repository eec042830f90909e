"""Write the table of error codes in docs/api.md from auth_service/error_codes.py:
``python docs/generate_error_codes.py`` (``make docs``); with ``--check`` it writes nothing
and exits 1 when the table is stale.

The table sits between two markers in docs/api.md; the rest of the page is written by hand.
error_codes.py imports nothing from the package, so it is loaded from its file alone.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "auth_service" / "error_codes.py"
PAGE = ROOT / "docs" / "api.md"
BEGIN = (
    "<!-- Generated from auth_service/error_codes.py by docs/generate_error_codes.py "
    "(make docs). Edit error_codes.py, not this table. -->"
)
END = "<!-- End of the generated table of error codes. -->"


def load(path: Path):
    """The Python file at ``path`` as a module (neither it nor docs/ is in a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render() -> str:
    """The generated block, markers included."""
    table = load(TABLE)
    out = [
        BEGIN,
        "| Status | `error` | Default `message` | `WWW-Authenticate` error |",
        "|---|---|---|---|",
    ]
    for member in sorted(table.Error, key=lambda member: (member.status, member.code)):
        bearer = f"`{member.bearer_error}`" if member.bearer_error else ""
        message = member.message.replace("|", "\\|")
        out.append(f"| {member.status} | `{member.code}` | {message} | {bearer} |")
    out += [
        "",
        f"A status no row stands for (a 416 from a `Range` request) answers "
        f"`{table.UNLISTED_CODE}`.",
        END,
    ]
    return "\n".join(out)


def rendered_page(page: str) -> str:
    """``page`` with its generated block replaced by the current one."""
    head, found, rest = page.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(
            f"{PAGE.relative_to(ROOT)}: the markers of the error-code table are missing"
        )
    return head + render() + tail


def main(argv: list[str]) -> int:
    page = rendered_page(PAGE.read_text())
    return load(ROOT / "docs" / "generate_configuration.py").write_or_check(PAGE, page, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
