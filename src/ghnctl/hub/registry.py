"""The GHNs ghnctl knows by name: where each file lives, how big it is, what it holds.

URLs are built when asked for (never at import), from the endpoint in ``GHNCTL_HUB_URL``:

* unset: HuggingFace entries use ``https://huggingface.co/<repo>/resolve/<revision>/<file>``;
  ppuda entries use ``https://raw.githubusercontent.com/<repo>/<revision>/<file>``.
* set: **every** entry is fetched from ``<GHNCTL_HUB_URL>/<repo>/resolve/<revision>/<file>`` (the
  HuggingFace layout), so one mirror, or one local test server, can serve all of them.

Revisions are pinned by the ``*_REVISION`` constants. Both are ``"main"``: no commit of the
HuggingFace repo was verifiable when the registry was written. ``sha256``/``size`` are ``None``
where not known; a download then verifies against what the server declares (HuggingFace sends
the sha256 of LFS files in ``X-Linked-ETag``) and records the hash in the cache.

Importing this module is cheap (no torch, no requests).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from ghnctl import settings

HF_REPO = "SamsungSAILMontreal/ghn3"
HF_REVISION = "main"
PPUDA_REPO = "facebookresearch/ppuda"
PPUDA_REVISION = "main"
GITHUB_RAW_URL = "https://raw.githubusercontent.com"

Source = Literal["huggingface", "github", "builtin"]

# Order of preference for ``--ghn auto``: best first.
AUTO_PREFERENCE = ("ghn3xlm16", "ghn3lm8", "ghn3sm8", "ghn3tm8")
AUTO_DOWNLOAD = "ghn3xlm16"
# What ``--ghn auto`` uses with no official GHN-3 cached and no network (or offline mode): shipped.
AUTO_FALLBACK = "ghnctl-c10"


@dataclass(frozen=True)
class GhnArch:
    """The nominal configuration of a registered GHN (the loader reads the real one from the file)."""

    hid: int
    layers: int
    heads: int
    max_shape: tuple[int, int, int, int]
    num_classes: int
    is_ghn2: bool = False
    image_size: int | None = None  # the image size it was trained on

    def to_dict(self) -> dict[str, object]:
        return {
            "image_size": self.image_size,
            "hid": self.hid,
            "layers": self.layers,
            "heads": self.heads,
            "max_shape": list(self.max_shape),
            "num_classes": self.num_classes,
            "is_ghn2": self.is_ghn2,
        }


@dataclass(frozen=True)
class RegistryEntry:
    """One downloadable GHN checkpoint.

    ``size`` (bytes) and ``sha256`` are ``None`` when not known in advance; ``params`` is the
    number of GHN parameters (``None`` if unknown); ``path`` is the file's path inside ``repo``.
    """

    name: str
    title: str
    source: Source
    repo: str
    revision: str
    path: str
    arch: GhnArch
    params: int | None
    size: int | None
    sha256: str | None
    licence: str
    note: str = ""

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def approx_size(self) -> int | None:
        """``size`` if known, else the float32 size of ``params`` (what to show before a download)."""
        if self.size is not None:
            return self.size
        return self.params * 4 if self.params is not None else None

    @property
    def builtin(self) -> bool:
        """Shipped inside the package (``ghnctl.builtin``): never downloaded."""
        return self.source == "builtin"

    def url(self, endpoint: str | None = None) -> str:
        """Where to download the file; ``endpoint`` defaults to ``GHNCTL_HUB_URL`` (read now).
        A built-in GHN has no URL: ``builtin:NAME``."""
        if self.builtin:
            return f"builtin:{self.name}"
        if endpoint is None and settings.hub_url() != settings.DEFAULT_HUB_URL:
            endpoint = settings.hub_url()
        if endpoint is not None or self.source == "huggingface":
            base = (endpoint or settings.DEFAULT_HUB_URL).rstrip("/")
            return f"{base}/{self.repo}/resolve/{self.revision}/{self.path}"
        return f"{GITHUB_RAW_URL}/{self.repo}/{self.revision}/{self.path}"

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "source": self.source,
            "repo": self.repo,
            "revision": self.revision,
            "path": self.path,
            "url": self.url(),
            "params": self.params,
            "size": self.size,
            "approx_size": self.approx_size,
            "sha256": self.sha256,
            "licence": self.licence,
            "config": self.arch.to_dict(),
            "note": self.note,
        }


def _ghn3(name: str, title: str, hid: int, layers: int, heads: int, params: int, note: str = "") -> RegistryEntry:
    return RegistryEntry(
        name=name,
        title=title,
        source="huggingface",
        repo=HF_REPO,
        revision=HF_REVISION,
        path=f"{name}.pt",
        arch=GhnArch(hid, layers, heads, (hid, hid, 16, 16), 1000, image_size=224),
        params=params,
        size=None,
        sha256=None,
        licence="MIT",
        note=note,
    )


def _ghn2(name: str, title: str, num_classes: int) -> RegistryEntry:
    return RegistryEntry(
        name=name,
        title=title,
        source="github",
        repo=PPUDA_REPO,
        revision=PPUDA_REVISION,
        path=f"checkpoints/{name}.pt",
        arch=GhnArch(32, 0, 8, (64, 64, 11, 11), num_classes, is_ghn2=True,
                     image_size=32 if num_classes == 10 else 224),
        params=None,
        size=None,
        sha256=None,
        licence="MIT",
    )


def _builtin(name: str, title: str, arch: GhnArch, params: int, size: int, sha256: str, note: str) -> RegistryEntry:
    return RegistryEntry(name=name, title=title, source="builtin", repo="ghnctl", revision="package",
                         path=f"{name}.safetensors", arch=arch, params=params, size=size, sha256=sha256,
                         licence="MIT", note=note)


# Parameter counts: the official README / notebook (XL), or the official class built with that
# configuration (T, S, L). The S and L layer counts are from the paper and not verified.
_ENTRIES = (
    _ghn3("ghn3tm8", "GHN-3-T/m8", 64, 3, 8, 6_906_632),
    _ghn3("ghn3sm8", "GHN-3-S/m8", 128, 5, 16, 35_810_368, "layer count unverified"),
    _ghn3("ghn3lm8", "GHN-3-L/m8", 256, 12, 16, 214_668_960, "layer count unverified"),
    _ghn3("ghn3xlm16", "GHN-3-XL/m16", 384, 24, 16, 654_365_184),
    _ghn2("ghn2_cifar10", "GHN-2 CIFAR-10", 10),
    _ghn2("ghn2_imagenet", "GHN-2 ImageNet", 1000),
    # Shipped in the package. tools/ship_builtin.py rewrites this line; tests check it against the file.
    _builtin("ghnctl-c10", "ghnctl CIFAR-10", GhnArch(32, 2, 8, (64, 64, 11, 11), 10, image_size=32), 1686564, 6750864, "a2f9b81adc1667fe4761d0da98aed854f8c04acd4f434913c2b917e8ff451217", "trained with ghnctl train on CIFAR-10 at 32x32 on ResNet-18 only (other architectures: near chance before fine-tuning); see docs/builtin-ghn.md"),  # noqa: E501
)

REGISTRY: dict[str, RegistryEntry] = {e.name: e for e in _ENTRIES}


def names() -> list[str]:
    """Registered names, in registry order."""
    return list(REGISTRY)


def registry_name(spec: str) -> str | None:
    """The registry name ``spec`` denotes (``ghn3tm8`` or ``ghn3tm8.pt``), or None."""
    stem = spec[:-3] if spec.endswith(".pt") else spec
    return stem if stem in REGISTRY else None


def get_entry(name: str) -> RegistryEntry:
    """The entry for ``name`` (with or without ``.pt``); a UsageError with suggestions otherwise."""
    key = registry_name(name)
    if key is None:
        raise unknown_ghn(name)
    return REGISTRY[key]


def unknown_ghn(spec: str) -> Exception:
    """The error for a spec that is neither a registered name, an existing file nor a URL."""
    from ghnctl.errors import UsageError

    close = difflib.get_close_matches(spec.removesuffix(".pt"), names(), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `ghnctl ghn list` for the names"
    return UsageError(f"unknown GHN {spec!r}: not a registered name, an existing file or an http(s) URL", hint=hint)
