"""The ``xarray-ome-zarr`` command: ``info``, ``validate``, ``convert`` and ``demo``.

Errors print one line, ``xarray-ome-zarr: error: <message>``, and exit with status 2;
``validate`` exits with 1 when the store has errors. Warnings print one line each,
``warning: <message>``, on stderr; progress bars go to stderr, only when it is a terminal
(or with ``--progress``); ``--quiet`` leaves only errors. A closed pipe (``info X | head``)
ends the command quietly. Heavy modules load inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import OmeZarrError

if TYPE_CHECKING:
    import xarray as xr

PROG = "xarray-ome-zarr"
#: Exit statuses.
OK, INVALID, FAILED, INTERNAL = 0, 1, 2, 3


class CliError(Exception):
    """A usage error, or a command that cannot run; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{message} (see '{self.prog} --help')")


# ---- argument types ------------------------------------------------------------------------
def chunk_spec(text: str) -> int | dict[str, int]:
    """Parse ``"64"`` into 64 and ``"z=32,y=256,x=256"`` into ``{"z": 32, ...}``."""
    text = text.strip()
    if "=" not in text:
        return _positive(text, text)
    out: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=SIZE, got {part!r}")
        if name in out:
            raise argparse.ArgumentTypeError(f"{text!r}: {name!r} given twice")
        out[name] = _positive(value, text)
    return out


def _positive(value: str, text: str) -> int:
    try:
        size = int(value.strip())
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: sizes must be positive integers, as in '64' or 'z=32,y=256,x=256'"
        )
    return size


def storage_option(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``; the value as JSON when it is (``true``, ``3``, ``{...}``), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, as in anon=true")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


# ---- the parser ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser, with one subparser per command."""
    parser = _Parser(prog=PROG, description="Inspect, check, convert and make OME-Zarr stores.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of unexpected errors"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = commands.add_parser(
        "info", help="print the hierarchy: images, levels, geometry, channels, labels, plates"
    )
    info.add_argument("path", metavar="PATH", help="a store: path, URL or .ozx file")
    info.add_argument("--json", action="store_true", help="print the hierarchy as JSON")
    info.add_argument(
        "--thumbnail",
        metavar="PNG",
        help="also write the first image's smallest level, rendered in its omero colours",
    )
    _add_reading_options(info, cmd_info)

    check = commands.add_parser(
        "validate", help="list every problem in a store; exit status 1 if there are errors"
    )
    check.add_argument("path", metavar="PATH", help="a store: path, URL or .ozx file")
    check.add_argument(
        "--strict", action="store_true", help="apply the spec's SHOULDs too; omero problems fail"
    )
    check.add_argument(
        "--read-chunks", action="store_true", help="also read every chunk to find corrupt ones"
    )
    check.add_argument(
        "--metadata-only",
        action="store_true",
        help="judge the OME documents alone, without the arrays and groups they name",
    )
    check.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object: {"valid", "message", "problems": [...]}',
    )
    _add_reading_options(check, cmd_validate)

    convert = commands.add_parser(
        "convert", help="rewrite a store in another OME-Zarr version, chunking or sharding"
    )
    convert.add_argument("src", metavar="SRC", help="the store to read")
    convert.add_argument("dst", metavar="DST", help="the store to write (may end in .ozx)")
    _add_write_options(convert)
    convert.add_argument("--chunks", type=chunk_spec, help="'64' or 'z=32,y=256,x=256'")
    convert.add_argument(
        "--shards", type=chunk_spec, help="a shard shape: '512' or 'y=1024,x=1024'"
    )
    convert.add_argument(
        "--chunks-per-shard",
        type=chunk_spec,
        help="chunks in a shard along each axis: '2' or 'y=4,x=4' (instead of --shards)",
    )
    _add_storage_options(convert, "SRC")
    _add_storage_option_list(
        convert, "--target-storage-option", "target_storage_options", "for DST (repeatable)"
    )
    convert.set_defaults(func=cmd_convert)

    demo = commands.add_parser("demo", help="write a small sample image with a label image")
    demo.add_argument("dst", metavar="DST", help="the store to write (may end in .ozx)")
    _add_write_options(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def _add_write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version",
        dest="ngff_version",
        choices=["0.4", "0.5", "0.6"],
        default="0.5",
        help="the OME-Zarr version to write (default: 0.5, which every peer reads; 0.6 "
        "keeps coordinate systems, transforms and scenes)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show a progress bar on stderr (default: only when stderr is a terminal)",
    )
    _add_common_options(parser)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (and results)"
    )


