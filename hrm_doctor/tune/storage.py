"""Where a study lives: an SQLite file in the study root by default, or any database URL Optuna
accepts (PostgreSQL for several machines running trials of one study at once)."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

from hrm_doctor.errors import UserError

STUDY_FILE = "study.db"
# SQLAlchemy dialects Optuna's RDBStorage is known to work with
DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")
_DRIVERS = {"postgresql": "psycopg2-binary", "mysql": "pymysql", "mariadb": "pymysql"}
_OPEN_TRIES = 4
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def default_root(study: str) -> Path:
    return Path("runs") / f"tune-{study}"


def redact(url: str) -> str:
    """The URL without its password (it goes into messages and reports)."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def resolve_storage(url: str | None, root: Path) -> str:
    """The storage URL to use: `url` checked, or the study root's SQLite file."""
    if url is None:
        return f"sqlite:///{(root / STUDY_FILE).resolve()}"
    m = _URL_RE.match(url)
    if not m:
        raise UserError(
            f"--storage {redact(url)}: not a storage URL (expected sqlite:///FILE or "
            "postgresql://USER@HOST:PORT/DB)"
        )
    dialect = m.group(1).split("+", 1)[0].lower()
    if dialect == "postgres":  # libpq's spelling; SQLAlchemy wants postgresql
        return "postgresql" + url[len(m.group(1)) :]
    if dialect not in DIALECTS:
        raise UserError(
            f"--storage {redact(url)}: unknown storage '{dialect}' (use one of: "
            f"{', '.join(DIALECTS)})"
        )
    return url


def open_storage(url: str, *, heartbeat: bool = True) -> Any:
    """An Optuna RDBStorage; a missing driver or an unreachable server is a one-line UserError.

    The heartbeat lets another worker mark a trial FAILED when the process running it died
    (otherwise it would stay RUNNING forever and count against the study's trials).
    """
    import sqlalchemy.exc

    try:
        return _open_with_retries(url, heartbeat)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise _cannot_open(url, exc) from None


def _cannot_open(url: str, exc: Exception) -> UserError:
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return UserError(
        f"--storage {redact(url)}: cannot open ({first[0] if first else type(exc).__name__})"
    )


def _open_with_retries(url: str, heartbeat: bool) -> Any:
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several worker processes on one file: wait for the lock instead of failing at once
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    if heartbeat:
        kwargs.update(heartbeat_interval=30, grace_period=120)
    for attempt in range(_OPEN_TRIES):
        try:
            return _rdb_storage(url, kwargs)
        except (sqlalchemy.exc.OperationalError, _SchemaRace) as exc:
            # two workers starting at once race to create the schema (SQLite: "database is
            # locked"; PostgreSQL: a duplicate key in pg_type): the next try finds it made
            race = isinstance(exc, _SchemaRace) or url.startswith("sqlite")
            if race and attempt + 1 < _OPEN_TRIES:
                time.sleep(0.5 + attempt)
                continue
            if isinstance(exc, _SchemaRace):
                raise exc.error from None
            raise
    raise AssertionError("unreachable")


class _SchemaRace(Exception):
    def __init__(self, error: Exception) -> None:
        self.error = error


def with_driver(url: str) -> str:
    """A plain postgresql:// URL with the driver that is installed: SQLAlchemy 2.1 defaults to
    psycopg (3), many installs have psycopg2 (psycopg2-binary)."""
    import importlib.util

    if not url.startswith("postgresql://"):
        return url
    for module, dialect in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return dialect + url[len("postgresql") :]
    return url


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> Any:
    import optuna
    import sqlalchemy.exc

    url = with_driver(url)
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    except ImportError as exc:
        dialect = url.split(":", 1)[0].split("+", 1)[0]
        hint = _DRIVERS.get(dialect, "its driver")
        missing = getattr(exc.__cause__, "name", None) or exc.name or "?"
        raise UserError(
            f"--storage {redact(url)}: the database driver is not installed "
            f"({missing}): pip install {hint}"
        ) from None
    except sqlalchemy.exc.OperationalError:
        raise
    except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
        raise _SchemaRace(exc) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise _cannot_open(url, exc) from None
