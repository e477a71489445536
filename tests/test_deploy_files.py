"""The Dockerfile and docker-compose.yml cannot be built here (no Docker daemon), so this checks them
against the code they deploy: real CLI commands and options, real settings, consistent ports, start order.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

import cli.main
import fitexplain_client.cli
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "FITEXPLAIN_"
# Values for the variables docker compose interpolates from the shell or .env.
COMPOSE_ENV = {"POSTGRES_PASSWORD": "s3cret"}


# ----------------------------------------------------------------------------- parsing helpers


def interpolate(value: str, env: dict[str, str]) -> str:
    """docker compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `$$` syntax."""
    pattern = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if present:
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"compose requires {name}: {arg}")
        return arg if op else ""

    return pattern.sub(substitute, value)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, env) for value in node]
    return node


class Reset:
    """Compose's `!reset` tag: the value replaces what the files before it said, instead of merging."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    pass


ComposeLoader.add_constructor(
    "!reset",
    lambda loader, node: Reset(
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_scalar(node)
    ),
)


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of a later file: mappings key by key, sequences appended, `!reset` replaces."""
    if isinstance(override, Reset):
        return override.value
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else merge(None, value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + override
    if isinstance(override, dict):
        return {key: merge(None, value) for key, value in override.items()}
    return override


def load_compose(env: dict[str, str] | None = None, *files: str) -> dict[str, Any]:
    """docker-compose.yml, then each of `files` merged on top as `docker compose -f a -f b` does."""
    raw: Any = None
    for name in ("docker-compose.yml", *files):
        raw = merge(raw, yaml.load((ROOT / name).read_text(), Loader=ComposeLoader))
    return resolve(raw, COMPOSE_ENV if env is None else env)


def service_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [rest for name, rest in dockerfile_instructions() if name == keyword]


def exec_form(arguments: str) -> list[str]:
    """CMD/ENTRYPOINT must be JSON (exec form): a shell form would leave /bin/sh as PID 1 and eat SIGTERM."""
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        pytest.fail(f"not in exec (JSON) form: {arguments}")
    assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed), arguments
    return parsed


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in dockerfile("ENV"):
        for token in shlex.split(arguments):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def image_command() -> list[str]:
    entrypoints, cmds = dockerfile("ENTRYPOINT"), dockerfile("CMD")
    entrypoint = exec_form(entrypoints[-1]) if entrypoints else []
    cmd = exec_form(cmds[-1]) if cmds else []
    return entrypoint + cmd


def fitexplain_services(compose: dict[str, Any]) -> dict[str, list[str]]:
    """Services built from our image, with the argv they run (the image's CMD when they set none)."""
    found = {}
    for name, service in compose["services"].items():
        if "build" in service:
            found[name] = argv(service.get("command")) or image_command()
    return found


def console_app() -> typer.Typer:
    """The `fitexplain` command as pip installs it: the client package's script, plus the commands every
    package declares under the `fitexplain.commands` entry-point group (here: the server's pyproject)."""
    client = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]
    assert client["scripts"] == {"fitexplain": "fitexplain_client.cli:main"}
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "fitexplain" not in server.get("scripts", {}), "two packages must not both write bin/fitexplain"
    plugins = server["entry-points"][fitexplain_client.cli.PLUGIN_GROUP]
    assert plugins == {"server": "cli.main:app"}
    app = typer.Typer()
    fitexplain_client.cli.add_plugin(app, fitexplain_client.cli.app)
    fitexplain_client.cli.add_plugin(app, cli.main.app)
    return app


def cli_group() -> Any:
    """The click group behind the typer app (typer may vendor click: duck-typed, not isinstance)."""
    group = typer.main.get_command(console_app())
    assert isinstance(getattr(group, "commands", None), dict), "the CLI is not a command group"
    return group


