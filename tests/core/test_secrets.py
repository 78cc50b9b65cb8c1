"""Secrets print as **redacted**; URLs are shown without passwords."""

from __future__ import annotations

import logging
import pickle

import pytest

from monarch.config import config_from_dict
from monarch.secrets import REDACTED, Secret, redact_text, redact_url


def test_secret_never_shows_its_value() -> None:
    secret = Secret("hunter22")
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", str([secret])):
        assert "hunter22" not in shown
    assert secret.reveal() == "hunter22"


def test_secret_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("hunter22"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://bob:hunter22@db:27017/app", f"mongodb://bob:{REDACTED}@db:27017/app"),
        ("mongodb://bob@db/app", "mongodb://bob@db/app"),
        (
            "mongodb://a:p%40ss@h1,h2/app?replicaSet=rs",
            f"mongodb://a:{REDACTED}@h1,h2/app?replicaSet=rs",
        ),
        (
            "postgresql://u@h/app?password=hunter22&sslmode=require",
            f"postgresql://u@h/app?password={REDACTED}&sslmode=require",
        ),
        ("mongodb://db/app", "mongodb://db/app"),
    ],
)
def test_redact_url_strips_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_removes_plain_and_quoted_forms() -> None:
    text = "failed for p@ss:word and p%40ss%3Aword"
    assert redact_text(text, ["p@ss:word"]) == f"failed for {REDACTED} and {REDACTED}"


def test_environment_repr_and_logs_hold_no_password(caplog: pytest.LogCaptureFixture) -> None:
    config = config_from_dict(
        {"environments": {"prod": {"url": "mongodb://bob:hunter22@db.example/app"}}}, None, {}
    )
    env = config.environment("prod")
    with caplog.at_level(logging.INFO):
        logging.getLogger("monarch.test").info("using %s / %r / %s", env, env, config)
    assert "hunter22" not in caplog.text
    assert "hunter22" not in env.display_url