def _add_reading_options(parser: argparse.ArgumentParser, command: Any) -> None:
    """What the commands reading one store (``PATH``) share after their own options: quiet,
    the store's fsspec options; ``command`` runs it."""
    _add_common_options(parser)
    _add_storage_options(parser, "PATH")
    parser.set_defaults(func=command)


def _add_storage_option_list(
    parser: argparse.ArgumentParser, flag: str, dest: str, purpose: str
) -> None:
    """A repeatable ``KEY=VALUE`` fsspec option, collected as pairs in ``dest``."""
    parser.add_argument(
        flag,
        dest=dest,
        metavar="KEY=VALUE",
        type=storage_option,
        action="append",
        default=[],
        help=f"an fsspec option {purpose}",
    )


def _add_storage_options(parser: argparse.ArgumentParser, what: str) -> None:
    _add_storage_option_list(
        parser,
        "--storage-option",
        "storage_options",
        f"for {what} (repeatable), e.g. endpoint_url=http://...",
    )
    parser.add_argument(
        "--anon", action="store_true", help=f"read {what} without credentials (public buckets)"
    )


def _open_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Keywords of ``xr.open_datatree`` for fsspec options (none when there are none)."""
    return {"storage_options": options} if options else {}


def _options(pairs: Sequence[tuple[str, Any]], anon: bool = False) -> dict[str, Any] | None:
    """``--storage-option`` pairs (and ``--anon``) as fsspec ``storage_options``."""
    options = dict(pairs)
    if anon:
        options["anon"] = True
    return options or None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    debug = False
    try:
        args = parser.parse_args(argv)
        debug = args.debug
        _PRINTED.clear()
        with warnings.catch_warnings():
            if getattr(args, "quiet", False):
                warnings.simplefilter("ignore")
            else:
                warnings.simplefilter("default")
                warnings.showwarning = _print_warning
            return args.func(args)
    except BrokenPipeError:
        return _closed_pipe()
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else OK
    except (CliError, OmeZarrError) as err:
        # the library names its keyword; here the flag is what the user can pass
        return _fail(str(err).replace("overwrite=True", "--overwrite"), FAILED)
    except OSError as err:
        return _fail(f"{type(err).__name__}: {err}", FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as err:
        if debug:
            raise
        return _fail(
            f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback, "
            "and please report it)",
            INTERNAL,
        )
    finally:
        _close_sessions()


def _close_sessions() -> None:
    """Close the HTTP sessions the command's URL stores opened (fsspec keeps their
    filesystems cached; left open, aiohttp complains when they are collected)."""
    store = sys.modules.get(f"{__package__}.store")
    if store is not None:  # nothing was opened when the store module was never imported
        store.close_remote_sessions()


def _print_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A warning as one line, ``warning: <message>``, with no source line."""
    from .errors import OmeZarrWarning

    text = " ".join(str(message).split())
    if not issubclass(category, OmeZarrWarning):
        text = f"{text} ({category.__name__})"
    if text not in _PRINTED:  # the same finding met twice on the way is said once
        _PRINTED.add(text)
        print(f"warning: {text}", file=sys.stderr)


_PRINTED: set[str] = set()


def _closed_pipe() -> int:
    """The reader of stdout went away (``info X | head``): stop quietly, as Unix tools do."""
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (tests capture it)
        pass
    finally:
        os.close(devnull)
    return 141  # 128 + SIGPIPE, as a shell reports a tool killed by a closed pipe


def _progress(args: argparse.Namespace) -> bool:
    """A progress bar when asked for, else only on a terminal (and never with --quiet)."""
    if args.quiet:
        return False
    return bool(args.progress or sys.stderr.isatty())


