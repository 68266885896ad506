"""`make install`'s installer: uv with the indexes pip is configured with, pip when uv cannot be had or fails.

    python scripts/install.py [--installer uv|pip] [--print-uv-args] -- REQUIREMENT...

Run by the new virtual environment's Python, installs into that environment (sys.executable). uv does not read
pip's configuration, so the pip settings of the machine at hand -- `pip config list`, which includes the PIP_*
environment variables -- are read here at install time and handed to uv as arguments (indexes, find-links,
constraints) and environment variables (CA bundle, proxy, timeout). Nothing about any machine is written here.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

UV_REQUIREMENT = "uv>=0.5"  # --default-index / --index / --index-strategy / --allow-insecure-host
# pip's own precedence: [install] overrides [global], PIP_* environment variables (":env:") override both.
SECTIONS = ("global", "install", ":env:")
FALSE = {"0", "false", "no", "off", ""}


def pip_settings(python: str) -> dict[str, str]:
    """The pip settings in effect for `pip install`, keyed without section: {'extra-index-url': '...', ...}."""
    found: dict[str, dict[str, str]] = {section: {} for section in SECTIONS}
    try:
        out = subprocess.run(
            [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        name, sep, raw = line.partition("=")
        section, dot, key = name.rpartition(".")
        if not sep or not dot or section not in found:
            continue
        try:
            value = ast.literal_eval(raw)  # pip prints repr(value)
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        found[section][key] = str(value)
    # the environment as pip reads it, should `pip config list` be unavailable
    for var, value in os.environ.items():
        if var.startswith("PIP_") and var != "PIP_CONFIG_FILE":
            found[":env:"].setdefault(var[4:].lower().replace("_", "-"), value)
    merged: dict[str, str] = {}
    for section in SECTIONS:
        merged.update(found[section])
    return merged


def uv_options(settings: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv arguments and environment variables equivalent to pip's settings."""
    args: list[str] = []
    env: dict[str, str] = {}

    def words(key: str) -> list[str]:
        return settings.get(key, "").split()

    def on(key: str) -> bool:
        return key in settings and settings[key].strip().lower() not in FALSE

    if settings.get("index-url"):
        args += ["--default-index", settings["index-url"]]
    for url in words("extra-index-url"):  # uv: earlier --index ranks first, all rank above the default index
        args += ["--index", url]
    for location in words("find-links"):
        args += ["--find-links", location]
    for path in words("constraint"):
        args += ["--constraint", path]
    for host in words("trusted-host"):
        args += ["--allow-insecure-host", host]
    if on("no-index"):
        args.append("--no-index")
    if on("pre"):
        args += ["--prerelease", "allow"]
    for key in ("only-binary", "no-binary"):
        if settings.get(key):
            args += [f"--{key}", settings[key]]
    if on("no-cache-dir"):
        args.append("--no-cache")
    # pip takes the best version over all indexes; uv by default stops at the first index that has the package
    # (the same version on several indexes still comes from the first: extra indexes, then the default index)
    args += ["--index-strategy", "unsafe-best-match"]

    if settings.get("cert"):
        env["SSL_CERT_FILE"] = settings["cert"]
    if settings.get("client-cert"):
        env["SSL_CLIENT_CERT"] = settings["client-cert"]
    if settings.get("proxy"):
        env["HTTP_PROXY"] = env["HTTPS_PROXY"] = settings["proxy"]
    timeout = settings.get("timeout") or settings.get("default-timeout")
    if timeout and timeout.replace(".", "", 1).isdigit():
        env["UV_HTTP_TIMEOUT"] = str(round(float(timeout)))
    if settings.get("retries"):
        env["UV_HTTP_RETRIES"] = settings["retries"]
    return args, env


def find_uv(python: str) -> str | None:
    """uv in the target environment, installed there with pip if missing; None if that fails."""
    binary = Path(python).parent / "uv"
    if not binary.exists():
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", UV_REQUIREMENT],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    return str(binary) if binary.exists() else None


def pip_install(python: str, requirements: list[str]) -> int:
    """The pre-uv command: one pip install, no cache, no bytecode, pip's noise about missing index pages dropped."""
    cmd = [python, "-m", "pip", "install", "--no-cache-dir", "--no-compile", "--disable-pip-version-check", "-q"]
    proc = subprocess.Popen(cmd + requirements, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("WARNING: Location"):
            sys.stdout.write(line)
    return proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installer", choices=("uv", "pip"), default="uv")
    parser.add_argument("--print-uv-args", action="store_true", help="print the uv command and its environment")
    parser.add_argument("requirements", nargs="*")
    opts = parser.parse_args()
    python = sys.executable
    if not opts.requirements:
        parser.error("no requirements given")

    if opts.installer == "pip":
        print("install: INSTALLER=pip, installing with pip", flush=True)
        return pip_install(python, opts.requirements)

    args, env = uv_options(pip_settings(python))
    if opts.print_uv_args:
        for key, value in env.items():
            print(f"{key}={value}")
        print(" ".join(["uv", "pip", "install", "--python", python, *args, *opts.requirements]))
        return 0

    uv = find_uv(python)
    if uv is None:
        print(f"install: could not get uv ({UV_REQUIREMENT}) with pip; installing with pip instead", flush=True)
        return pip_install(python, opts.requirements)
    code = subprocess.run(
        [uv, "pip", "install", "-q", "--python", python, *args, *opts.requirements], env={**os.environ, **env}
    ).returncode
    if code != 0:
        print(f"install: uv pip install failed (exit {code}); installing with pip instead", flush=True)
        return pip_install(python, opts.requirements)
    return 0


if __name__ == "__main__":
    sys.exit(main())