def check_cli_argv(command: list[str]) -> Any:
    """Fail unless `command` is a real `fitexplain` subcommand with options it accepts, values parsed."""
    assert command[:1] == ["fitexplain"], f"{command} does not run the fitexplain console script"
    group = cli_group()
    assert len(command) >= 2 and command[1] in group.commands, (
        f"{command}: no such subcommand; the CLI has {sorted(group.commands)}"
    )
    subcommand = group.commands[command[1]]
    accepted = {flag for param in subcommand.params for flag in (*param.opts, *param.secondary_opts)}
    for token in command[2:]:
        if token.startswith("-"):
            flag = token.split("=", 1)[0]
            assert flag in accepted, f"{command}: `{command[1]}` has no {flag} (only {sorted(accepted)})"
    try:  # types and arity too, exactly as the real parser would see them; nothing is invoked
        subcommand.make_context(command[1], list(command[2:]))
    except Exception as exc:  # click's UsageError / BadParameter
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"{command}: {message}")
    return subcommand


def option_value(command: list[str], flag: str) -> str | None:
    for index, token in enumerate(command):
        if token == flag and index + 1 < len(command):
            return command[index + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def duration_seconds(text: str) -> float:
    """Compose durations: `90s`, `32m`, `1h30m`, `1m30s`, `500ms`."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", str(text).strip())
    assert parts and any(parts.groups()), f"not a compose duration: {text!r}"
    hours, minutes, seconds, millis = (int(group or 0) for group in parts.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def dockerignored(path: str) -> bool:
    """.dockerignore semantics: the last matching pattern wins, `!` re-includes, and a pattern that matches
    a directory matches everything under it."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatchcase(prefix, candidate) for prefix in prefixes for candidate in candidates):
            ignored = not negate
    return ignored


# ----------------------------------------------------------------------------- docker-compose.yml


def test_every_service_runs_a_real_cli_command_with_real_options() -> None:
    services = fitexplain_services(load_compose())
    assert {"migrate", "api", "worker"} <= set(services)
    for command in services.values():
        check_cli_argv(command)
    assert services["migrate"][1] == "migrate"
    assert services["api"][1] == "api"
    assert services["worker"][1] == "worker"


def test_a_worker_serves_each_queue() -> None:
    """Small jobs never wait behind large ones: a worker takes only small jobs; large ones are served."""
    workers = [command for command in fitexplain_services(load_compose()).values() if command[1] == "worker"]
    queues = [option_value(command, "--queue") or "all" for command in workers]
    assert "small" in queues, f"no worker for the small queue alone: {queues}"
    assert {"large", "all"} & set(queues), f"no worker takes large jobs: {queues}"


def test_one_command_has_the_users_and_the_operators_subcommands() -> None:
    commands = set(cli_group().commands)
    users = {"login", "submit", "jobs", "status", "result", "cancel", "plot"}
    operators = {"serve", "api", "worker", "migrate", "create-token", "revoke-tokens"}
    assert users | operators <= commands, sorted(commands)


def test_make_run_installs_the_runtime_and_make_test_the_test_group_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installer = (ROOT / "scripts" / "install.sh").read_text()
    assert re.search(r"^run: \$\(RUN_STAMP\)$", makefile, re.M), makefile
    assert re.search(r"^test: \$\(TEST_STAMP\)$", makefile, re.M), makefile
    assert re.search(r"^\tbash scripts/install.sh run$", makefile, re.M), makefile
    assert re.search(r"^\tbash scripts/install.sh test$", makefile, re.M), makefile
    assert '"$uv" sync --locked' in installer, installer
    assert "run) groups=(--inexact)" in installer and "test) groups=(--group test)" in installer
    # The client (owner of the `fitexplain` command) comes with the server, from the same lock.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "fitexplain-client" in project["project"]["dependencies"]
    assert project["tool"]["uv"]["sources"]["fitexplain-client"] == {"workspace": True}
    assert project["tool"]["uv"]["workspace"]["members"] == ["clients/python"]


def test_cli_check_rejects_what_the_cli_rejects() -> None:
    """The checker itself must be able to fail: unknown subcommand, unknown option, wrong type."""
    for bad in (
        ["fitexplain", "web"],
        ["fitexplain", "worker", "--workers", "2"],
        ["fitexplain", "api", "--port", "eighty"],
        ["celery", "worker"],
    ):
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check_cli_argv(bad)


def test_every_fitexplain_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    compose = load_compose()
    variables = set(dockerfile_env())
    for service in compose["services"].values():
        variables |= set(service_env(service))
    ours = {variable for variable in variables if variable.startswith(PREFIX)}
    assert ours, "no FITEXPLAIN_* variable found: the parser is broken"
    unknown = sorted(variable for variable in ours if variable[len(PREFIX) :].lower() not in fields)
    assert not unknown, f"not fields of shared.settings.Settings (silently ignored): {unknown}"


def test_compose_settings_validate_as_a_production_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = load_compose()
    services = compose["services"]
    by_image = {str(service.get("image", "")).split(":")[0]: name for name, service in services.items()}
    postgres_env = service_env(services[by_image["postgres"]])
    for name in fitexplain_services(compose):
        settings = settings_from(service_env(services[name]), monkeypatch)
        assert settings.environment == "production", name
        assert not settings.embedded, name

        database = urlsplit(settings.database_url)
        assert database.scheme == "postgresql+psycopg", settings.database_url
        assert database.hostname == by_image["postgres"], "the database host must be the postgres service"
        assert database.username == postgres_env["POSTGRES_USER"]
        assert database.password == postgres_env["POSTGRES_PASSWORD"] == COMPOSE_ENV["POSTGRES_PASSWORD"]
        assert database.path.lstrip("/") == postgres_env["POSTGRES_DB"]

        broker = urlsplit(settings.broker_url)
        assert broker.scheme == "redis", settings.broker_url
        assert broker.hostname == by_image["redis"], "the broker host must be the redis service"


def test_the_database_password_is_required_not_defaulted() -> None:
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        load_compose(env={})


def test_api_port_is_the_same_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = load_compose()
    api = compose["services"]["api"]
    command = argv(api["command"])
    settings = settings_from(service_env(api), monkeypatch)
    listen = int(option_value(command, "--port") or settings.port)
    assert settings.port == listen, "FITEXPLAIN_PORT and --port disagree"
    assert option_value(command, "--host") == "0.0.0.0", "the API must listen outside its container"

    published = [str(port).rsplit(":", 1) for port in api["ports"]]
    assert published and all(container == str(listen) for _, container in published), (
        f"published {api['ports']} but the API listens on {listen}"
    )
    probe = " ".join(argv(api["healthcheck"]["test"]))
    assert re.search(rf"127\.0\.0\.1:{listen}/healthz", probe), probe


def test_migrations_run_before_the_api_and_the_workers() -> None:
    services = load_compose()["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(services["migrate"].get("restart", "no")) == "no", "a one-shot must not restart"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_redis_keeps_every_queued_job() -> None:
    redis = load_compose()["services"]["redis"]
    command = argv(redis["command"])
    assert option_value(command, "--maxmemory-policy") == "noeviction"
    assert option_value(command, "--appendonly") == "yes"
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"]


def test_workers_scale_and_finish_their_job_on_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = load_compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker, "`--scale worker=N` would collide"
    settings = settings_from(service_env(worker), monkeypatch)
    grace = duration_seconds(worker["stop_grace_period"])
    assert grace > settings.hard_time_limit, (
        f"stop_grace_period {grace:.0f}s < hard time limit {settings.hard_time_limit}s: a deploy kills jobs"
    )


def test_only_the_api_keeps_the_images_http_healthcheck() -> None:
    """The image's HEALTHCHECK probes the API port; a worker or migration would be marked unhealthy."""
    compose = load_compose()
    for name, command in fitexplain_services(compose).items():
        healthcheck = compose["services"][name].get("healthcheck", {})
        if command[1] in ("api", "serve"):
            assert "/healthz" in " ".join(argv(healthcheck.get("test"))) or not healthcheck, name
            assert not healthcheck.get("disable"), name
        else:
            assert healthcheck.get("disable") is True, f"{name} must disable the image's HTTP healthcheck"


# ----------------------------------------------------------------------------- Dockerfile


def test_image_command_is_a_real_cli_command(monkeypatch: pytest.MonkeyPatch) -> None:
    command = image_command()
    check_cli_argv(command)
    assert command[1] == "api" and option_value(command, "--host") == "0.0.0.0"
    settings = settings_from(dockerfile_env(), monkeypatch)
    listen = int(option_value(command, "--port") or settings.port)
    assert dockerfile("EXPOSE") == [str(listen)], "EXPOSE must be the port the default command listens on"


def test_image_base_user_and_install() -> None:
    assert dockerfile("FROM") == ["python:3.11-slim"]
    users = dockerfile("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the service must not run as root"
    runs = " ".join(dockerfile("RUN"))
    # The versions in uv.lock, refused when the lock is stale; the runtime only, no test or lint group.
    syncs = [options for run in dockerfile("RUN") for options in re.findall(r"uv sync ([^&]*)", run)]
    assert syncs, runs
    for options in syncs:
        assert "--locked" in options, options
        assert "--group" not in options and "--all-groups" not in options and "--dev" not in options
    assert "uv.lock" in " ".join(dockerfile("COPY")), "the image installs from the lock"
    # `fitexplain migrate` finds alembic.ini and migrations/ next to shared/ (shared.store.migrate's
    # REPO_ROOT), so the package must be installed in place (editable), not copied into site-packages.
    # The last sync installs the workspace: the client (owner of the `fitexplain` script) and the server.
    assert "--no-install-workspace" not in syncs[-1] and "--no-editable" not in syncs[-1], syncs
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if any(dependency.startswith("lightgbm") for dependency in dependencies):
        assert "libgomp1" in runs, "LightGBM's wheel needs the system libgomp.so.1, absent from slim images"


def test_image_keeps_the_repository_layout_migrate_needs() -> None:
    workdirs = dockerfile("WORKDIR")
    assert workdirs, "no WORKDIR"
    workdir = workdirs[-1].rstrip("/")
    destinations: dict[str, str] = {}
    for arguments in dockerfile("COPY"):
        *sources, destination = shlex.split(arguments)
        sources = [source for source in sources if not source.startswith("--")]
        for source in sources:
            if not any(char in source for char in "*?["):
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
                assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
            target = destination.rstrip("/")
            if not target.startswith("/"):
                target = f"{workdir}/{target}".removesuffix("/.").replace("/./", "/")
            destinations[source] = f"{target}/{source}" if destination.endswith("/") else target
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    needed = [pattern.rstrip("*") for pattern in packages["find"]["include"]]
    cli_home = Path(cli.main.__file__).resolve().parent.name
    repo_root = str(Path(destinations[cli_home]).parent)
    for name in [*needed, "migrations", "alembic.ini", "pyproject.toml"]:
        assert name in destinations, f"the image does not copy {name}"
        assert destinations[name] == f"{repo_root}/{name}", f"{name} is not next to cli/ in the image"


def test_dockerignore_keeps_secrets_and_bulk_out_of_the_build_context() -> None:
    for path in (".env", ".venv", ".git", "var", "tests", "catboost_info", "fitexplain.egg-info"):
        assert dockerignored(path), f"{path} would be sent to the Docker daemon"
    for path in ("api", "worker", "shared", "cli", "migrations", "alembic.ini", "pyproject.toml"):
        assert not dockerignored(path), path
    assert not dockerignored("clients/python"), "the image installs the client package (the command)"
    assert dockerignored("clients/python/fitexplain_client.egg-info")
    assert dockerignored("clients/r"), "only the Python client goes into the image"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def run_probe(probe: list[str], status: int, compose_port: int | None = None) -> bool:
    """Run a `python -c` healthcheck against a stub answering `status` on /healthz (404 elsewhere)."""
    assert probe[:2] == ["python", "-c"], "slim has no curl: probe with python"
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    code = probe[2]
    if compose_port is not None:  # compose probes name the port: point them at the stub
        assert f"127.0.0.1:{compose_port}/" in code, code
        code = code.replace(f"127.0.0.1:{compose_port}/", f"127.0.0.1:{port}/")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # A proxy in the container's environment must not capture the probe of 127.0.0.1.
        proxy = "http://127.0.0.1:9/"
        env = {**os.environ, "FITEXPLAIN_PORT": str(port), "http_proxy": proxy, "HTTP_PROXY": proxy}
        env |= {"no_proxy": "", "NO_PROXY": ""}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    return result.returncode == 0


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_image_healthcheck_probes_healthz_on_the_configured_port(status: int, healthy: bool) -> None:
    (arguments,) = dockerfile("HEALTHCHECK")
    _, _, command = arguments.partition("CMD ")
    assert run_probe(exec_form(command), status) == healthy


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_api_service_healthcheck_probes_healthz(status: int, healthy: bool) -> None:
    api = load_compose()["services"]["api"]
    test = argv(api["healthcheck"]["test"])
    assert test[0] == "CMD", "exec form: the image has no shell tools to interpret CMD-SHELL reliably"
    port = int(option_value(argv(api["command"]), "--port") or 8000)
    assert run_probe(test[1:], status, compose_port=port) == healthy


def test_api_and_workers_share_the_blob_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job bytes written by the API (uploads) are read by the workers and the other way round (results):
    a local store must be one volume mounted in every service at the path the setting names."""
    compose = load_compose()
    services = compose["services"]
    paths = set()
    for name in fitexplain_services(compose):
        url = settings_from(service_env(services[name]), monkeypatch).storage_url
        assert url.startswith("file:///"), f"{name}: the default store is the shared volume"
        path = url.removeprefix("file://")
        mounts = [str(volume).split(":") for volume in services[name].get("volumes", [])]
        assert [path] == [target for source, target, *_ in mounts if source in compose["volumes"]], name
        paths.add(path)
    assert len(paths) == 1
    runs = " ".join(dockerfile("RUN"))
    assert f"mkdir -p {paths.pop()}" in runs, "a volume on a path missing from the image is owned by root"
    with_s3 = load_compose({**COMPOSE_ENV, "FITEXPLAIN_STORAGE_URL": "s3://bucket/fitexplain"})
    for name in fitexplain_services(with_s3):
        env = service_env(with_s3["services"][name])
        assert env["FITEXPLAIN_STORAGE_URL"] == "s3://bucket/fitexplain"
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} <= set(env)


def test_on_s3_nothing_is_shared_on_disk_and_workers_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose.s3.yml: every service of ours stores its bytes in the bundled S3 server's bucket,
    mounts no shared volume, and waits for the bucket; the S3 server and its bucket's one-shot are in the
    `s3` profile; workers still scale."""
    compose = load_compose(None, "docker-compose.s3.yml")
    services = compose["services"]
    s3, bucket = services["s3"], services["s3-bucket"]
    assert s3["profiles"] == ["s3"] and bucket["profiles"] == ["s3"]
    s3_port = int(option_value(argv(s3["command"]), "-s3.port") or 0)
    bucket_script = " ".join(argv(bucket["entrypoint"]))
    for name in fitexplain_services(compose):
        service = services[name]
        assert not service.get("volumes"), f"{name} mounts {service.get('volumes')}: shared disk"
        settings = settings_from(service_env(service), monkeypatch)
        url = urlsplit(settings.storage_url)
        assert url.scheme == "s3", name
        assert f"s3.bucket.create -name {url.hostname}" in bucket_script, "the bucket is created"
        endpoint = urlsplit(service_env(service)["AWS_ENDPOINT_URL"])
        assert (endpoint.hostname, endpoint.port) == ("s3", s3_port), name
        assert service["depends_on"]["s3-bucket"] == {
            "condition": "service_completed_successfully",
            "required": False,
        }, name
        assert service["depends_on"]["migrate" if name != "migrate" else "postgres"]  # the base's order stays
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert bucket["depends_on"]["s3"]["condition"] == "service_healthy"
    assert "s3data" in compose["volumes"] and any(str(v).startswith("s3data:") for v in s3["volumes"])

    own = load_compose(
        {**COMPOSE_ENV, "FITEXPLAIN_STORAGE_URL": "s3://mine/fx", "AWS_ENDPOINT_URL": ""},
        "docker-compose.s3.yml",
    )
    for name in fitexplain_services(own):
        env = service_env(own["services"][name])
        assert env["FITEXPLAIN_STORAGE_URL"] == "s3://mine/fx" and env["AWS_ENDPOINT_URL"] == "", name
