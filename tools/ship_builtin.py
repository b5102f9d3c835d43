"""Ship a `ghnctl train` run as the built-in GHN: copy its weights into the package, write its card.

Usage::

    python tools/ship_builtin.py runs/c10 [--name ghnctl-c10] [--bench bench.json] [--note TEXT]

Checks that the run's ``ghn.safetensors`` loads as a ghnctl GHN with finite weights and fits the size
budget, copies it to ``src/ghnctl/builtin/NAME.safetensors`` and writes ``NAME.json`` (the card: the
exact training command, data, steps done, last zero-shot accuracy, file hash and size). Then prints
the registry line to paste into ``ghnctl/hub/registry.py`` (``tests/test_builtin_ghn.py`` checks that
it matches the file).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ghnctl.ghn import read_checkpoint, save_ghn  # noqa: E402
from ghnctl.io import sha256_file  # noqa: E402
from ghnctl.training.state import read_state  # noqa: E402
from ghnctl.training.train_ghn import STATE_FORMAT  # noqa: E402

MAX_BYTES = 10 * 1024 * 1024


def training_command(config: dict, data: dict, ghn: dict, out: str = "runs/c10") -> str:
    """The `ghnctl train` command that reproduces the run (every setting that changes it spelled out)."""
    flag = {"hid": "--hid", "layers": "--layers", "heads": "--heads", "max_channels": "--max-channels",
            "max_kernel": "--max-kernel", "meta_batch": "--meta-batch", "batch_size": "--batch-size",
            "steps": "--steps", "lr": "--lr", "weight_decay": "--weight-decay", "warmup_steps": "--warmup-steps",
            "grad_clip": "--grad-clip", "predparam_wd": "--predparam-wd", "eval_archs": "--eval-archs",
            "eval_n": "--eval-n", "eval_every": "--eval-every", "eval_images": "--eval-images",
            "save_every": "--save-every", "seed": "--seed", "pool": "--pool"}
    parts = ["ghnctl train", f"--data {data['source']}", f"--val-fraction {data['val_fraction']}",
             f"--split-seed {data['split_seed']}", f"--archs {','.join(config['archs'])}"]
    if data.get("image_size") is not None:
        parts.append(f"--image-size {data['image_size']}")
    parts += [f"{flag[k]} {config[k]}" for k in flag if config.get(k) is not None]
    if config.get("label_smoothing"):
        parts.append(f"--label-smoothing {config['label_smoothing']}")
    if config.get("ghn2"):
        parts.append("--ghn2")
    return " ".join(parts + [f"--out {out}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="ghnctl-c10")
    parser.add_argument("--note", default="", help="free text for the card (hardware, time)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="the training image size, for a file saved before ghnctl recorded it")
    args = parser.parse_args()

    source = args.run / "ghn.safetensors"
    checkpoint = read_checkpoint(source)  # refuses anything but a valid GHN file
    if not all(bool(t.isfinite().all()) for t in checkpoint.state_dict.values()):
        sys.exit(f"{source}: non-finite weights")
    size = source.stat().st_size
    if size > MAX_BYTES:
        sys.exit(f"{source}: {size / 1e6:.1f} MB is over the {MAX_BYTES / 1e6:.1f} MB budget of a built-in GHN")
    run_config = json.loads((args.run / "config.json").read_text())
    _, fields = read_state(args.run / "state.safetensors", format=STATE_FORMAT)
    history = fields.get("history") or []
    zero_shot = [h for h in history if "zero_shot_mean" in h and h["zero_shot_mean"] is not None]
    steps_done = int(history[-1]["step"]) if history else None

    dest_dir = REPO / "src" / "ghnctl" / "builtin"
    dest = dest_dir / f"{args.name}.safetensors"
    image_size = checkpoint.extra.get("trained_image_size") or args.image_size
    if image_size is None:
        sys.exit(f"{source} does not record its training image size: pass --image-size")
    # Written again (not copied) so the metadata always carries the image size.
    save_ghn(dest, checkpoint.state_dict, checkpoint.config, force=True, trained_image_size=image_size)
    checkpoint = read_checkpoint(dest)
    sha = sha256_file(dest)
    params = sum(t.numel() for t in checkpoint.state_dict.values())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    card = {
        "name": args.name,
        "file": dest.name,
        "sha256": sha,
        "size": dest.stat().st_size,
        "params": params,
        "config": checkpoint.config.to_dict(),
        "trained_image_size": checkpoint.extra.get("trained_image_size"),
        "num_classes": checkpoint.config.num_classes,
        "data": run_config["data"],
        "train": run_config["train"],
        "command": training_command(run_config["train"], run_config["data"], run_config["ghn"], str(args.run)),
        "steps_done": steps_done,
        "zero_shot_last": zero_shot[-1] if zero_shot else None,
        "shipped_from_commit": commit,
        "note": args.note,
    }
    (dest_dir / f"{args.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    cfg = checkpoint.config
    print(f"wrote {dest} ({card['size']:,} bytes, {params:,} parameters, sha256 {sha})")
    registry = REPO / "src" / "ghnctl" / "hub" / "registry.py"
    text = registry.read_text()
    pattern = re.compile(rf'^    _builtin\("{re.escape(args.name)}", "([^"]*)", GhnArch\(.*?\), \d+, \d+, '
                         r'"[0-9a-f]+", (".*")\),(?:  # noqa: E501)?$', re.MULTILINE)
    match = pattern.search(text)
    if match is None:
        sys.exit(f"no `_builtin(\"{args.name}\", ...)` line in {registry}: add one by hand")
    line = (f'    _builtin("{args.name}", "{match.group(1)}", GhnArch({cfg.hid}, {cfg.layers}, {cfg.heads}, '
            f'{tuple(cfg.max_shape)}, {cfg.num_classes}, image_size={image_size}), {params}, {card["size"]}, '
            f'"{sha}", {match.group(2)}),  # noqa: E501')
    registry.write_text(text[:match.start()] + line + text[match.end():])
    print(f"updated {registry.relative_to(REPO)}: {line.strip()}")


if __name__ == "__main__":
    main()
