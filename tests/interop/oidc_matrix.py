"""A pytest plugin (`-p tests.interop.oidc_matrix`, in pyproject's addopts) that prints the OpenID
Connect relying-party matrix at the end of the run: one row per RP, one column per flow.

tests/interop/test_oidc_matrix.py records `oidc_rp` and `oidc_results` (JSON: flow -> outcome)
with `record_property`; the reports carry them (under pytest-xdist too) to the summary.
"""

import json

FLOWS = [
    "discovery",
    "code + PKCE",
    "ID token vs JWKS",
    "userinfo",
    "refresh",
    "RP-initiated logout",
    "portal sign-out",
    "after key rotation",
]
_results: dict[str, dict[str, str]] = {}


def pytest_runtest_logreport(report) -> None:
    properties = dict(report.user_properties)
    if "oidc_rp" not in properties or report.when != "call":
        return
    _results[properties["oidc_rp"]] = json.loads(properties.get("oidc_results", "{}"))


def render() -> list[str]:
    header = ["RP", *FLOWS]
    rows = [[rp, *(_results[rp].get(flow, "-") for flow in FLOWS)] for rp in sorted(_results)]
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |" for line in [header, *rows]]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return lines


def pytest_terminal_summary(terminalreporter) -> None:
    if not _results:
        return
    terminalreporter.section("OpenID Connect relying-party matrix")
    for line in render():
        terminalreporter.write_line(line)
