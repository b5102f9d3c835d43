"""The "how to fix it" half of hub errors, worded for whoever asked.

A hint may name only options of the command that raised it, and the hub does not know which
command that is. So callers say how *their* user could use a checkpoint file instead of a
download, as a hint fragment (``file_hint``):

* commands with a ``--ghn`` option pass ``option_file_hint("--ghn")``;
* ``ghnctl pull`` passes None: it cannot take a file, so no hint offers one;
* library calls (``resolve_ghn``) get ``LIBRARY_FILE_HINT``.
"""

from __future__ import annotations

LIBRARY_FILE_HINT = "pass the path of a checkpoint file instead"


def option_file_hint(option: str) -> str:
    """The file alternative of a command that takes a GHN file through ``option``."""
    return f"pass {option} PATH to a checkpoint file"


def offline(pull_spec: str, file_hint: str | None) -> str:
    """For a GHN that is needed but not cached, with no network (or offline mode) to fetch it."""
    return _or(
        f"run `ghnctl pull {pull_spec}` on a machine with network and copy its cache directory "
        "(`ghnctl cache path`) here",
        file_hint,
    )


def unreachable(pull_spec: str, file_hint: str | None) -> str:
    """For a host that cannot be reached at all (name not resolved, connection refused, no network)."""
    return f"check the network and GHNCTL_HUB_URL, or work offline: {offline(pull_spec, file_hint)}"


def not_found(file_hint: str | None) -> str:
    return _or("check the name and GHNCTL_HUB_URL", file_hint)


def access_refused(file_hint: str | None) -> str:
    if file_hint is None:
        return "the file may be private or moved: check GHNCTL_HUB_URL"
    return f"the file may be private or moved: download it by hand and {file_hint}"


def too_slow(pull_spec: str) -> str:
    """For a download cut off for coming in under the minimum rate (its ``.part`` is kept)."""
    return (
        f"try again later: `ghnctl pull {pull_spec}` resumes where this stopped; "
        "GHNCTL_MIN_RATE (bytes/s) and GHNCTL_MIN_RATE_WINDOW (seconds) set the limit"
    )


def out_of_time(pull_spec: str) -> str:
    """For a download that reached its overall time cap (its ``.part`` is kept)."""
    return (
        f"run `ghnctl pull {pull_spec}` again: it resumes where this stopped; GHNCTL_DOWNLOAD_MAX_TIME sets the limit"
    )


def untrusted_certificate() -> str:
    """For a TLS certificate that does not verify. Verification is never turned off."""
    return (
        "if this network's proxy or firewall re-signs TLS, point REQUESTS_CA_BUNDLE to its CA certificate "
        "(ghnctl never skips the check)"
    )


def _or(hint: str, file_hint: str | None) -> str:
    return f"{hint}, or {file_hint}" if file_hint else hint
