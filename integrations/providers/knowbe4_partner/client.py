"""A thin gql client for KnowBe4's GraphQL API, turning every failure into a readable error.

The transport is httpx with the project's retry policy (reconcile.core.http): 429 and 502/503/504
are retried with back-off honouring Retry-After before an error reaches this module. POST is
safe to retry here because every request this client sends is a query.
"""

import threading
import time
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXTransport
from graphql import GraphQLError, GraphQLSchema

from reconcile.core import http
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    ExternalAPIError,
    Unreachable,
)
from reconcile.core.http import OutsideAPI

REGIONS = {
    "us": "United States",
    "eu": "European Union",
    "ca": "Canada",
    "uk": "United Kingdom",
    "de": "Germany",
}


def graphql_url(region: str) -> str:
    return settings.KNOWBE4_GRAPHQL_URLS[region]


def region_label(base_url: str) -> str:
    """Name a base URL by its region for messages ("US (training.knowbe4.com)")."""
    for region, url in settings.KNOWBE4_GRAPHQL_URLS.items():
        if url == base_url:
            return f"{region.upper()} ({urlsplit(url).netloc})"
    return urlsplit(base_url).netloc or base_url


class KnowBe4API(OutsideAPI):
    """What a 401 or 403 means for a partner key."""

    name = "KnowBe4"
    hint = "Check the region."

    def rejected(self, response: httpx.Response) -> ExternalAPIError:
        return CredentialRejected(
            f"KnowBe4 rejected the API key (HTTP {response.status_code}). Check that the key is "
            "a partner Product API token, that it has not expired or been revoked, and that the "
            f"account lives in the region {self.location}."
        )


class GraphQLClient:
    """One authenticated session: `with GraphQLClient(url, token) as api: api.execute(...)`.

    Entering the session fetches the schema by introspection, so callers can ask which fields
    exist (`has_field`) and gql validates every query against it before sending.
    """

    def __init__(self, url: str, token: str):
        self.url = url
        self.requests = 0
        self.http_seconds = 0.0
        self.api = KnowBe4API(location=region_label(url))
        # Queries may run in several threads at once (pages after the first): each thread
        # remembers its own last answer, and the counters are kept under a lock.
        self._local = threading.local()
        self._lock = threading.Lock()
        transport = HTTPXTransport(
            url=url,
            **http.client_options(
                retry_post=True,
                api="KnowBe4",
                headers={"Authorization": f"Bearer {token}"},
                event_hooks={"response": [self._remember_status]},
            ),
        )
        self._client = Client(transport=transport, fetch_schema_from_transport=True)
        self._session = None

    def _remember_status(self, response: httpx.Response) -> None:
        self._local.last = response

    @property
    def _last(self) -> httpx.Response | None:
        return getattr(self._local, "last", None)

    def __enter__(self):
        try:
            self._session = self._call(self._client.__enter__)
        except ExternalAPIError:
            raise
        except Exception as error:  # gql building a schema from whatever the answer held
            raise BadAnswer(
                f"KnowBe4 at {region_label(self.url)} answered the schema query with something "
                f"that is not a GraphQL schema ({type(error).__name__})."
            ) from error
        return self

    def __exit__(self, *exc_info):
        self._client.__exit__(*exc_info)

    @property
    def schema(self) -> GraphQLSchema:
        return self._client.schema

    def has_field(self, type_name: str, field_name: str) -> bool:
        graphql_type = self.schema.type_map.get(type_name)
        return bool(graphql_type and field_name in getattr(graphql_type, "fields", {}))

    def execute(self, query: str, variables: dict | None = None) -> dict:
        return self._call(self._session.execute, GraphQLRequest(query, variable_values=variables))

    def _answer_error(self, status: int | None) -> ExternalAPIError:
        """The answer gql refused, in the shared words (`OutsideAPI.error`)."""
        if self._last is None or self._last.status_code != status:
            return BadAnswer(f"KnowBe4 at {region_label(self.url)} answered HTTP {status}.")
        return self.api.error(self._last)

    def _call(self, function, *args):
        where = region_label(self.url)
        started = time.monotonic()
        self._local.last = None
        with self._lock:
            self.requests += 1
        try:
            return function(*args)
        except TransportServerError as error:
            raise self._answer_error(error.code) from error
        except TransportQueryError as error:
            if self._last is not None and self._last.status_code >= 400:
                raise self._answer_error(self._last.status_code) from error
            raise BadAnswer(f"KnowBe4 answered with an error: {_first_message(error)}") from error
        except TransportProtocolError as error:
            if self._last is None or self.api.is_json(self._last):
                status = self._last.status_code if self._last is not None else None
                raise BadAnswer(
                    f"KnowBe4 at {where} answered with broken JSON or JSON that is not a GraphQL "
                    f"answer (HTTP {status})."
                ) from error
            raise self.api.not_the_api(self._last) from error
        except TransportConnectionFailed as error:
            if isinstance(error.__cause__, ExternalAPIError):  # e.g. an answer too large
                raise error.__cause__ from None
            if isinstance(error.__cause__, httpx.RequestError):
                raise self.api.unreachable(error.__cause__, self.url) from error
            raise Unreachable(f"Could not reach KnowBe4 at {where}: {error}."[:300]) from error
        except GraphQLError as error:
            raise BadAnswer(f"KnowBe4's API does not accept our query: {error.message}") from error
        finally:
            with self._lock:
                self.http_seconds += time.monotonic() - started


def _first_message(error: TransportQueryError) -> str:
    errors = error.errors or []
    if errors and isinstance(errors[0], dict) and errors[0].get("message"):
        return str(errors[0]["message"])[:300]
    return str(error)[:300]
