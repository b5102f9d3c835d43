"""Hostile GHN files: no crash, no memory blow-up, no state change that outlives a load, one line.

Every file is generated here from hand-assembled pickle opcodes (nothing binary is committed). The
classes (issue "Hostile files and faults"): memory amplification, deep nesting, wrong config
types and sizes, BUILD on allowed classes, non-finite weights, huge error text.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ghnctl.errors import CheckpointError, GhnctlError, UnsafeCheckpoint
from ghnctl.ghn import GHN, GhnConfig, load_ghn, read_checkpoint

SMALL = GhnConfig(max_shape=(8, 8, 3, 3), num_classes=3, hid=8, layers=1, heads=2)

# --------------------------------------------------------------------------------------------------
# A tiny pickle assembler (protocol 2 opcodes)


def p_global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def p_str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def p_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value) if -(2**31) <= value < 2**31 else b"\x8a\x08" + struct.pack("<q", value)


def p_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def p_dict(*pairs: tuple[bytes, bytes]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


def p_ordered_dict(*pairs: tuple[bytes, bytes]) -> bytes:
    body = p_global("collections", "OrderedDict") + b")R"
    return body + (b"(" + b"".join(k + v for k, v in pairs) + b"u" if pairs else b"")


def p_storage(kind: str, key: str, numel: int) -> bytes:
    """A torch.save zip storage record (a persistent id)."""
    return p_tuple(p_str("storage"), p_global("torch", kind), p_str(key), p_str("cpu"), p_int(numel)) + b"Q"


def p_tensor(storage: bytes, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    args = p_tuple(storage, p_int(offset), p_tuple(*map(p_int, size)), p_tuple(*map(p_int, stride)),
                   b"\x89", p_ordered_dict())
    return p_global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def pickle_bytes(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def torch_zip(path: Path, data_pkl: bytes, storages: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def trainer_file(path: Path, state_dict_body: bytes, storages: dict[str, bytes],
                 config: bytes | None = None) -> Path:
    pairs = [(p_str("state_dict"), state_dict_body)]
    if config is not None:
        pairs.append((p_str("config"), config))
    return torch_zip(path, pickle_bytes(p_dict(*pairs)), storages)


def _one_line(exc: pytest.ExceptionInfo[BaseException], limit: int = 1000) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < limit, text[:300]
    return text


# --------------------------------------------------------------------------------------------------
# Memory: a file may cost a small multiple of its own size


def _load_in_child(paths: list[Path], budget_mb: int = 400) -> list[tuple[str, float]]:
    """Load each file in one fresh process under an address-space limit of (what it has) + budget.

    Returns, per file, the error line and the growth of the peak resident set in MB during its
    load. An allocation beyond the budget fails inside the child instead of taking the machine down.
    """
    script = textwrap.dedent(f"""
        import resource, sys
        from ghnctl.ghn import read_checkpoint
        from ghnctl.errors import GhnctlError
        def vsize():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vsize() + {budget_mb} * 2**20, resource.RLIM_INFINITY))
        for path in {[str(p) for p in paths]!r}:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                read_checkpoint(path)
                message = "loaded"
            except GhnctlError as exc:
                message = type(exc).__name__ + ": " + str(exc)
            grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            print(message); print(grown)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()[-2 * len(paths):]
    return [(lines[2 * i], float(lines[2 * i + 1])) for i in range(len(paths))]


def _view_file(folder: Path, case: str) -> Path:
    half = case != "stride0-float"
    kind, raw = ("HalfStorage", b"\x00\x3c") if half else ("FloatStorage", b"\x00\x00\x80\x3f")
    storage = p_storage(kind, "0", 1)
    if case.startswith("stride0"):  # the review's 617-byte file: 40000x40000 view of one element
        tensors = [(p_str("embed.weight"), p_tensor(storage, 0, (40000, 40000), (0, 0)))]
    elif case == "overlap-1d":
        tensors = [(p_str("embed.weight"), p_tensor(storage, 0, (10**9,), (0,)))]
    else:  # 2000 keys, each a full view of the same 1 MB storage: 2 GB once converted
        storage = p_storage(kind, "0", 2**19)
        raw = b"\x00\x3c" * 2**19
        tensors = [(p_str(f"w{i}"), p_tensor(storage, 0, (2**19,), (1,))) for i in range(2000)]
    return trainer_file(folder / f"{case}.pt", p_dict(*tensors), {"0": raw})


