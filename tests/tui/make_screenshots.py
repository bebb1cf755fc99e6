"""Save SVG screenshots of the real app (fake backend) into screenshots/.

    python -m tests.tui.make_screenshots [--size 80x24] [--png] [NAME ...]

The states come from tests/tui/scenes.py, the same list the snapshot tests pin. --png also
converts each SVG with rsvg-convert (Debian: apt-get install librsvg2-bin), for looking at them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.tui.scenes import SCENES, Scene, release

ROOT = Path(__file__).resolve().parents[2]
#: what the README and the issue ask for; the other scenes are written with --all
README_SET = (
    "welcome",
    "profile-form-error",
    "steps-running",
    "password-modal",
    "host-key-modal",
    "done",
    "dashboard",
    "diagnostics",
)


async def shoot(scene: Scene, out: Path, size: tuple[int, int]) -> Path:
    with tempfile.TemporaryDirectory() as home:
        app, fake = scene.build(Path(home))
        async with app.run_test(size=size) as pilot:
            if scene.drive is not None:
                await scene.drive(pilot)
            await pilot.pause()
            app.title = "wa-onboard"
            path = Path(app.save_screenshot(f"{scene.name}.svg", str(out)))
            release(fake)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="scenes to shoot (default: the README set)")
    parser.add_argument("--all", action="store_true", help="every scene")
    parser.add_argument("--size", default="80x24", help="terminal size, COLSxROWS (default 80x24)")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--png", action="store_true", help="also write PNGs (needs rsvg-convert)")
    args = parser.parse_args(argv)
    cols, rows = (int(n) for n in args.size.split("x"))
    wanted = set(args.names) or (None if args.all else set(README_SET))
    scenes = [s for s in SCENES if wanted is None or s.name in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    converter = shutil.which("rsvg-convert")
    for scene in scenes:
        svg = asyncio.run(shoot(scene, args.out, (cols, rows)))
        print(svg)
        if args.png:
            if converter is None:
                print("rsvg-convert not found: apt-get install librsvg2-bin", file=sys.stderr)
                return 1
            subprocess.run([converter, "-o", str(svg.with_suffix(".png")), str(svg)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
