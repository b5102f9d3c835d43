"""``ghnctl ghn list``, ``ghnctl pull``, ``ghnctl cache list|path|clear``: the GHN hub commands.

Also the pieces other commands use to fetch a GHN with feedback: ``DownloadProgress`` (a rich
progress bar on stderr with size, speed and ETA), ``announce_download`` and ``resolve_ghn_cli``.
The hub engine is imported inside the functions, so ``ghnctl --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ghnctl.cli.options import Debug, JsonOut
from ghnctl.cli.output import Output
from ghnctl.errors import UsageError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ghnctl.hub import CachedGhn, DownloadEvent, Target

OfflineOpt = Annotated[
    bool,
    typer.Option("--offline", help="Never use the network (also GHNCTL_OFFLINE=1 or HF_HUB_OFFLINE=1)."),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")]
CacheName = Annotated[
    str | None,
    typer.Argument(
        metavar="[NAME]", help="A GHN name as `ghnctl cache list` shows it (default: all).", show_default=False
    ),
]

ghn_app = typer.Typer(
    name="ghn",
    help="The GHNs ghnctl knows by name: parameters, download size, licence, cached or not.",
    epilog="Example:\n  ghnctl ghn list",
    no_args_is_help=True,
)
cache_app = typer.Typer(
    name="cache",
    help=(
        "The local cache of downloaded GHNs (GHNCTL_CACHE_DIR, default the platform cache directory). "
        "See docs/cache.md for offline and air-gapped use."
    ),
    epilog="Examples:\n  ghnctl cache list\n  ghnctl cache path ghn3tm8\n  ghnctl cache clear ghn3tm8 --yes",
    no_args_is_help=True,
)

PULL_HELP = (
    "Download a GHN into the cache: verified (size, sha256), resumable, converted once to safetensors. "
    "NAME is a name from `ghnctl ghn list` or an http(s) URL. A cached GHN is not downloaded again "
    "unless --force."
)
PULL_EPILOG = "Examples:\n  ghnctl pull ghn3tm8\n  ghnctl pull ghn3xlm16 --json\n  ghnctl pull ghn3tm8 --force"


def register(app: typer.Typer) -> None:
    """Add ``ghn``, ``pull`` and ``cache`` to the main app."""
    app.add_typer(ghn_app, name="ghn")
    app.command("pull", help=PULL_HELP, epilog=PULL_EPILOG, no_args_is_help=True)(pull_command)
    app.add_typer(cache_app, name="cache")


# ------------------------------------------------------------------------------------------------
# Download feedback, for `pull` and for any command that takes --ghn


def human_size(size: int | None, approx: bool = False) -> str:
    """``27.6 MB`` (decimal units, like the progress bar); ``?`` when unknown."""
    if size is None:
        return "?"
    from rich.filesize import decimal

    return ("~" if approx else "") + decimal(size)


class DownloadProgress:
    """Renders ``DownloadEvent``s on stderr: a live bar (size, speed, ETA) on a terminal, short notes elsewhere.

    ``with DownloadProgress(output) as progress: hub.pull(name, on_progress=progress)``
    """

    def __init__(self, output: Output) -> None:
        self.output = output
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> DownloadProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _bar(self) -> Progress | None:
        """The live bar, started at the first download (a cache hit draws nothing); None off a terminal."""
        if self._progress is None and self.output.console.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.output.console,
            )
            self._progress.start()
        return self._progress

    def __call__(self, event: DownloadEvent) -> None:
        bar = self._bar() if event.kind in ("start", "progress") else self._progress
        if event.kind == "retry":
            self.output.warn(f"{event.name}: {event.message}")
        elif event.kind == "wait":
            self.output.note(event.message)
        elif bar is None:  # not a terminal (or nothing drawn yet): a few lines for logs
            if event.kind == "start" and event.done:
                self.output.note(f"resuming {event.name} at {human_size(event.done)} of {human_size(event.total)}")
            elif event.kind == "verify":
                self.output.note(f"verifying {event.name} ({human_size(event.total)})")
            elif event.kind == "convert":
                self.output.note(f"converting {event.name} to safetensors")
        elif event.kind in ("start", "progress"):
            task = self._tasks.get(event.name)
            if task is None:
                task = self._tasks[event.name] = bar.add_task(f"{event.name}", total=event.total)
            bar.update(task, completed=event.done, total=event.total)
        elif event.kind in ("verify", "convert", "done") and event.name in self._tasks:
            label = {"verify": "verifying", "convert": "converting", "done": "done"}[event.kind]
            bar.update(self._tasks[event.name], description=f"{event.name} ({label})")


def announce_download(output: Output, *, auto: bool = False) -> Callable[[Target], None]:
    """An ``on_download`` callback that says what is about to be downloaded, and how big it is."""

    def announce(target: Target) -> None:
        size = human_size(target.size or target.approx_size, approx=target.size is None)
        prefix = "no GHN-3 in the cache: " if auto else ""
        output.note(f"{prefix}downloading {target.name} ({size}) from {target.url}")

    return announce


def resolve_ghn_cli(output: Output, spec: str, *, offline: bool = False, option: str = "--ghn") -> Path:
    """``hub.resolve_ghn`` with download feedback on stderr: what ``--ghn`` options should call.

    ``option`` is the calling command's option that takes a GHN file: error hints offer it.
    """
    from ghnctl.hub import resolve_ghn
    from ghnctl.hub.hints import option_file_hint

    with DownloadProgress(output) as progress:
        return resolve_ghn(
            spec,
            offline=True if offline else None,
            on_progress=progress,
            on_download=announce_download(output, auto=spec == "auto"),
            file_hint=option_file_hint(option),
            on_notice=output.warn,
        )


# ------------------------------------------------------------------------------------------------
# ghnctl ghn list


@ghn_app.command(
    "list",
    help="List the GHNs ghnctl can download, and which are cached.",
    epilog="Examples:\n  ghnctl ghn list\n  ghnctl ghn list --json",
)
def ghn_list_command(json_out: JsonOut = False, _debug: Debug = False) -> None:
    from ghnctl.hub import REGISTRY, cache_path, lookup

    rows = []
    for entry in REGISTRY.values():
        hit = lookup(entry.name)
        if entry.builtin:
            from ghnctl.builtin import builtin_path

            rows.append({**entry.to_dict(), "cached": True, "builtin": True, "cached_path": builtin_path(entry.name)})
            continue
        rows.append({**entry.to_dict(), "cached": hit is not None, "builtin": False,
                     "cached_path": hit.path if hit else None})
    data = {"cache_dir": cache_path(), "ghns": rows}

    def render(out: Output) -> None:
        from rich import box
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        for column in ("name", "GHN", "classes", "params", "size", "cached", "licence"):
            table.add_column(
                column, justify="right" if column in ("classes", "params", "size") else "left", no_wrap=True
            )
        for row in rows:
            params = f"{row['params'] / 1e6:,.1f}M" if row["params"] else "?"
            size = human_size(row["size"] or row["approx_size"], approx=row["size"] is None)
            table.add_row(
                row["name"],
                row["title"],
                str(row["config"]["num_classes"]),
                params,
                size,
                "[green]built in[/]" if row["builtin"] else "[green]yes[/]" if row["cached"] else "-",
                row["licence"],
            )
        out.console.print(table)
        out.note(f"cache: {data['cache_dir']}; download one with `ghnctl pull NAME` (built-in GHNs need no download)")

    Output(json_out).result(data, render)


# ------------------------------------------------------------------------------------------------
# ghnctl pull


def pull_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Registry name or http(s) URL.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", "-f", help="Download again even if cached.")] = False,
    offline: OfflineOpt = False,
    json_out: JsonOut = False,
    _debug: Debug = False,
) -> None:
    from ghnctl.hub import pull
    from ghnctl.hub.registry import REGISTRY, registry_name

    output = Output(json_out)
    key = registry_name(name)
    if key is not None and REGISTRY[key].builtin:
        _pull_builtin(output, key)
        return
    with DownloadProgress(output) as progress:
        # No file_hint: `pull` takes no file, so its error hints must not offer one.
        cached, downloaded = pull(
            name,
            force=force,
            offline=True if offline else None,
            on_progress=progress,
            on_download=announce_download(output),
        )
    data = {**cached.to_dict(), "downloaded": downloaded}

    def render(out: Output) -> None:
        verb = "downloaded" if downloaded else "already cached:"
        out.console.print(
            f"{verb} [bold]{cached.name}[/] ({human_size(cached.size)}, "
            f"{cached.params or 0:,} parameters) -> {cached.path}"
        )
        out.note(f"sha256 {cached.sha256} ({_SHA_SOURCE.get(cached.sha256_source, cached.sha256_source)})")

    output.result(data, render)


def _pull_builtin(output: Output, name: str) -> None:
    """``ghnctl pull`` of a built-in GHN: nothing to download; say where it is."""
    from ghnctl.builtin import builtin_path
    from ghnctl.hub.registry import REGISTRY

    entry = REGISTRY[name]
    path = builtin_path(name)
    data = {**entry.to_dict(), "path": path, "downloaded": False, "builtin": True}
    output.result(data, lambda out: out.console.print(
        f"[bold]{name}[/] is built into ghnctl: nothing to download ({human_size(path.stat().st_size)}) -> {path}"))


_SHA_SOURCE = {
    "registry": "verified against the registry",
    "server": "verified against the server's declared hash",
    "computed": "nothing to verify against: recorded on first download",
}


# ------------------------------------------------------------------------------------------------
# ghnctl cache list | path | clear


@cache_app.command(
    "list",
    help="List the cached GHNs and unfinished downloads.",
    epilog="Examples:\n  ghnctl cache list\n  ghnctl cache list --json",
)
def cache_list_command(json_out: JsonOut = False, _debug: Debug = False) -> None:
    from ghnctl.hub import cache_path, list_cached, list_partial

    cached = list_cached()
    partial = list_partial()
    data = {
        "cache_dir": cache_path(),
        "ghns": [c.to_dict() for c in cached],
        "partial": [{"name": p.name, "path": p.path, "size": p.size} for p in partial],
        "total_bytes": sum(c.file_size for c in cached) + sum(p.size for p in partial),
    }

    def render(out: Output) -> None:
        if not cached and not partial:
            out.note(f"the GHN cache is empty ({data['cache_dir']})")
            return
        if cached:
            out.console.print(_cache_table(cached))
        for p in partial:
            out.note(
                f"unfinished download of {p.name}: {human_size(p.size)} ({p.path}); `ghnctl pull {p.name}` resumes it"
            )
        out.note(f"cache: {data['cache_dir']} ({human_size(data['total_bytes'])})")

    Output(json_out).result(data, render)


def _cache_table(cached: list[CachedGhn]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in ("name", "size", "params", "sha256", "downloaded", "path"):
        table.add_column(column, justify="right" if column in ("size", "params") else "left")
    for c in cached:
        table.add_row(
            c.name,
            human_size(c.file_size),
            f"{c.params:,}" if c.params else "?",
            c.sha256[:12],
            c.downloaded_at.replace("T", " ")[:16],
            str(c.path),
        )
    return table


@cache_app.command(
    "path",
    help="Print the cache directory, or the file of one cached GHN.",
    epilog="Examples:\n  ghnctl cache path\n  ghnctl cache path ghn3tm8",
)
def cache_path_command(name: CacheName = None, json_out: JsonOut = False, _debug: Debug = False) -> None:
    from ghnctl.hub import cache_path, lookup

    if name is None:
        path = cache_path()
    else:
        hit = lookup(_cache_key(name))
        if hit is None:
            raise UsageError(f"{name} is not in the GHN cache", hint=f"download it with `ghnctl pull {name}`")
        path = hit.path
    # The path is the result, and a machine-readable one: plain on stdout, for $(ghnctl cache path).
    Output(json_out).result({"name": name, "path": path}, lambda out: typer.echo(str(path)))


@cache_app.command(
    "clear",
    help="Delete one cached GHN (NAME) or all of them, with unfinished downloads.",
    epilog="Examples:\n  ghnctl cache clear ghn3tm8 --yes\n  ghnctl cache clear --yes",
)
def cache_clear_command(
    name: CacheName = None, yes: Yes = False, json_out: JsonOut = False, _debug: Debug = False
) -> None:
    from ghnctl.hub import cache_path, clear

    key = _cache_key(name) if name is not None else None
    what = f"the cached GHN {key}" if key else f"every cached GHN in {cache_path()}"
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {what} without confirmation", hint="add --yes")
        typer.confirm(f"Delete {what}?", abort=True, err=True)
    cleared = clear(key)
    data = {"removed": cleared.names, "freed_bytes": cleared.freed_bytes, "cache_dir": cache_path()}

    def render(out: Output) -> None:
        if cleared.names:
            out.console.print(f"deleted {', '.join(cleared.names)} ({human_size(cleared.freed_bytes)} freed)")
        else:
            out.note(f"nothing to delete: {key or 'the cache'} is not cached")

    Output(json_out).result(data, render)


def _cache_key(name: str) -> str:
    """A registry name with or without ``.pt`` -> its cache name; other names (url-...) as they are."""
    from ghnctl.hub.cache import check_name
    from ghnctl.hub.registry import registry_name

    return registry_name(name) or check_name(name)
