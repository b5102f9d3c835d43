"""Architecture sets for ``bench ghn`` and ``bench speed``: ``--archs`` and ``--n``.

``--archs`` is one of

* a generated split, ``deepnets:SPLIT`` (or ``deepnets:SPLIT@SEED``): its first ``n`` nets;
* a comma list of model specs (``resnet18,deepnets:test/3,./nets.py:tiny``); a ``deepnets:SPLIT``
  item in the list also stands for its first ``n`` nets;
* ``@FILE``: one model spec per line (blank lines and ``#`` comments skipped). A relative
  ``file.py:factory`` path in the file is taken relative to the file's folder when it exists there,
  so a list can travel with its model files.

The specs are checked for form here (DeepNets split names and indices, without building
anything); building them is ``ghnctl.zoo.resolve_model``'s job.
"""

from __future__ import annotations

from pathlib import Path

from ghnctl.errors import UsageError

DEEPNETS = "deepnets:"
DEFAULT_N = 10


def parse_archs(text: str, n: int = DEFAULT_N) -> tuple[str, ...]:
    """The model specs ``text`` names, in order, duplicates dropped (each is benched once)."""
    if n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    text = text.strip()
    if text.startswith("@"):
        items = _read_list(Path(text[1:]).expanduser())
    else:
        items = [item.strip() for item in text.split(",")]
    specs: list[str] = []
    for item in items:
        if not item:
            continue
        specs.extend(_expand(item, n))
    if not specs:
        raise UsageError("the architecture list is empty",
                         hint="for example --archs deepnets:test or resnet18,resnet50")
    _check_deepnets(specs)
    return tuple(dict.fromkeys(specs))


def _expand(item: str, n: int) -> list[str]:
    """``deepnets:SPLIT[@SEED]`` -> its first ``n`` nets; anything else as it is."""
    if not item.startswith(DEEPNETS):
        return [item]
    body, at, seed = item[len(DEEPNETS):].partition("@")
    if "/" in body:
        return [item]
    suffix = f"@{seed}" if at else ""
    return [f"{DEEPNETS}{body}/{i}{suffix}" for i in range(n)]


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"architecture list {str(path)!r} does not exist",
                         hint="--archs @FILE names a text file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read architecture list {str(path)!r}: {exc}") from exc
    specs = []
    for line in lines:
        spec = line.split("#", 1)[0].strip()
        if spec:
            specs.append(_relative_to(spec, path.parent))
    return specs


def _relative_to(spec: str, folder: Path) -> str:
    """A relative ``file.py:factory`` whose file lies beside the list: point at that file."""
    file_part, sep, factory = spec.rpartition(":")
    if not sep or not file_part.endswith(".py") or Path(file_part).is_absolute():
        return spec
    beside = folder / file_part
    return f"{beside}:{factory}" if beside.is_file() else spec


def _check_deepnets(specs: list[str]) -> None:
    """Split names and indices are checked before anything is built (torch-free)."""
    deepnets = [s for s in specs if s.startswith(DEEPNETS)]
    if not deepnets:
        return
    from ghnctl import nets

    for spec in deepnets:
        nets.parse_spec(spec)
