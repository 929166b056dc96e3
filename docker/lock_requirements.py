"""Prints the exact pins of the project's runtime dependencies (no dev extras), read from an installed environment:
the closure of ``ecomai``'s requirements, each at the version installed here. The images install this list from a
wheelhouse, so they run what the tests ran.

The images' Python may be an older 3.11 than this one (Debian bookworm's is 3.11.2): requirements whose markers hold
for the image's Python only (``redis`` needs ``async-timeout`` below 3.11.3) are added with their specifier, and the
wheelhouse resolves them.

    .venv/bin/python docker/lock_requirements.py [--image-python 3.11.2] > .venv/wheelhouse/requirements.lock
"""

from __future__ import annotations

import argparse
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(root: str, image_python: str) -> dict[str, str]:
    """canonical name -> "==installed version" (or the specifier, for a requirement of the image's Python only), for
    ``root``'s runtime requirements and theirs, extras followed."""
    image_env = {"python_full_version": image_python, "python_version": ".".join(image_python.split(".")[:2])}
    pins: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = metadata.distribution(name)
        if name != root:
            pins[name] = f"=={dist.version}"
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            here = req.marker is None or any(req.marker.evaluate(env) for env in envs)
            image = req.marker is not None and any(req.marker.evaluate({**env, **image_env}) for env in envs)
            if here:
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
            elif image:
                pins.setdefault(canonicalize_name(req.name), str(req.specifier))
    return pins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", nargs="?", default="ecomai")
    parser.add_argument("--image-python", default="3.11.2", help="full Python version of the images")
    args = parser.parse_args()
    for name, pin in sorted(closure(canonicalize_name(args.project), args.image_python).items()):
        print(f"{name}{pin}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
