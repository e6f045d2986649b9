"""A scripted browser for the matrix: a cookie jar that follows redirects, submits the pages that
post a SAML message by script (as a browser with JavaScript would), and signs in on the portal's
login page. It knows no SP's internals: only what a person's browser would see."""

from urllib.parse import urljoin, urlsplit

import httpx
from lxml import html

_SAML_FIELDS = {"SAMLRequest", "SAMLResponse"}


def _forms(response: httpx.Response) -> list:
    if "html" not in response.headers.get("content-type", "") or not response.content.strip():
        return []
    return html.fromstring(response.content).forms


def _fields(form) -> dict[str, str]:
    return {
        element.name: element.value or ""
        for element in form.inputs
        if element.name and getattr(element, "type", "text") not in ("submit", "button", "checkbox")
    }


class Browser:
    def __init__(self, *, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.client = httpx.Client(follow_redirects=True, timeout=30)
        self.visited: list[str] = []

    def close(self) -> None:
        self.client.close()

    def _settle(self, response: httpx.Response, *, sign_in: bool) -> httpx.Response:
        """Post SAML auto-submit forms and (when allowed) the portal's sign-in form until a page stays."""
        for _ in range(12):
            self.visited.extend(str(r.url) for r in (*response.history, response))
            forms = _forms(response)
            saml_form = next((f for f in forms if _SAML_FIELDS & set(_fields(f))), None)
            if saml_form is not None:
                action = urljoin(str(response.url), saml_form.action or str(response.url))
                response = self.client.post(action, data=_fields(saml_form))
                continue
            login_form = next((f for f in forms if "password" in _fields(f) and "username" in _fields(f)), None)
            if sign_in and login_form is not None and urlsplit(str(response.url)).path.startswith("/login/"):
                data = {**_fields(login_form), "username": self.username, "password": self.password}
                action = urljoin(str(response.url), login_form.action or str(response.url))
                response = self.client.post(action, data=data, headers={"Referer": str(response.url)})
                sign_in = False  # once: a second sign-in page means the password was refused
                continue
            return response
        raise AssertionError(f"too many hops: {self.visited[-6:]}")

    def get(self, url: str, *, sign_in: bool = True) -> httpx.Response:
        return self._settle(self.client.get(url), sign_in=sign_in)

    def submit(self, url: str, fields: dict[str, str]) -> httpx.Response:
        """Post a form as a person pressing its button would."""
        return self._settle(self.client.post(url, data=fields), sign_in=False)

    def sign_in_to_portal(self, portal_base: str) -> httpx.Response:
        response = self.get(f"{portal_base}/login/")
        assert urlsplit(str(response.url)).path == "/", (response.url, response.text[:300])
        return response

    def follow_link(self, page: httpx.Response, path_contains: str) -> httpx.Response:
        """Click the first link (or submit the first form) whose target contains `path_contains`."""
        document = html.fromstring(page.content)
        for link in document.iter("a"):
            href = link.get("href") or ""
            if path_contains in href:
                return self.get(urljoin(str(page.url), href))
        for form in document.forms:
            if path_contains in (form.action or ""):
                action = urljoin(str(page.url), form.action)
                if (form.method or "get").lower() == "post":
                    return self._settle(self.client.post(action, data=_fields(form)), sign_in=True)
                return self.get(f"{action}?{httpx.QueryParams(_fields(form))}")
        raise AssertionError(f"no link to {path_contains} on {page.url}")