def _zip_claiming_4gb(folder: Path) -> Path:
    numel = 2**30 - 1  # ~4 GB of float32 claimed by the pickle and the directory alike; 4 real bytes
    body = p_dict((p_str("embed.weight"), p_tensor(p_storage("FloatStorage", "0", numel), 0, (numel,), (1,))))
    path = trainer_file(folder / "claims.pt", body, {"0": b"\x00\x00\x80\x3f"})
    raw = bytearray(path.read_bytes())
    name = b"archive/data/0"
    # Patch the sizes of the storage entry in the local header and the central directory.
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = 0
        while (at := raw.find(header, at)) >= 0:
            name_at = at + (30 if header == b"PK\x03\x04" else 46)
            if raw[name_at: name_at + len(name)] == name:
                sizes = at + (18 if header == b"PK\x03\x04" else 20)
                raw[sizes: sizes + 8] = struct.pack("<II", 4 * numel, 4 * numel)
            at += 4
    path.write_bytes(bytes(raw))
    return path


VIEW_CASES = ("stride0-half", "stride0-float", "overlap-1d", "shared-storage")


@pytest.fixture(scope="module")
def memory_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, float]]:
    """Every memory case loaded in one child process (one interpreter start for all of them)."""
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs Linux /proc to set a memory budget")
    folder = tmp_path_factory.mktemp("memory")
    paths = {case: _view_file(folder, case) for case in VIEW_CASES}
    paths["zip-4gb"] = _zip_claiming_4gb(folder)
    return dict(zip(paths, _load_in_child(list(paths.values()))))


@pytest.mark.parametrize("case", VIEW_CASES)
def test_views_cannot_multiply_a_tiny_storage(memory_results: dict[str, tuple[str, float]], case: str) -> None:
    message, grown = memory_results[case]
    assert message.startswith("CheckpointError") and "malformed checkpoint" in message, message
    assert grown < 100, f"loading the file grew the RSS by {grown:.0f} MB"


def test_zip_directory_claiming_4gb_allocates_nothing(memory_results: dict[str, tuple[str, float]]) -> None:
    message, grown = memory_results["zip-4gb"]
    # Refused for what it is, before the allocation (which the budget would turn into a MemoryError).
    assert message.startswith("CheckpointError") and "the archive does not have" in message, message
    assert grown < 100


@pytest.mark.parametrize(("opcodes", "reason"), [
    (b"N" + b"r" + struct.pack("<I", 4_000_000_000) + b"0N.", "memo index"),  # a 32 GB memo table
    (b"\x8e" + struct.pack("<Q", 2**40) + b"abc.", "claims"),  # BINBYTES8 claiming 1 TB
    (b"X" + struct.pack("<I", 2**31) + b"abc.", "claims"),  # BINUNICODE claiming 2 GB
], ids=["memo-4e9", "bytes-1tb", "str-2gb"])
def test_opcodes_claiming_huge_sizes_are_refused_before_allocation(tmp_path: Path, opcodes: bytes,
                                                                   reason: str) -> None:
    path = tmp_path / "claim.pt"
    path.write_bytes(b"\x80\x04" + opcodes)
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    assert reason in _one_line(exc)


# --------------------------------------------------------------------------------------------------
# Deep nesting: no interpreter crash, in the API and in the CLI

DEPTH = 200_000


def _deep_files(tmp_path: Path) -> dict[str, Path]:
    deep_tuple = b"N" + b"\x85" * DEPTH
    deep_list = b"]" * DEPTH + b"a" * (DEPTH - 1)
    files = {
        "tuple-key": pickle_bytes(b"}" + deep_tuple + p_int(1) + b"s"),  # SIGSEGV before the fix
        "tuple-value": pickle_bytes(p_dict((p_str("a"), deep_tuple))),
        "list": pickle_bytes(deep_list),
        "tuple-in-config": None,
    }
    paths = {}
    for name, data in files.items():
        path = tmp_path / f"{name}.pt"
        if data is None:
            body = p_dict((p_str("embed.weight"), p_tensor(p_storage("FloatStorage", "0", 1), 0, (1,), (1,))))
            trainer_file(path, body, {"0": b"\x00" * 4}, config=p_dict((p_str("hid"), deep_tuple)))
        else:
            path.write_bytes(b"\x80\x04" + data[2:])
        paths[name] = path
    return paths


