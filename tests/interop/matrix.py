"""A pytest plugin (`-p tests.interop.matrix`, in pyproject's addopts) that prints the
interoperability matrix at the end of the run: one row per SP, one column per flow, and the
algorithms the portal negotiated with each SP.

Tests in tests/interop/test_matrix.py record `sp`, `flow` and `algorithms` with `record_property`;
the reports carry them (under pytest-xdist too) to the process that writes the terminal summary.
"""

FLOWS = ["sp-initiated, encrypted", "sp-initiated, plain", "idp-initiated (launchpad)", "attributes", "SLO from the SP"]
_results: dict[str, dict[str, str]] = {}
_algorithms: dict[str, str] = {}


def pytest_runtest_logreport(report) -> None:
    properties = dict(report.user_properties)
    if "sp" not in properties or "flow" not in properties:
        return
    sp, flow = properties["sp"], properties["flow"]
    if properties.get("algorithms"):
        _algorithms[sp] = properties["algorithms"]
    row = _results.setdefault(sp, {})
    if report.when == "call" or report.outcome != "passed":
        outcome = "skipped" if report.skipped else ("ok" if report.passed else "FAILED")
        if outcome == "ok" and properties.get("detail"):
            outcome = f"ok ({properties['detail']})"
        if row.get(flow) != "FAILED":
            row[flow] = outcome


def render() -> list[str]:
    header = ["SP", *FLOWS]
    rows = [[sp, *(_results[sp].get(flow, "-") for flow in FLOWS)] for sp in sorted(_results)]
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |" for line in [header, *rows]]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    lines.append("")
    lines.extend(f"{sp}: {_algorithms[sp]}" for sp in sorted(_algorithms))
    return lines


def pytest_terminal_summary(terminalreporter) -> None:
    if not _results:
        return
    terminalreporter.section("SAML interoperability matrix")
    for line in render():
        terminalreporter.write_line(line)
