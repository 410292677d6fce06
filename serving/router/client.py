"""Python client of the router's HTTP API."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import orjson

from serving.json_http import ThreadLocalSession


class RouterError(Exception):
    """A non-200 answer of the router (``status``: the HTTP status; ``message``: its error text)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class RouterClient:
    """``RouterClient("http://127.0.0.1:8080").rank({...})`` → the response dict.

    Args:
      base_url: the router's address.
      timeout: seconds per call.
    """

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = ThreadLocalSession()

    def _call(self, method: str, path: str, body: Optional[bytes] = None) -> Dict[str, Any]:
        r = self._http.request(method, self.base_url + path, body, self.timeout)
        try:
            payload = orjson.loads(r.content)
        except orjson.JSONDecodeError:
            payload = {"error": r.text[:500]}
        if r.status_code != 200:
            raise RouterError(r.status_code, payload.get("error") if isinstance(payload, dict)
                              else str(payload))
        return payload

    def rank(self, request: Union[Dict[str, Any], bytes, str]) -> Dict[str, Any]:
        """POST /v1/rank. ``request`` is the JSON object (NumPy arrays allowed as columns), or
        already-encoded JSON."""
        if isinstance(request, str):
            request = request.encode("utf-8")
        body = request if isinstance(request, bytes) else orjson.dumps(request, option=orjson.OPT_SERIALIZE_NUMPY)
        return self._call("POST", "/v1/rank", body)

    def healthz(self) -> Dict[str, Any]:
        return self._call("GET", "/healthz")

    def readyz(self) -> Dict[str, Any]:
        return self._call("GET", "/readyz")