def test_deep_nesting_is_one_line_in_the_api(tmp_path: Path) -> None:
    paths = _deep_files(tmp_path)
    # One child for all files (a crash is what is tested, so not in this process; one start-up).
    script = f"""
from ghnctl.ghn import read_checkpoint
from ghnctl.errors import CheckpointError
for path in {[str(p) for p in paths.values()]!r}:
    try:
        read_checkpoint(path)
        print("loaded")
    except CheckpointError as exc:
        print("refused:", exc)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])  # -11: SIGSEGV
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(paths)
    for name, line in zip(paths, lines):
        assert line.startswith("refused: malformed checkpoint: pickle nests deeper"), (name, line)


def test_deep_nesting_is_one_line_in_the_cli(tmp_path: Path) -> None:
    path = _deep_files(tmp_path)["tuple-key"]
    proc = subprocess.run([sys.executable, "-m", "ghnctl", "convert", str(path), str(tmp_path / "o.safetensors")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-500:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: malformed checkpoint: pickle nests deeper")
    assert not (tmp_path / "o.safetensors").exists()


def test_deep_json_config_in_a_safetensors_header(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "deep.safetensors"
    save_file({"x": torch.zeros(1)}, str(path),
              metadata={"format": "ghnctl-ghn", "format_version": "1", "ghn_config": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    assert "config" in _one_line(exc)


# --------------------------------------------------------------------------------------------------
# Wrong config types and sizes: one line naming the field


def _tiny_tensor_file(path: Path, config: bytes) -> Path:
    body = p_dict((p_str("embed.weight"), p_tensor(p_storage("FloatStorage", "0", 1), 0, (1,), (1,))))
    return trainer_file(path, body, {"0": b"\x00" * 4}, config=config)


def _config(**fields: bytes) -> bytes:
    values = {"max_shape": p_tuple(*[p_int(8)] * 4), "num_classes": p_int(10), "hid": p_int(8), **fields}
    return p_dict(*[(p_str(k), v) for k, v in values.items()])


@pytest.mark.parametrize(("config", "field"), [
    (_config(max_shape=p_int(5)), "max_shape"),
    (_config(max_shape=p_tuple(p_int(8), p_int(8), p_int(3), p_str("3"))), "max_shape"),
    (_config(max_shape=p_tuple(p_int(2**20), p_int(8), p_int(3), p_int(3))), "max_shape"),
    (_config(hid=b"\x8a\x0d" + (10**30).to_bytes(13, "little")), "hid"),
    (_config(layers=p_str("3")), "layers"),
    (_config(heads=p_int(-1)), "heads"),
    (p_dict((p_int(7), p_int(2))), "config"),  # a non-string key
    (p_dict((p_str("max_shape"), p_int(5))), "num_classes"),  # incomplete: names what is missing
    (p_str("not a dict"), "config"),
], ids=["int-shape", "str-in-shape", "huge-shape", "hid-1e30", "str-layers", "negative-heads", "int-key",
        "incomplete", "not-a-dict"])
def test_bad_config_in_a_pickle_names_the_field(tmp_path: Path, config: bytes, field: str) -> None:
    path = _tiny_tensor_file(tmp_path / "bad.pt", config)
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    text = _one_line(exc)
    assert field in text and "unexpected" not in text.lower(), text


@pytest.mark.parametrize(("config", "field"), [
    ({**SMALL.to_dict(), "max_shape": 5}, "max_shape"),
    ({**SMALL.to_dict(), "hid": 10**30}, "hid"),
    ({**SMALL.to_dict(), "heads": "8"}, "heads"),
    ({**SMALL.to_dict(), "num_classes": 10**7}, "num_classes"),
    ({**SMALL.to_dict(), "surprise": 1}, "surprise"),
    ([1, 2, 3], "object"),
])
def test_bad_config_in_a_safetensors_header_names_the_field(tmp_path: Path, config: object, field: str) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file({"embed.weight": torch.zeros(15, 8)}, str(path),
              metadata={"format": "ghnctl-ghn", "format_version": "1", "ghn_config": json.dumps(config)})
    with pytest.raises(CheckpointError) as exc:
        load_ghn(path)
    assert field in _one_line(exc)


# --------------------------------------------------------------------------------------------------
# BUILD: a file may not change anything that outlives its own load


def _legit_file(tmp_path: Path) -> Path:
    path = tmp_path / "legit.pt"
    torch.save({"state_dict": GHN.from_config(SMALL).state_dict(), "config": SMALL.official_kwargs()}, path)
    return path


@pytest.mark.parametrize("body", [
    # an OrderedDict whose ``items`` attribute hides the method (a string would pass as a weight)
    p_ordered_dict((p_str("w"), p_str("not a tensor"))) + p_dict((p_str("items"), p_str("x"))) + b"b",
    # the shared FloatStorage stand-in given another dtype for the rest of the process
    p_global("torch", "FloatStorage") + p_dict((p_str("dtype"), p_str("x"))) + b"b",
    p_global("torch", "FloatStorage") + p_tuple(b"N", p_dict((p_str("dtype"), p_str("x")))) + b"b",
    # a stand-in function's defaults replaced (slot state goes through setattr)
    p_global("torch._utils", "_rebuild_tensor_v2") + p_tuple(b"N", p_dict((p_str("__defaults__"), b")"))) + b"b",
    # BUILD on a plain tuple
    p_tuple(p_int(1)) + p_dict((p_str("a"), p_int(1))) + b"b",
])
def test_build_cannot_change_allowed_classes(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "build.pt"
    path.write_bytes(pickle_bytes(body + b"0" + p_dict()))  # then POP the target, leave a dict
    with pytest.raises(UnsafeCheckpoint) as exc:
        read_checkpoint(path)
    _one_line(exc)
    # Nothing leaked: a real checkpoint still loads in this process.
    assert read_checkpoint(_legit_file(tmp_path)).config == SMALL


def test_state_dict_metadata_build_is_still_accepted(tmp_path: Path) -> None:
    """torch's state_dict() carries ``_metadata``; real checkpoints BUILD it."""
    ghn = GHN.from_config(SMALL)
    path = tmp_path / "meta.pt"
    torch.save({"state_dict": ghn.state_dict(), "config": SMALL.official_kwargs()}, path)
    assert hasattr(ghn.state_dict(), "_metadata")
    assert read_checkpoint(path).config == SMALL


