"""Apache httpd + mod_auth_mellon (Debian's packages) as a real SAML SP on loopback.

Configured from tests/interop/mellon/httpd.conf.template into a world-readable temporary folder
(Apache's children run as www-data and read the SP key, the IdP metadata and the CGI there).
mellon generates its own SP metadata at /mellon/metadata; the protected page is a CGI that prints
the MELLON_* variables mellon set from the assertion.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import wait_for
from tests.interop.servers import free_port, http_ok

TEMPLATE_DIR = Path(__file__).resolve().parent / "mellon"
MODULES = Path("/usr/lib/apache2/modules")


def apache_binary() -> str | None:
    return shutil.which("apache2") or (shutil.which("apache2", path="/usr/sbin:/sbin"))


def mellon_available() -> bool:
    return apache_binary() is not None and (MODULES / "mod_auth_mellon.so").exists()


class MellonSP:
    def __init__(self, *, private_key_pem: str, certificate_pem: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.entity_id = f"{self.base}/mellon/metadata"
        self.protected_url = f"{self.base}/protected/whoami"
        self.root = Path(tempfile.mkdtemp(prefix="interop-mellon-"))
        self.root.chmod(0o755)
        (self.root / "cgi").mkdir(mode=0o755)
        shutil.copy(TEMPLATE_DIR / "whoami.cgi", self.root / "cgi" / "whoami")
        (self.root / "cgi" / "whoami").chmod(0o755)
        # A test-only key, readable by the www-data children that use it.
        self._write("sp.key", private_key_pem)
        self._write("sp.crt", certificate_pem)
        user = "www-data" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        config = (TEMPLATE_DIR / "httpd.conf.template").read_text()
        self.config = self.root / "httpd.conf"
        self.config.write_text(config.format(root=self.root, port=self.port, modules=MODULES, user=user, group=user))
        self.config.chmod(0o644)

    def _write(self, name: str, text: str) -> None:
        path = self.root / name
        path.write_text(text)
        path.chmod(0o644)

    def _apache(self, action: str) -> None:
        result = subprocess.run(
            [apache_binary(), "-f", str(self.config), "-k", action], capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise RuntimeError(f"apache2 -k {action} failed: {result.stderr or result.stdout}\n{self.error_log()}")

    def start(self, idp_metadata: bytes) -> None:
        """Trust the IdP's metadata and serve; returns when mellon answers."""
        self._write("idp-metadata.xml", idp_metadata.decode())
        self._apache("start")
        wait_for(lambda: http_ok(f"{self.base}/mellon/metadata"), timeout=20, message="Apache with mod_auth_mellon")

    def metadata(self) -> bytes:
        import httpx

        response = httpx.get(f"{self.base}/mellon/metadata", timeout=10)
        response.raise_for_status()
        return response.content

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        pid_file = self.root / "httpd.pid"
        if pid_file.exists():
            with contextlib.suppress(RuntimeError):
                self._apache("stop")
            wait_for(lambda: not pid_file.exists(), timeout=20, message="Apache to stop")
        shutil.rmtree(self.root, ignore_errors=True)
