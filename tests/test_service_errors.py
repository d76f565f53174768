"""Every user-input error of braggtile maps to a 4xx JSON answer of the service.

Proves: each subclass of ``engine.errors.UserInputError`` anywhere in engine, tiling and service
(found by importing every module and walking the subclasses recursively, so a new one is
covered without editing this file), raised inside a request of the real application (its
middleware, routers and exception table), is answered 4xx with the service's JSON error body,
not 500; a store locked by another writer is 409.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from fastapi.testclient import TestClient

import engine
import service
import tiling
from engine.errors import InputError, UserInputError
from service.app import create_app
from service.errors import status_of
from service.settings import Settings


def all_subclasses(cls: type) -> list[type]:
    found, todo = [], [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def import_everything() -> None:
    for package in (engine, tiling, service):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            try:
                importlib.import_module(module.name)
            except ImportError:  # an optional dependency (a batch system's, a GPU's)
                continue


import_everything()
USER_ERRORS = [UserInputError, *all_subclasses(UserInputError)]


def instance(cls: type[UserInputError]) -> UserInputError:
    """An instance of ``cls``, its required arguments given as words."""
    params = inspect.signature(cls.__init__).parameters.values()
    required = [
        p
        for p in list(params)[1:]
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return cls(*(f"{p.name}-value" for p in required)) if required else cls("what went wrong")


def test_the_known_user_errors_are_found() -> None:
    names = {cls.__name__ for cls in USER_ERRORS}
    assert {"InputError", "StoreMismatchError", "StoreLockedError", "BatchClusterError"} <= names


@pytest.fixture(scope="module")
def client() -> TestClient:
    """The real application (no cluster: its lifespan does not run) with one more route that
    raises the user error named in its path."""
    app = create_app(Settings())
    by_name = {cls.__name__: cls for cls in USER_ERRORS}

    @app.get("/v1/test-raise/{name}")
    def raise_it(name: str) -> None:
        raise instance(by_name[name])

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda c: c.__name__)
def test_every_user_error_is_a_4xx_json_answer(client: TestClient, cls: type) -> None:
    exc = instance(cls)
    assert 400 <= status_of(exc) < 500
    r = client.get(f"/v1/test-raise/{cls.__name__}")
    assert 400 <= r.status_code < 500 and r.status_code == status_of(exc), r.text
    body = r.json()
    assert body["detail"] == str(exc) and set(body) == {"detail", "field", "limit"}, body


def test_a_locked_store_is_a_conflict_and_input_errors_name_their_field(
    client: TestClient,
) -> None:
    assert client.get("/v1/test-raise/StoreLockedError").status_code == 409
    body = client.get(f"/v1/test-raise/{InputError.__name__}").json()
    assert body["field"] == "field-value"
