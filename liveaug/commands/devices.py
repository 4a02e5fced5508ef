"""``liveaug devices``: the GenICam cameras the GenTL producers see, or what one camera offers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from liveaug.commands.camera_args import add_producer_arguments, quiet_harvesters

HELP = (
    "List the GenICam cameras the GenTL producers (--cti, GENICAM_GENTL64_PATH) see: vendor, "
    "model, serial, id, access status and producer; with --device, what that camera offers."
)

_COLUMNS = ("index", "vendor", "model", "serial", "id", "access", "producer")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Producers, an optional device to describe, JSON output."""
    add_producer_arguments(p)
    p.add_argument(
        "--device",
        metavar="SEL",
        help="describe this camera's settings (node, value, range, increment, choices)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    header = ["#" if c == "index" else c for c in columns]
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _describe(args: argparse.Namespace) -> int:
    from liveaug.sources.camera import describe_device

    entry, offered = describe_device(args.device, args.cti, use_env=not args.no_env)
    if args.json:
        print(json.dumps({"device": entry.to_dict(), "settings": offered}, indent=2, default=str))
        return 0
    print(f"{entry.label} (id {entry.id}, {entry.producer})")
    rows = []
    for key, info in offered.items():
        if info is None:
            rows.append({"setting": key, "node": "-", "value": "not offered"})
            continue
        if "choices" in info:
            limits = ", ".join(info["choices"])
        elif "min" in info:
            limits = f"{info['min']:g} … {info['max']:g}"
            if info.get("inc"):
                limits += f" step {info['inc']:g}"
        else:
            limits = ""
        value = info.get("value", "")
        rows.append(
            {
                "setting": key,
                "node": info["node"],
                "value": f"{value:g}" if isinstance(value, float) else str(value),
                "range": limits,
                "writable": "yes" if info["writable"] else "no",
            }
        )
    print(_table(rows, ("setting", "node", "value", "range", "writable")))
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the device table (or one device's settings)."""
    quiet_harvesters(args)
    if args.device is not None:
        return _describe(args)
    from liveaug.sources.camera import find_producers, list_devices

    producers = find_producers(args.cti, use_env=not args.no_env)
    entries = list_devices(producers, use_env=False)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    if not entries:
        names = ", ".join(str(p) for p in producers)
        print(f"no cameras found by {len(producers)} producer(s): {names}", file=sys.stderr)
        return 0
    print(_table([e.to_dict() for e in entries], _COLUMNS))
    return 0
