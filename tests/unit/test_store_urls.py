"""Which store a URL opens, and that no password survives into a message."""

import pytest

from harness.errors import InputError
from harness.results.open import STORE_ENV, open_store
from harness.results.urls import mask_secrets, mask_url, url_password


@pytest.mark.parametrize(
    ("url", "masked", "password"),
    [
        ("postgresql://ci:s3cret@db:5432/bench?sslmode=require", "postgresql://ci:***@db:5432/bench?sslmode=require", "s3cret"),
        ("postgresql:///?service=team&password=abc", "postgresql:///?service=team&password=***", "abc"),
        ("postgresql://db:5432/bench", "postgresql://db:5432/bench", None),
        ("postgres://ci@db/bench", "postgres://ci@db/bench", None),
    ],
)
def test_urls_are_masked(url, masked, password):
    assert mask_url(url) == masked
    assert url_password(url) == password


def test_a_driver_message_loses_the_password_even_when_decoded():
    url = "postgresql://ci:p%40ss@db/bench"
    assert mask_secrets("auth failed for p@ss and p%40ss", url) == "auth failed for *** and ***"


def test_default_store_is_results_sqlite_in_the_reports_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(STORE_ENV, raising=False)
    with open_store(None, tmp_path / "reports") as store:
        assert store.location == str(tmp_path / "reports" / "results.sqlite")
    monkeypatch.setenv(STORE_ENV, f"sqlite:///{tmp_path / 'team.sqlite'}")
    with open_store(None, tmp_path / "reports") as store:
        assert store.location == str(tmp_path / "team.sqlite")
    with open_store(f"sqlite:///{tmp_path / 'flag.sqlite'}", tmp_path) as store:  # the flag beats the environment
        assert store.location == str(tmp_path / "flag.sqlite")


def test_a_missing_database_is_an_input_error_only_when_it_must_exist(tmp_path, monkeypatch):
    monkeypatch.delenv(STORE_ENV, raising=False)
    with pytest.raises(InputError, match="no results database"):
        open_store(None, tmp_path, must_exist=True)
    with pytest.raises(InputError, match="unknown results store 'mysql://x'") as err:
        open_store("mysql://x", tmp_path)
    assert err.value.source == "--store"
