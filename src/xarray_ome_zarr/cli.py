"""The ``xarray-ome-zarr`` command: ``info``, ``validate``, ``convert`` and ``demo``.

Errors print one line, ``xarray-ome-zarr: error: <message>``, and exit with status 2;
``validate`` exits with 1 when the store has errors. Heavy modules load inside the commands,
so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import OmeZarrError
from .layout import (
    PATH_ATTR,
    SCALE_ATTR,
    UNITS_ATTR,
    axis_type,
    level_names,
    ome_document,
    stored_axes,
)
from .ngff.parse import parse_plate, parse_well

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
    info.set_defaults(func=cmd_info)

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
    check.set_defaults(func=cmd_validate)

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
        choices=["0.4", "0.5"],
        default="0.5",
        help="the OME-Zarr version to write (default: 0.5)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    debug = False
    try:
        args = parser.parse_args(argv)
        debug = args.debug
        return args.func(args)
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
    import json

    from .errors import OmeZarrError
    from .validation import validate

    try:
        problems = validate(
            args.path,
            strict=args.strict,
            read_chunks=args.read_chunks,
            metadata_only=args.metadata_only,
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
    """Print the hierarchy of the store at ``args.path``."""
    import warnings

    import xarray as xr

    from .errors import OmeZarrWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OmeZarrWarning)
        tree = xr.open_datatree(args.path, engine="ome-zarr")
    try:
        print("\n".join(describe(tree)))
    finally:
        tree.close()
    for w in caught:
        if issubclass(w.category, OmeZarrWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    return OK


def describe(tree: xr.DataTree) -> Iterator[str]:
    """The lines ``info`` prints for a tree opened with the ``ome-zarr`` engine."""
    yield from _describe_node(tree)


def _describe_node(node: xr.DataTree) -> Iterator[str]:
    version, document = ome_document(node.attrs)
    path = node.path
    if _is_image(node):
        yield from _describe_image(node, version, document)
    elif isinstance(document.get("plate"), Mapping):
        yield _describe_plate(path, version, document["plate"])
    elif isinstance(document.get("well"), Mapping):
        yield _describe_well(path, document["well"])
    elif "bioformats2raw.layout" in document:
        series = [name for name, child in node.children.items() if _is_image(child)]
        yield f"{path}: bioformats2raw collection, {_count(len(series), 'series', 'series')}"
    for name, child in node.children.items():
        if not (_is_image(node) and name in level_names(node)):
            yield from _describe_node(child)


def _is_image(node: xr.DataTree) -> bool:
    return bool(level_names(node))


def _levels(node: xr.DataTree) -> list[tuple[str, xr.Dataset]]:
    return [(name, node[name].to_dataset()) for name in level_names(node)]


def _describe_image(
    node: xr.DataTree, version: str | None, document: Mapping[str, Any]
) -> Iterator[str]:
    multiscales = document.get("multiscales")
    multiscale = multiscales[0] if isinstance(multiscales, list) and multiscales else {}
    kind = "label image" if "image-label" in document else "image"
    name = multiscale.get("name") if isinstance(multiscale, Mapping) else None
    title = f"{node.path}: {kind}" + (f" {name!r}" if isinstance(name, str) and name else "")
    yield title + (f", OME-Zarr {version}" if version else "")
    levels = _levels(node)
    first = levels[0][1]
    var = _variable(first)
    axes = _axes(first, var.dims if var is not None else tuple(first.dims), node.attrs)
    spatial = [a for a in axes if a[1] in ("space", "time")]
    rows = [("axes", ", ".join(_axis_text(a) for a in axes))]
    channel = next((a[0] for a in axes if a[1] == "channel"), None)
    if channel is not None and channel in first.coords:
        rows.append(("channels", ", ".join(str(v) for v in first.coords[channel].values)))
    labels = node.children.get("labels")
    if labels is not None:
        names = [n for n, child in labels.children.items() if _is_image(child)]
        rows.append(("labels", ", ".join(names) or "-"))
    yield from _aligned(rows, indent="  ")
    yield from _aligned(_level_rows(levels, [a[0] for a in spatial]), indent="  ")


def _variable(ds: xr.Dataset) -> xr.DataArray | None:
    names = list(ds.data_vars)
    return ds[names[0]] if names else None


def _axes(
    ds: xr.Dataset, dims: Sequence[Any], attrs: Mapping[Any, Any]
) -> list[tuple[str, str, str | None]]:
    """(name, type, unit) of each dim, from the coordinates, else from the metadata."""
    stored = stored_axes(attrs)
    out = []
    for dim in map(str, dims):
        coord = ds.coords.get(dim)
        coord_attrs = coord.attrs if coord is not None else {}
        kind = axis_type(dim, coord_attrs, stored) or "-"
        unit = coord_attrs.get(UNITS_ATTR) or (stored[dim].unit if dim in stored else None)
        out.append((dim, kind, unit))
    return out


def _axis_text(axis: tuple[str, str, str | None]) -> str:
    name, kind, unit = axis
    return f"{name} ({kind}, {unit})" if unit else f"{name} ({kind})"


def _level_rows(levels: list[tuple[str, xr.Dataset]], spatial: list[str]) -> list[tuple[str, ...]]:
    axes = " ".join(spatial)
    rows: list[tuple[str, ...]] = [
        ("level", "path", "shape", "dtype", "chunks", "shards", f"scale ({axes})",
         f"translation ({axes})")
    ]  # fmt: skip
    for name, ds in levels:
        var = _variable(ds)
        if var is None:
            continue
        shards = var.encoding.get("shards")
        scale = [_scale_of(ds, d) for d in spatial]
        translation = [_number(ds.coords[d].values[0]) if d in ds.coords else "-" for d in spatial]
        rows.append(
            (
                name,
                str(ds.attrs.get(PATH_ATTR, "-")),
                _shape(var.shape),
                str(var.dtype),
                _shape(var.encoding.get("chunks")),
                _shape(shards) if shards else "-",
                " ".join(scale),
                " ".join(translation),
            )
        )
    return rows


def _scale_of(ds: xr.Dataset, dim: str) -> str:
    coord = ds.coords.get(dim)
    if coord is None:
        return "-"
    scale = coord.attrs.get(SCALE_ATTR)
    if scale is None and coord.size > 1:
        scale = float(coord.values[1] - coord.values[0])
    return _number(scale) if scale is not None else "-"


def _number(value: Any) -> str:
    return f"{float(value):.6g}"


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


def _describe_plate(path: str, version: str | None, block: Mapping[str, Any]) -> str:
    plate = parse_plate(block)
    rows, columns = plate.rows, plate.columns
    title = f"{path}: plate" + (f" {plate.name!r}" if plate.name is not None else "")
    span = f" ({_span(rows)} × {_span(columns)})" if rows and columns else ""
    text = f"{title}, {len(rows)} rows × {len(columns)} columns{span}, "
    text += _count(len(plate.wells), "well")
    if plate.acquisitions:
        text += f", {_count(len(plate.acquisitions), 'acquisition')}"
    return text + (f", OME-Zarr {version}" if version else "")


def _span(names: Sequence[str | None]) -> str:
    return str(names[0]) if len(names) == 1 else f"{names[0]}-{names[-1]}"


def _describe_well(path: str, block: Mapping[str, Any]) -> str:
    fields = [str(i.path) for i in parse_well(block).images or () if i.raw]
    return f"{path}: well, {_count(len(fields), 'field')} ({', '.join(fields)})"


# ---- convert and demo ----------------------------------------------------------------------
def _writer_function(name: str, command: str) -> Callable[..., Any]:
    """``xarray_ome_zarr.<name>``, or a clear error while the writer is not there."""
    import xarray_ome_zarr

    function = getattr(xarray_ome_zarr, name, None)
    if function is None:
        raise CliError(
            f"'{command}' needs xarray_ome_zarr.{name}(), which this installation does not "
            "provide yet"
        )
    return function


def cmd_convert(args: argparse.Namespace) -> int:
    """Read ``args.src`` and write it to ``args.dst``."""
    import xarray as xr

    to_ome_zarr = _writer_function("to_ome_zarr", "convert")
    tree = xr.open_datatree(args.src, engine="ome-zarr")
    try:
        to_ome_zarr(
            tree,
            args.dst,
            version=args.ngff_version,
            chunks=args.chunks,
            shards=args.shards,
            chunks_per_shard=args.chunks_per_shard,
            overwrite=args.overwrite,
            progress=True,
        )
    finally:
        tree.close()
    print(f"wrote {args.dst} (OME-Zarr {args.ngff_version})")
    return OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Write a small sample image with a label image to ``args.dst``."""
    to_ome_zarr = _writer_function("to_ome_zarr", "demo")
    to_ome_zarr(
        demo_tree(),
        args.dst,
        version=args.ngff_version,
        scale_factors=[2, 4],
        overwrite=args.overwrite,
    )
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
    return xr.DataTree.from_dict(
        {
            "/scale0": image.to_dataset(),
            "/labels/nuclei": xr.Dataset(attrs={"image-label": {"colors": colors}}),
            "/labels/nuclei/scale0": label_image.to_dataset(),
        }
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