def _fail(message: str, status: int) -> int:
    one_line = " ".join(message.split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return status


# ---- validate ------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    """Print every problem, one a line; 1 if any is an error."""
    from .validation import validate

    if args.json:
        return _validate_json(args)
    problems = validate(
        args.path,
        strict=args.strict,
        read_chunks=args.read_chunks,
        metadata_only=args.metadata_only,
        storage_options=_options(args.storage_options, args.anon),
    )
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    if not problems:
        print("valid")
    elif not errors:
        print(f"valid ({_count(len(problems), 'warning')})")
    else:
        warnings = len(problems) - errors
        tail = f", {_count(warnings, 'warning')}" if warnings else ""
        print(f"invalid ({_count(errors, 'error')}{tail})")
    return INVALID if errors else OK


def _validate_json(args: argparse.Namespace) -> int:
    """``validate --json``: one JSON object, as the spec's conformance runner reads it."""
    from .errors import OmeZarrError
    from .validation import validate

    try:
        problems = validate(
            args.path,
            strict=args.strict,
            read_chunks=args.read_chunks,
            metadata_only=args.metadata_only,
            storage_options=_options(args.storage_options, args.anon),
        )
    except OmeZarrError as err:
        print(json.dumps({"valid": False, "message": str(err), "problems": []}))
        return INVALID
    errors = [p for p in problems if p.severity == "error"]
    shown = errors or problems
    message = "; ".join(f"{p.node} {p.key}: {p.message}" for p in shown[:5])
    if len(shown) > 5:
        message += f" (and {len(shown) - 5} more)"
    out = {
        "valid": not errors,
        "message": message or "valid",
        "problems": [p.as_json() for p in problems],
    }
    print(json.dumps(out))
    return INVALID if errors else OK


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# ---- info ----------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    """Print the hierarchy of the store at ``args.path`` (as text, or as JSON)."""
    import xarray as xr

    from .store import store_name
    from .summary import describe_tree

    options = _options(args.storage_options, args.anon)
    tree = xr.open_datatree(args.path, engine="ome-zarr", **_open_options(options))
    try:
        nodes = describe_tree(tree)
        if args.thumbnail:
            write_thumbnail(tree, args.thumbnail)
    finally:
        tree.close()
    if args.json:
        summary = {"store": store_name(args.path, options), "nodes": nodes}
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(text_lines(nodes)))
    return OK


def write_thumbnail(tree: xr.DataTree, path: str) -> None:
    """Write the first image's smallest level, rendered (:func:`.render.render`), as a PNG."""
    from .layout import level_names
    from .render import render, write_png

    image = next((node for node in tree.subtree if level_names(node)), None)
    if image is None:
        raise CliError("--thumbnail: the store holds no image")
    write_png(render(image, level=-1).values, path)


def describe(tree: xr.DataTree) -> Iterator[str]:
    """The lines ``info`` prints for a tree opened with the ``ome-zarr`` engine."""
    from .summary import describe_tree

    yield from text_lines(describe_tree(tree))


def text_lines(nodes: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """The text listing of :func:`.summary.describe_tree`'s entries."""
    for node in nodes:
        kind = node["kind"]
        if kind in ("image", "label image"):
            yield from _image_lines(node)
        elif kind == "plate":
            yield _plate_line(node)
        elif kind == "well":
            fields = node["fields"]
            yield f"{node['path']}: well, {_count(len(fields), 'field')} ({', '.join(fields)})"
        else:
            count = _count(len(node["series"]), "series", "series")
            yield f"{node['path']}: bioformats2raw collection, {count}"


def _image_lines(node: Mapping[str, Any]) -> Iterator[str]:
    title = f"{node['path']}: {node['kind']}" + (f" {node['name']!r}" if node["name"] else "")
    yield title + (f", OME-Zarr {node['version']}" if node["version"] else "")
    axes = node["axes"]
    rows = [("axes", ", ".join(_axis_text(a) for a in axes))]
    if node["channels"] is not None:
        rows.append(("channels", ", ".join(node["channels"])))
    if node["labels"] is not None:
        rows.append(("labels", ", ".join(node["labels"]) or "-"))
    yield from _aligned(rows, indent="  ")
    spatial = " ".join(node["levels"][0]["scale"]) if node["levels"] else ""
    table: list[tuple[str, ...]] = [
        ("level", "path", "shape", "dtype", "chunks", "shards", f"scale ({spatial})",
         f"translation ({spatial})")
    ]  # fmt: skip
    for level in node["levels"]:
        if level["shape"] is None:
            continue
        table.append(
            (
                level["name"],
                str(level["path"] if level["path"] is not None else "-"),
                _shape(level["shape"]),
                str(level["dtype"]),
                _shape(level["chunks"]),
                _shape(level["shards"]) if level["shards"] else "-",
                " ".join(_number(v) for v in level["scale"].values()),
                " ".join(_number(v) for v in level["translation"].values()),
            )
        )
    yield from _aligned(table, indent="  ")


def _axis_text(axis: Mapping[str, Any]) -> str:
    kind = axis["type"] or "-"
    return (
        f"{axis['name']} ({kind}, {axis['unit']})" if axis["unit"] else f"{axis['name']} ({kind})"
    )


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):.6g}"


def _shape(shape: Sequence[int] | None) -> str:
    if not shape:
        return "-"
    return "×".join(str(int(s)) for s in shape)


def _aligned(rows: Sequence[Sequence[str]], indent: str = "") -> Iterator[str]:
    """Rows as left-aligned columns, two spaces apart."""
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        yield (indent + "  ".join(cells)).rstrip()