# --------------------------------------------------------------------------------------------------
# Non-finite weights and predictions


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_ghn_weights_are_refused(tmp_path: Path, bad: float) -> None:
    state = GHN.from_config(SMALL).state_dict()
    state["decoder.conv.2.weight"][3, 1] = bad
    path = tmp_path / "nan.pt"
    torch.save({"state_dict": state, "config": SMALL.official_kwargs()}, path)
    with pytest.raises(CheckpointError, match="NaN or infinite") as exc:
        load_ghn(path)
    assert "decoder.conv.2.weight" in _one_line(exc)


def test_non_finite_predictions_are_refused() -> None:
    from ghnctl.errors import PredictionError
    from ghnctl.predict import predict_parameters

    torch.manual_seed(0)
    ghn = GHN.from_config(SMALL)
    with torch.no_grad():
        ghn.decoder.conv[2].weight.fill_(3e38)  # finite weights whose products overflow
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3))
    with pytest.raises(PredictionError) as exc:
        predict_parameters(ghn, model)
    _one_line(exc)


def test_finetune_init_file_with_nan_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from ghnctl.inits import InitError, InitSpec, apply_init

    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["0.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(InitError, match="NaN or infinite"):
        apply_init(model, InitSpec.parse(f"file:{tmp_path / 'nan.safetensors'}"), num_classes=2)


# --------------------------------------------------------------------------------------------------
# Huge values in error lines

HUGE = "k" * 10_000_000


@pytest.mark.parametrize("make", [
    lambda: pickle_bytes(p_dict((p_str(HUGE), p_str("not a tensor")))),  # a 10 MB key
    lambda: pickle_bytes(p_global("os" + "x" * 3000, "system") + b")R"),  # a long global name
    lambda: pickle_bytes(p_tuple(p_str("storage"), p_str(HUGE)) + b"Q"),  # a persistent id
])
def test_error_lines_quote_only_a_short_excerpt(tmp_path: Path, make: Callable[[], bytes]) -> None:
    path = tmp_path / "long.pt"
    path.write_bytes(make())
    with pytest.raises(GhnctlError) as exc:
        read_checkpoint(path)
    _one_line(exc, limit=700)


def test_cli_error_line_stays_short_for_a_10mb_key(tmp_path: Path) -> None:
    path = tmp_path / "long.pt"
    body = p_dict((p_str(HUGE + "\n\x1b[31m"), p_tensor(p_storage("FloatStorage", "0", 1), 0, (1,), (1,))))
    trainer_file(path, body, {"0": b"\x00" * 4})
    for command in (["convert", str(path), str(tmp_path / "o.safetensors")],
                    ["predict", "resnet18", "--ghn", str(path), "--out", str(tmp_path / "p.safetensors")]):
        proc = subprocess.run([sys.executable, "-m", "ghnctl", *command], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) < 800 and "\x1b" not in lines[0], lines[0][:200]


def test_a_safetensors_header_length_that_looks_like_zlib_is_still_safetensors(tmp_path: Path) -> None:
    from ghnctl.ghn import detect_format

    header = json.dumps({"__metadata__": {"pad": "x" * (0x0178 - 40)}}).encode()
    header += b" " * (0x0178 - len(header))
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    assert path.read_bytes()[:2] == b"\x78\x01"  # the zlib magic number
    assert detect_format(path) == "safetensors"
