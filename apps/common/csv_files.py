"""Reading an uploaded CSV file, with errors an admin can act on."""

import csv
import io

from apps.common.errors import field_error


def read_csv_lines(content: bytes) -> list[list[str]]:
    """The rows of an uploaded file; a ValidationError on `file` says why it cannot be read."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise field_error("file", "The file is not UTF-8 text: save it as CSV (UTF-8) and try again.") from exc
    try:
        return list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise field_error("file", f"The file is not valid CSV: {exc}.") from exc