def _plate_line(plate: Mapping[str, Any]) -> str:
    rows, columns = plate["rows"], plate["columns"]
    title = f"{plate['path']}: plate" + (f" {plate['name']!r}" if plate["name"] else "")
    span = f" ({_span(rows)} × {_span(columns)})" if rows and columns else ""
    text = f"{title}, {len(rows)} rows × {len(columns)} columns{span}, "
    text += _count(plate["wells"], "well")
    if plate["acquisitions"]:
        text += f", {_count(plate['acquisitions'], 'acquisition')}"
    return text + (f", OME-Zarr {plate['version']}" if plate["version"] else "")


def _span(names: Sequence[str | None]) -> str:
    return str(names[0]) if len(names) == 1 else f"{names[0]}-{names[-1]}"


# ---- convert and demo ----------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    """Read ``args.src`` and write it to ``args.dst``."""
    import xarray as xr

    from .writer import to_ome_zarr

    options = _options(args.storage_options, args.anon)
    tree = xr.open_datatree(args.src, engine="ome-zarr", **_open_options(options))
    try:
        to_ome_zarr(
            tree,
            args.dst,
            version=args.ngff_version,
            chunks=args.chunks,
            shards=args.shards,
            chunks_per_shard=args.chunks_per_shard,
            overwrite=args.overwrite,
            progress=_progress(args),
            storage_options=_options(args.target_storage_options),
        )
    finally:
        tree.close()
    if not args.quiet:
        print(f"wrote {args.dst} (OME-Zarr {args.ngff_version})")
    return OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Write a small sample image with a label image to ``args.dst``."""
    from .writer import to_ome_zarr

    to_ome_zarr(
        demo_tree(),
        args.dst,
        version=args.ngff_version,
        scale_factors=[2, 4],
        overwrite=args.overwrite,
        progress=_progress(args),
    )
    if not args.quiet:
        print(f"wrote a sample image with labels to {args.dst}; try: {PROG} info {args.dst}")
    return OK


def demo_tree(shape: tuple[int, int, int, int] = (2, 16, 128, 128), seed: int = 0) -> xr.DataTree:
    """A sample image (c, z, y, x; DAPI and GFP) and its nuclei label image under labels/nuclei.

    Coordinates are pixel centres in micrometers; the image is one level, for the writer's
    ``scale_factors`` to build the pyramid.
    """
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(seed)
    _, nz, ny, nx = shape
    spacing = {"z": 1.0, "y": 0.25, "x": 0.25}
    coords = {
        d: xr.Variable(d, spacing[d] * (np.arange(n) + 0.5), attrs={"units": "micrometer"})
        for d, n in zip("zyx", (nz, ny, nx), strict=True)
    }
    z, y, x = np.meshgrid(coords["z"].values, coords["y"].values, coords["x"].values, indexing="ij")
    labels = np.zeros((nz, ny, nx), dtype=np.uint16)
    nuclei = np.zeros((nz, ny, nx))
    for label in range(1, 13):
        centre = rng.uniform([0, 0, 0], [nz * 1.0, ny * 0.25, nx * 0.25])
        radius = rng.uniform(1.5, 3.0)
        distance = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
        labels[(distance < radius) & (labels == 0)] = label
        nuclei += np.exp(-((distance / radius) ** 2) * 2)
    gfp = np.sin(y / 3.0) * np.cos(x / 4.0) + 1.0
    noise = rng.normal(0, 0.05, (2, nz, ny, nx))
    pixels = np.clip(np.stack([nuclei, gfp / 2]) + noise, 0, None) * 20000
    image = xr.DataArray(
        pixels.astype(np.uint16),
        dims=("c", "z", "y", "x"),
        coords={"c": ["DAPI", "GFP"], **coords},
        name="image",
    )
    label_image = xr.DataArray(labels, dims=("z", "y", "x"), coords=coords, name="nuclei")
    colors = [
        {"label-value": i, "rgba": [int(v) for v in rng.integers(0, 256, 3)] + [255]}
        for i in range(1, 13)
    ]
    # display settings as a viewer would save them: each channel windowed to its bright end
    omero = {
        "channels": [
            {
                "label": label,
                "color": color,
                "active": True,
                "window": {"start": 0.0, "end": end, "min": 0.0, "max": 65535.0},
            }
            for label, color, end in zip(
                ("DAPI", "GFP"),
                ("0000FF", "00FF00"),
                [float(round(np.percentile(channel, 99.5))) for channel in image.values],
                strict=True,
            )
        ],
        "rdefs": {"model": "color"},
    }
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs={"ome_group_attrs": {"omero": omero}}),
            "/scale0": image.to_dataset(),
            "/labels/nuclei": xr.Dataset(
                attrs={"ome_group_attrs": {"image-label": {"colors": colors}}}
            ),
            "/labels/nuclei/scale0": label_image.to_dataset(),
        }
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
